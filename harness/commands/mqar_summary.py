"""`python -m harness mqar-summary FILE...`: seed statistics of MQAR grids.

Merges the JSON files of `python -m harness mqar` runs (e.g. one per seed or per core;
their task settings must agree, and a (method, L, seed) scored twice must score the same)
and prints, per method and L, the mean accuracy over the seeds with its Student-t interval
(`~c` where the interval contains chance), then each method minus the reference method
paired by seed (`tie` where that interval contains 0). `--output` writes the merged rows
and the summary as JSON. Exit status 2 for files that cannot be merged.
"""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from harness.results import write_json_atomic
    from harness.tasks.recall_summary import format_summary, load_grids, summarise

    try:
        settings, rows = load_grids(args.grids)
        summary = summarise(rows, reference=args.reference, level=args.level)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not any(entry["method"] == args.reference for entry in summary):
        print(f"note: no '{args.reference}' rows: no paired differences", file=sys.stderr)
    print(format_summary(summary, reference=args.reference))
    if args.output:
        write_json_atomic(
            args.output,
            {
                "task": "mqar-summary",
                "settings": settings,
                "sources": [str(p) for p in args.grids],
                "reference": args.reference,
                "level": args.level,
                "summary": summary,
                "rows": rows,
            },
        )
        print(f"wrote {args.output}")
    return 0


def register(subparsers) -> None:
    summary = subparsers.add_parser(
        "mqar-summary",
        help="means, intervals and paired differences of MQAR grids over seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    summary.add_argument("grids", nargs="+", metavar="FILE", help="JSON files of `mqar` runs")
    summary.add_argument("--reference", default="sdpa", help="method every other is paired against")
    summary.add_argument("--level", type=float, default=0.95, help="interval level")
    summary.add_argument("--output", default=None, help="JSON file for the summary")
    summary.set_defaults(func=run)
