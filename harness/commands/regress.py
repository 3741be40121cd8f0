"""``python -m harness regress BASE HEAD``: the performance regression gate.

Times the gate's cases on two commits of this repository, interleaved on this machine, and
exits 1 when any case is slower by a change that is both significant (level ``--alpha``)
and larger than that case's measured noise floor; 0 otherwise; 2 when a comparison could
not be made. ``regress HEAD HEAD`` is an A/A run: it measures the false-alarm behaviour.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from tqdm import tqdm

from harness.regress_runner import GateError, compare_commits
from harness.results import machine_fingerprint, write_json_atomic


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "regress", help="performance regression gate between two commits", description=__doc__
    )
    p.add_argument("base", help="base commit-ish (e.g. origin/main)")
    p.add_argument("head", help="head commit-ish (e.g. HEAD)")
    p.add_argument(
        "--workload",
        default="harness.attention_scaling",
        help="module defining build_case(case_id) (and GATE_CASES)",
    )
    p.add_argument("--cases", nargs="+", default=None, help="case ids (default: GATE_CASES)")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument(
        "--min-floor",
        type=float,
        default=0.05,
        help="smallest relative change ever called a regression",
    )
    p.add_argument(
        "--workers-per-side",
        type=int,
        default=1,
        help="worker processes per commit, used in rotation (default 1)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per worker (default 0 = the library default)",
    )
    p.add_argument("--repo", default=".")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="results/regress.json")
    p.set_defaults(func=run)


def run(args) -> int:
    cases = args.cases
    if cases is None:
        import importlib

        cases = list(importlib.import_module(args.workload).GATE_CASES)
    bar = tqdm(total=len(cases) * args.rounds, desc="regress", unit="round", file=sys.stderr)
    try:
        results = compare_commits(
            args.repo,
            args.base,
            args.head,
            cases,
            workload=args.workload,
            rounds=args.rounds,
            alpha=args.alpha,
            min_floor=args.min_floor,
            seed=args.seed,
            workers_per_side=args.workers_per_side,
            threads=args.threads or None,
            progress=lambda: bar.update(1),
        )
    except (GateError, ValueError) as error:
        bar.close()
        print(f"regress: {error}", file=sys.stderr)
        return 2
    bar.close()
    failed = errors = 0
    width = max(len(c) for c in cases)
    for case, r in results.items():
        if "error" in r:
            errors += 1
            print(f"{case:{width}s}  ERROR: {r['error']}")
            continue
        failed += r["regression"]
        word = "REGRESSION" if r["regression"] else "improved" if r["improvement"] else "same"
        print(
            f"{case:{width}s}  {word:10s}  head/base x{r['ratio']:.3f} "
            f"[{r['low']:.3f}, {r['high']:.3f}]  noise floor {r['noise_floor']:.1%}"
        )
    write_json_atomic(
        args.output,
        {
            "schema": "lisa-bench/regress/1",
            "created": datetime.now(timezone.utc).isoformat(),
            "machine": machine_fingerprint(),
            "base": args.base,
            "head": args.head,
            "rounds": args.rounds,
            "alpha": args.alpha,
            "min_floor": args.min_floor,
            "workers_per_side": args.workers_per_side,
            "threads": args.threads or None,
            "results": results,
        },
    )
    print(
        f"{failed} regression(s), {errors} error(s) in {len(cases)} case(s); "
        f"details in {args.output}"
    )
    return 2 if errors else (1 if failed else 0)
