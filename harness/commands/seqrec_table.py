"""``python -m harness seqrec-table FILE...``: one table from many ``seqrec --output`` files.

Groups the run records by method (LISA layers outside the authors' configuration are
labelled with their differing flags), refuses files trained under different protocols,
and prints each metric's mean with its 95% Student-t interval over the seeds, the paired
difference from ``--reference`` (default ``sdpa``) on the shared seeds, the epoch time,
the step peak heap and the model-free baselines (``harness.seqrec.summary``).
``--output`` also writes the table (Markdown, atomically); ``--json`` the numbers.
"""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from harness.results import write_json_atomic, write_text_atomic
    from harness.seqrec.summary import format_markdown, load_runs, summarise

    try:
        records, baselines = load_runs(args.files)
        summary = summarise(records, reference=args.reference)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not any(row["label"] == args.reference for row in summary["rows"]):
        print(
            f"note: no '{args.reference}' runs among the files: no paired differences",
            file=sys.stderr,
        )
    text = format_markdown(summary, baselines)
    print(text, end="")
    if args.output:
        write_text_atomic(args.output, text)
    if args.json:
        write_json_atomic(args.json, {**summary, "baselines": baselines})
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "seqrec-table",
        help="combine seqrec --output files: mean, 95%% interval and paired difference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="seqrec --output JSON files")
    parser.add_argument("--reference", default="sdpa", help="the method every other is paired with")
    parser.add_argument("--output", default=None, help="also write the Markdown table here")
    parser.add_argument("--json", default=None, help="also write the numbers as JSON here")
    parser.set_defaults(func=run)
