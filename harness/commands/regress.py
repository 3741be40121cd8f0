"""``python -m harness regress BASE HEAD``: the performance regression gate.

Times the gate's cases on two revisions of this repository, interleaved on this machine.
Exit code 1 when a judged case is slower by a change that is both significant (level
``--alpha``) and larger than that case's measured noise floor; 2 when any case could not be
compared (it raised, crashed its worker or timed out: that case's error, the others are
still judged) or the gate could not run at all (bad option, revision or dirty working
tree); 0 otherwise. ``regress HEAD HEAD`` is an A/A run: it measures the false-alarm
behaviour.

A revision is a commit-ish (verified; text starting with ``-`` is refused) or WORKTREE, the
working tree's tracked files as they are now, uncommitted changes included. A working tree
with uncommitted changes to tracked files is refused unless ``--allow-dirty`` is given; even
then HEAD means the commit, and only WORKTREE times the uncommitted changes (e.g.
``regress --allow-dirty HEAD WORKTREE``).
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import datetime, timezone

from tqdm import tqdm

from harness.regress.paired_timing import (
    WORKTREE,
    GateError,
    OptionError,
    check_options,
    compare_commits,
    default_memory_cap,
)
from harness.results import machine_fingerprint, write_json_atomic


def register(subparsers) -> None:
    """Add the ``regress`` sub-command and its options."""
    p = subparsers.add_parser(
        "regress",
        help="performance regression gate between two commits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("base", help=f"base commit-ish (e.g. origin/main) or {WORKTREE}")
    p.add_argument(
        "head", help=f"head commit-ish (e.g. HEAD) or {WORKTREE} (the uncommitted working tree)"
    )
    p.add_argument(
        "--workload",
        default="harness.regress.gate_workload",
        help="module defining build_case(case_id) (and GATE_CASES)",
    )
    p.add_argument(
        "--cases", nargs="+", default=None, help="case ids (default: the head's GATE_CASES)"
    )
    p.add_argument("--rounds", type=int, default=21, help="interleaved rounds per case")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level, in (0, 0.5)")
    p.add_argument(
        "--min-floor",
        type=float,
        default=0.05,
        help="smallest relative change ever called a regression",
    )
    p.add_argument(
        "--workers-per-side",
        type=int,
        default=2,
        help="worker processes per commit, used in rotation (default 2: the setting with the "
        "best measured power, docs/regress-power.md)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per worker (default 1, so the workers of both sides do not "
        "contend for cores; 0 = the library default)",
    )
    p.add_argument(
        "--case-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="longest wait for one request to a worker (building a case, its warm-up and "
        "one sample); past it the worker is killed and the case reported as timed out "
        "(default 300)",
    )
    p.add_argument(
        "--memory-cap-gb",
        type=float,
        default=None,
        metavar="GB",
        help="address-space cap of each worker (RLIMIT_AS, where the OS has it); a case "
        "that needs more fails with MemoryError (default: 80%% of the memory available at "
        "start; 0 = no cap)",
    )
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run even though tracked files have uncommitted changes; name the working "
        f"tree {WORKTREE} to time those changes (HEAD stays the commit)",
    )
    p.add_argument("--repo", default=".", help="git repository holding both revisions")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the random base/head order in each round (default 0)",
    )
    p.add_argument(
        "--output", default="results/regress.json", help="per-case verdicts and timings (JSON)"
    )
    p.set_defaults(func=run)


def _memory_cap(gb: float | None) -> int | None:
    """--memory-cap-gb -> bytes (None: no cap); OptionError for a negative or odd value."""
    if gb is None:
        return default_memory_cap()
    if not 0 <= gb < math.inf:
        raise OptionError(f"--memory-cap-gb must be a finite number >= 0, got {gb!r}")
    return int(gb * 2**30) or None


def run(args) -> int:
    """Run the gate as the parsed options say, print one line per case, write the JSON
    report and return the exit code (0 pass, 1 regression, 2 not comparable)."""
    threads = args.threads or None
    bar = None
    try:
        if args.threads < 0:
            raise OptionError(f"--threads must be an integer >= 0, got {args.threads}")
        memory_cap = _memory_cap(args.memory_cap_gb)
        check_options(
            rounds=args.rounds,
            alpha=args.alpha,
            min_floor=args.min_floor,
            workers_per_side=args.workers_per_side,
            threads=threads,
            case_timeout=args.case_timeout,
            memory_cap=memory_cap,
        )

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # only once timing starts, so early errors print alone
                bar = tqdm(total=total, desc="regress", unit="round", file=sys.stderr)
            bar.update(done - bar.n)

        results = compare_commits(
            args.repo,
            args.base,
            args.head,
            args.cases,
            workload=args.workload,
            rounds=args.rounds,
            alpha=args.alpha,
            min_floor=args.min_floor,
            seed=args.seed,
            workers_per_side=args.workers_per_side,
            threads=threads,
            case_timeout=args.case_timeout,
            memory_cap=memory_cap,
            allow_dirty=args.allow_dirty,
            progress=progress,
        )
    except (GateError, ValueError) as error:
        print(f"regress: {error}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    failed, errors = [], []
    width = max((len(c) for c in results), default=0)
    for case, r in results.items():
        if "error" in r:
            errors.append(case)
            print(f"{case:{width}s}  ERROR ({r['error_kind']}): {r['error']}")
            continue
        if r["regression"]:
            failed.append(case)
        word = "REGRESSION" if r["regression"] else "improved" if r["improvement"] else "same"
        print(
            f"{case:{width}s}  {word:10s}  head/base x{r['ratio']:.3f} "
            f"[{r['low']:.3f}, {r['high']:.3f}]  noise floor {r['noise_floor']:.1%}  "
            f"detects >= x{r.get('detectable', float('nan')):.2f}"
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
            "threads": threads,
            "case_timeout": args.case_timeout,
            "memory_cap_bytes": memory_cap,
            "allow_dirty": args.allow_dirty,
            "results": results,
        },
    )
    print(
        f"{len(failed)} regression(s), {len(errors)} case(s) not compared, "
        f"in {len(results)} case(s); details in {args.output}"
    )
    if failed:
        print("regressions: " + ", ".join(failed))
    if errors:
        print("not compared: " + ", ".join(errors))
    return 2 if errors else (1 if failed else 0)
