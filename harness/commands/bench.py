"""``python -m harness bench``: the scaling benchmark suite (``nox -s bench``).

Runs the attention workload (``harness.workloads.attention``: every available registry
method and the LISA operator rows, batch 1, dim 128, forward and forward+backward, causal
and bidirectional) through pytest-benchmark, quick grid L = 256, 1,024, 4,096 by default
and ``--full`` for L = 256 .. 65,536. Prints one table per mode and pass with median time,
IQR, peak memory, analytic bytes, speed-up and memory ratio against SDPA and the oracle
measured in the same run, achieved GFLOP/s and GB/s and the fraction of this machine's
roofline (peak FLOP/s of a large matmul and bandwidth of a streaming copy, measured once
per run in the worker that times the cases: docs/roofline.md); then the fitted exponents
of time and memory against L with 95% intervals and the crossover lengths. Writes the
results JSON (machine fingerprint, config hash, library versions, the measured peaks;
atomically), log-log PNG plots and a roofline plot, and compares with the previous run of
the same config on the same machine, marking changes beyond noise.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from harness.bench import tables as bench_report
from harness.measure_peaks import Peaks, with_roofline
from harness.results import config_hash, machine_fingerprint, write_json_atomic
from harness.runner.cli import add_isolation_arguments, limits_from_args, machine_load
from harness.runner.journal import JournalError, OutputLock, RunJournal, partial_path
from harness.workloads import FAMILIES, family_module
from harness.workloads import attention as workload

SCHEMA = "lisa-bench/bench/2"
DEFAULT_OUTPUT = "results/attention-scaling.json"
DEFAULT_PLOTS = "results/plots"
VERSIONED = ("torch", "numpy", "pytest", "pytest-benchmark", "memray", "matplotlib", "xformers")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="scaling benchmark suite (the main job)", description=__doc__
    )
    p.add_argument(
        "--family",
        choices=sorted(FAMILIES),
        default="attention",
        help="workload: attention (sequence length L) or graph (sampled aggregation)",
    )
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
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="rows to run, by label (default: every available one; `python -m harness "
        "methods` lists the registry, plus the operator rows 'lisa W=16' and 'lisa W=128')",
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="add an unpublished registry method (repeatable; the same flag on every command)",
    )
    p.add_argument(  # the old spelling, kept working
        "--method", action="append", dest="plugin", help=argparse.SUPPRESS
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=workload.MODES,
        default=list(workload.MODES),
        help="attention masks to run",
    )
    p.add_argument(
        "--passes",
        nargs="+",
        choices=workload.PASSES,
        default=list(workload.PASSES),
        help="timed call: the forward pass, or forward and backward",
    )
    p.add_argument("--repeats", type=int, default=5, help="most timed calls per case")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed calls per case before fewer repeats are used (at least 3 "
        "calls); default 2 for the quick grid, 20 for --full",
    )
    p.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda when available, else cpu)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice); recorded in the machine "
        "fingerprint. 1 avoids thread-barrier stalls on a machine shared with other jobs",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the inputs and of learned-state calibration (default 0)",
    )
    p.add_argument(
        "--memory-fraction",
        type=float,
        default=0.5,
        help="skip a case whose analytic memory need exceeds this fraction of available memory",
    )
    p.add_argument(
        "--output",
        default=None,
        help=f"results JSON (default {DEFAULT_OUTPUT} for the default grid, "
        "results/attention-scaling-<config hash>.json for a narrowed one (other --lengths, "
        "--full, --methods, --plugin, --modes or --passes), results/graph-scaling.json for "
        "--family graph)",
    )
    p.add_argument(
        "--plots-dir",
        default=None,
        help=f"folder for the log-log PNG plots (default {DEFAULT_PLOTS} for the default grid "
        "and --family graph, results/plots/<config hash>/ for a narrowed one)",
    )
    p.add_argument("--no-plots", action="store_true", help="write no plots")
    p.add_argument(
        "--history-dir",
        default="results/bench-history",
        help="last run per machine fingerprint and config hash (for the comparison)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_isolation_arguments(p)
    habits = p.add_argument_group(
        "pytest-benchmark", "passed to pytest-benchmark, which holds the isolated timings"
    )
    habits.add_argument(
        "--benchmark-autosave", action="store_true", help="save this run in the storage"
    )
    habits.add_argument("--benchmark-save", metavar="NAME", help="save this run under NAME")
    habits.add_argument(
        "--benchmark-compare",
        nargs="?",
        const="",
        default=None,
        metavar="NUM",
        help="compare with saved run NUM (default: the latest)",
    )
    habits.add_argument(
        "--benchmark-compare-fail",
        action="append",
        default=[],
        metavar="EXPR",
        help="fail when a case regresses, e.g. min:5%% or median:0.001 (repeatable)",
    )
    habits.add_argument(
        "--benchmark-storage", metavar="URI", help="storage (default file://./.benchmarks)"
    )
    habits.add_argument("--benchmark-json", metavar="PATH", help="pytest-benchmark's JSON")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run of this configuration from its journal "
        "(OUTPUT.journal.jsonl) instead of refusing to start",
    )
    p.set_defaults(func=run)


def pytest_benchmark_args(args) -> list[str]:
    """The ``--benchmark-*`` options given to bench, as pytest command-line arguments."""
    out: list[str] = []
    if getattr(args, "benchmark_autosave", False):
        out.append("--benchmark-autosave")
    if getattr(args, "benchmark_save", None):
        out.append(f"--benchmark-save={args.benchmark_save}")
    compare = getattr(args, "benchmark_compare", None)
    if compare is not None:
        out.append(f"--benchmark-compare={compare}" if compare else "--benchmark-compare")
    out += [f"--benchmark-compare-fail={e}" for e in getattr(args, "benchmark_compare_fail", [])]
    if getattr(args, "benchmark_storage", None):
        out.append(f"--benchmark-storage={args.benchmark_storage}")
    if getattr(args, "benchmark_json", None):
        out.append(f"--benchmark-json={args.benchmark_json}")
    return out


def library_versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def is_default_grid(args, lengths) -> bool:
    """Whether the run covers the default grid: the quick lengths, every method, mode and
    pass (other settings such as --repeats do not narrow it)."""
    return (
        sorted(set(lengths)) == sorted(workload.QUICK_LENGTHS)
        and args.methods is None
        and not args.plugin
        and set(args.modes) == set(workload.MODES)
        and set(args.passes) == set(workload.PASSES)
    )


def output_paths(args, lengths, cfg_hash: str) -> tuple[Path, Path]:
    """(results JSON, plots folder): --output / --plots-dir when given; otherwise the
    default names for the default grid and names carrying the config hash for any other,
    so that a narrowed rerun never replaces the default grid's results or plots."""
    default = is_default_grid(args, lengths)
    output = args.output or (
        DEFAULT_OUTPUT if default else f"results/attention-scaling-{cfg_hash}.json"
    )
    plots = args.plots_dir or (DEFAULT_PLOTS if default else f"{DEFAULT_PLOTS}/{cfg_hash}")
    return Path(output), Path(plots)


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
        from harness.bench import graph_family as bench_graph

        args.plots_dir = args.plots_dir or DEFAULT_PLOTS
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
    try:
        args.limits = limits_from_args(args)
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
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
        from harness.bench.pytest_suite import BenchPlugin, run_plan
    except ImportError as error:
        print(f"bench needs pytest and pytest-benchmark (the dev extra): {error}", file=sys.stderr)
        return 2
    from harness.runner.attention_tasks import load_plan, measure_peaks_in
    from harness.runner.isolation import IsolatedRunner

    device = torch.device(args.device)
    with IsolatedRunner(args.limits) as runner:
        try:
            plan = load_plan(
                runner,
                lengths,
                methods=args.methods,
                modes=args.modes,
                passes=args.passes,
                device=device.type,
                extra=args.plugin,
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
            "validation": True,
        }
        machine = machine_fingerprint()
        cfg_hash = config_hash(config)
        output, args.plots_dir = output_paths(args, lengths, cfg_hash)
        print(
            f"results: {output}"
            + ("" if args.no_plots else f"; plots: {args.plots_dir}")
            + (
                " (a narrowed grid: named by its config hash, so the default grid's results stay)"
                if not (args.output or is_default_grid(args, lengths))
                else ""
            )
        )
        args.load = machine_load(args.threads)
        if args.load["warning"]:
            print(f"warning: {args.load['warning']}", file=sys.stderr)
        args.peaks, args.peaks_error = measure_peaks_in(
            runner, device.type, [v.dtype for v in plan.variants]
        )
        try:
            with OutputLock(output):
                journal = RunJournal(output, cfg_hash, resume=args.resume)
                if journal.resumed:
                    print(f"resuming: {journal.resumed} case(s) already in {journal.path}")
                plugin = BenchPlugin(
                    plan,
                    repeats=args.repeats,
                    budget_s=budget,
                    seed=args.seed,
                    memory_fraction=args.memory_fraction,
                    progress=not args.no_progress,
                    runner=runner,
                    journal=journal,
                    peaks=args.peaks,
                )
                started = time.perf_counter()
                code, rows = run_plan(plugin, pytest_benchmark_args(args))
                wall = time.perf_counter() - started
                if code == 4 and not rows:  # pytest refused its arguments (a --benchmark-*)
                    journal.discard_if_empty()
                    print("bench: pytest-benchmark refused an option (above)", file=sys.stderr)
                    return 2
                return _report(
                    args, plan, plugin, rows, code, wall, config, machine, output, journal
                )
        except JournalError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 2


def _report(args, plan, plugin, rows, code, wall, config, machine, output, journal) -> int:
    """Tables, plots and the result document of a finished or interrupted run."""
    cfg_hash, machine_hash = config_hash(config), config_hash(machine)
    peaks: dict[str, Peaks] = getattr(args, "peaks", None) or {}
    peaks_error = getattr(args, "peaks_error", None)
    # every row against this run's peaks (rows of a resumed run's journal included)
    rows = [with_roofline(r, peaks.get(r.get("dtype", "float32"))) for r in rows]
    history = Path(args.history_dir) / f"attention-{machine_hash}-{cfg_hash}.json"
    previous = _load(history)
    done = {workload.Case(r["method"], r["L"], r["mode"], r["pass"], r["device"]).id for r in rows}
    complete = all(c.id in done for c in plan.cases) and not plugin.problems
    for problem in plugin.problems:
        print(problem, file=sys.stderr)

    changes = bench_report.compare_runs(rows, previous["rows"]) if previous else {}
    expected = {v.label: (v.time_exponent, v.memory_exponent) for v in plan.variants}
    summary = bench_report.summarise(
        rows, baseline=workload.BASELINE, oracle=workload.ORACLE, expected=expected
    )
    print(bench_report.render_peaks({k: p.as_dict() for k, p in peaks.items()}, peaks_error))
    print(
        bench_report.render_tables(
            rows, baseline=workload.BASELINE, oracle=workload.ORACLE, changes=changes
        )
    )
    print(bench_report.render_summary(summary, baseline=workload.BASELINE, oracle=workload.ORACLE))
    print(bench_report.render_comparison(changes, previous["created"] if previous else None))

    plots: list[str] = []
    if not args.no_plots and complete:
        from harness.bench.plots import PlotsUnavailable, plot_roofline, plot_rows

        try:
            plots = [str(p) for p in plot_rows(rows, args.plots_dir, family="attention")]
            roof = plot_roofline(rows, peaks, args.plots_dir, family="attention")
            plots += [str(roof)] if roof is not None else []
        except PlotsUnavailable as error:
            print(f"\n{error}", file=sys.stderr)

    payload = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(),
        "complete": complete,
        "cases_planned": len(plan.cases),
        "cases_done": len(rows),
        "machine": machine,
        "machine_hash": machine_hash,
        "versions": library_versions(),
        "config": config,
        "config_hash": cfg_hash,
        "limits": args.limits.as_dict(),
        "load_at_start": args.load,
        "wall_s": wall,
        "peaks": {k: p.as_dict() for k, p in peaks.items()},
        "peaks_error": peaks_error,
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
    if complete:
        path = write_json_atomic(output, payload)
        write_json_atomic(history, payload)
        journal.finish()
        print(
            f"\nwall time {wall:.1f} s; results written to {path}"
            + (f"; plots in {args.plots_dir}: {', '.join(plots)}" if plots else "")
        )
    else:
        path = write_json_atomic(partial_path(output), payload)
        print(
            f"\nrun INCOMPLETE ({len(rows)} of {len(plan.cases)} cases): partial results in "
            f"{path}; {output} and the history baseline were left as they were. Continue "
            f"with the same command and --resume (journal {journal.path}).",
            file=sys.stderr,
        )
        return 130 if code == 2 else 1
    if plugin.regressions:
        print("bench: --benchmark-compare-fail tripped:", file=sys.stderr)
        for line in plugin.regressions:
            print(f"  {line}", file=sys.stderr)
        return 1
    failed = [r for r in rows if r["status"] != "ok" and not r["status"].startswith("skipped")]
    if failed:
        print(f"bench: {len(failed)} case(s) failed:", file=sys.stderr)
        for r in failed:
            print(
                f"  {r['method']} {r['mode']} {r['pass']} L={r['L']}: {r['status']}",
                file=sys.stderr,
            )
        return 1
    return 0 if code in (0, 1, 5) else 1
