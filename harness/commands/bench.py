"""``python -m harness bench``: the scaling benchmark suite (``nox -s bench``).

Runs the attention workload (``harness.workloads.attention``: every available registry
method and the LISA operator rows, batch 1, dim 128, forward and forward+backward, causal
and bidirectional) through pytest-benchmark, quick grid L = 256, 1,024, 4,096 by default
and ``--full`` for L = 256 .. 65,536. Prints one table per mode and pass with median time,
IQR, peak memory, analytic bytes, speed-up and memory ratio against SDPA and the oracle
measured in the same run; then the fitted exponents of time and memory against L with
95% intervals and the crossover lengths. Writes the results JSON (machine fingerprint,
config hash, library versions; atomically), log-log PNG plots, and compares with the
previous run of the same config on the same machine, marking changes beyond noise.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from harness import bench_report
from harness.results import config_hash, machine_fingerprint, write_json_atomic
from harness.workloads import FAMILIES, family_module
from harness.workloads import attention as workload

SCHEMA = "lisa-bench/bench/2"
VERSIONED = ("torch", "numpy", "pytest", "pytest-benchmark", "memray", "matplotlib", "xformers")


def _method_choices() -> list[str]:
    try:
        rows, skipped = workload.variants("cpu")
    except Exception:  # a broken external method must not hide --help
        return []
    return sorted({v.label for v in rows} | {s["method"] for s in skipped} | {"sdpa flash bf16"})


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="scaling benchmark suite (the main job)", description=__doc__
    )
    p.add_argument("--family", choices=sorted(FAMILIES), default="attention")
    p.add_argument(
        "--graph-edges",
        type=int,
        nargs="+",
        default=None,
        help="graph family: synthetic graph sizes in edges (default 10^4 10^5; --full to 10^7)",
    )
    grid = p.add_mutually_exclusive_group()
    grid.add_argument(
        "--quick",
        action="store_true",
        help=f"short grid L = {' '.join(map(str, workload.QUICK_LENGTHS))} (the default)",
    )
    grid.add_argument(
        "--full",
        action="store_true",
        help=f"whole grid L = {' '.join(map(str, workload.FULL_LENGTHS))}",
    )
    grid.add_argument("--lengths", type=int, nargs="+", default=None, help="your own grid")
    choices = _method_choices()
    p.add_argument(
        "--methods",
        nargs="+",
        choices=choices or None,
        default=None,
        help="rows to run (default: every available one)",
    )
    p.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="add an unpublished registry method (repeatable)",
    )
    p.add_argument("--modes", nargs="+", choices=workload.MODES, default=list(workload.MODES))
    p.add_argument("--passes", nargs="+", choices=workload.PASSES, default=list(workload.PASSES))
    p.add_argument("--repeats", type=int, default=5, help="most timed calls per case")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed calls per case before fewer repeats are used (at least 3 "
        "calls); default 2 for the quick grid, 20 for --full",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice); recorded in the machine "
        "fingerprint. 1 avoids thread-barrier stalls on a machine shared with other jobs",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-fraction", type=float, default=0.5)
    p.add_argument(
        "--output",
        default=None,
        help="results JSON (default results/attention-scaling.json, or results/graph-scaling.json"
        " for --family graph)",
    )
    p.add_argument("--plots-dir", default="results/plots")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--history-dir",
        default="results/bench-history",
        help="last run per machine fingerprint and config hash (for the comparison)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def library_versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run(args) -> int:
    if args.family != "attention":
        module, reason = family_module(args.family)
        if module is None:
            print(f"family {args.family!r} cannot run here: {reason}", file=sys.stderr)
            return 2
        from harness import bench_graph

        return bench_graph.run(args)
    lengths = args.lengths or list(workload.FULL_LENGTHS if args.full else workload.QUICK_LENGTHS)
    if any(n < 1 for n in lengths):
        print("--lengths must all be >= 1", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("--repeats must be >= 1", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print("--threads must be >= 1", file=sys.stderr)
        return 2
    threads = torch.get_num_threads()
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        return _run(args, lengths)
    finally:
        torch.set_num_threads(threads)  # the command may run inside another program


def _run(args, lengths: list[int]) -> int:
    budget = args.budget if args.budget is not None else (20.0 if args.full else 2.0)
    try:
        from harness.bench_pytest import BenchPlugin, run_plan
    except ImportError as error:
        print(f"bench needs pytest and pytest-benchmark (the dev extra): {error}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    try:
        plan = workload.make_plan(
            lengths,
            methods=args.methods,
            modes=args.modes,
            passes=args.passes,
            device=device,
            extra=args.method,
        )
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    for s in plan.skipped_methods:
        print(f"skipped {s['method']}: {s['reason']}")
    for s in plan.skipped_modes:
        print(f"skipped {s['method']} {s['mode']}: {s['reason']}")

    config = {
        "family": "attention",
        "lengths": sorted(set(lengths)),
        "methods": [
            {"label": v.label, "dtype": v.dtype, "params": v.params} for v in plan.variants
        ],
        "modes": list(args.modes),
        "passes": list(args.passes),
        "repeats": args.repeats,
        "budget_s": budget,
        "device": device.type,
        "seed": args.seed,
        "batch": workload.BATCH,
        "heads": workload.HEADS,
        "dim": workload.DIM,
    }
    machine = machine_fingerprint()
    cfg_hash, machine_hash = config_hash(config), config_hash(machine)
    history = Path(args.history_dir) / f"attention-{machine_hash}-{cfg_hash}.json"
    previous = _load(history)

    plugin = BenchPlugin(
        plan,
        repeats=args.repeats,
        budget_s=budget,
        seed=args.seed,
        memory_fraction=args.memory_fraction,
        progress=not args.no_progress,
    )
    started = time.perf_counter()
    code, rows = run_plan(plugin)
    wall = time.perf_counter() - started
    for problem in plugin.problems:
        print(problem, file=sys.stderr)

    changes = bench_report.compare_runs(rows, previous["rows"]) if previous else {}
    expected = {
        v.label: (v.spec.time_exponent, v.spec.memory_exponent)
        for v in plan.variants
        if v.spec is not None
    }
    summary = bench_report.summarise(
        rows, baseline=workload.BASELINE, oracle=workload.ORACLE, expected=expected
    )
    print(
        bench_report.render_tables(
            rows, baseline=workload.BASELINE, oracle=workload.ORACLE, changes=changes
        )
    )
    print(bench_report.render_summary(summary, baseline=workload.BASELINE, oracle=workload.ORACLE))
    print(bench_report.render_comparison(changes, previous["created"] if previous else None))

    plots: list[str] = []
    if not args.no_plots:
        from harness.plots import PlotsUnavailable, plot_rows

        try:
            plots = [str(p) for p in plot_rows(rows, args.plots_dir, family="attention")]
        except PlotsUnavailable as error:
            print(f"\n{error}", file=sys.stderr)

    payload = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(),
        "machine": machine,
        "machine_hash": machine_hash,
        "versions": library_versions(),
        "config": config,
        "config_hash": cfg_hash,
        "wall_s": wall,
        "skipped_methods": plan.skipped_methods,
        "skipped_modes": plan.skipped_modes,
        "rows": rows,
        "summary": summary,
        "comparison": {
            "previous_created": previous["created"] if previous else None,
            "changes": changes,
        },
        "plots": plots,
    }
    path = write_json_atomic(args.output or "results/attention-scaling.json", payload)
    write_json_atomic(history, payload)
    print(
        f"\nwall time {wall:.1f} s; results written to {path}"
        + (f"; plots: {', '.join(plots)}" if plots else "")
    )
    errors = [r for r in rows if r["status"].startswith("error")]
    if plugin.problems or len(rows) != len(plan.cases) or errors:
        print(
            f"bench: {len(errors)} case(s) failed, {len(plugin.problems)} problem(s)",
            file=sys.stderr,
        )
        return 1
    return 0 if code in (0, 5) else 1
