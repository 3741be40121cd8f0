"""``python -m harness bench --family graph``: the graph workload (see
:mod:`harness.workloads.graph_sampling`) over graph sizes, with ratios against exhaustive
aggregation measured in the same run, fitted exponents against graph size, and the
results JSON (``results/graph-scaling.json``, written atomically)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from harness.bench import tables as bench_report
from harness.results import config_hash, machine_fingerprint, write_json_atomic
from harness.scaling import exponent_problem, fit_exponent, format_exponent
from harness.workloads import graph_sampling as workload

SCHEMA = "lisa-bench/graph-bench/1"


def _fmt_time(s):
    return "-" if s is None else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


def _ratio(num, den):
    return "-" if num is None or den in (None, 0) else f"{num / den:.2f}x"


def _fmt_exponent(fit, note: str | None = None) -> str:
    return "not enough points" if fit is not None and note else format_exponent(fit)


def render(rows: list[dict]) -> str:
    base = {r["edges"]: r for r in rows if r["method"] == workload.BASELINE}
    header = (
        "method",
        "edges",
        "median",
        "peak mem",
        "edges in comp.",
        "share",
        "speed-up vs exh.",
        "mem vs exh.",
        "status",
    )
    lines = []
    for r in rows:
        b = base.get(r["edges"], {})
        share = (
            f"{r['edges_in_computation'] / r['batch_edges']:.1%}" if r.get("batch_edges") else "-"
        )
        peak = r.get("peak_bytes")
        lines.append(
            (
                r["method"],
                f"{r['edges']:,}",
                _fmt_time(r.get("median_s")),
                "-" if peak is None else f"{peak / 2**20:.1f} MiB",
                f"{r.get('edges_in_computation', '-'):,}" if "edges_in_computation" in r else "-",
                share,
                _ratio(b.get("median_s"), r.get("median_s")),
                _ratio(peak, b.get("peak_bytes")),
                r["status"],
            )
        )
    return bench_report.table(header, lines)


def summarise(rows: list[dict], sizes: list[int]) -> dict:
    out = {}
    for label in dict.fromkeys(r["method"] for r in rows):
        by_size = {r["edges"]: r for r in rows if r["method"] == label}
        pick = [by_size.get(n, {}) for n in sizes]
        times = [r.get("median_s") for r in pick]
        peaks = [r.get("peak_bytes") for r in pick]
        out[label] = {
            "time_exponent": fit_exponent(sizes, times),
            "memory_exponent": fit_exponent(sizes, peaks),
            "exponent_notes": {
                "time": exponent_problem(sizes, times),
                "memory": exponent_problem(sizes, peaks),
            },
        }
    return out


def render_exponents(summary: dict) -> str:
    """Fitted exponents against graph size, one line per configuration; a fit over too
    few sizes or too narrow a span is "not enough points", with the rule once below."""
    lines = ["fitted exponents against graph size (value ~ E^k, 95% interval):"]
    notes = []
    for label, e in summary.items():
        why = e.get("exponent_notes") or {}
        t = _fmt_exponent(e["time_exponent"], why.get("time"))
        m = _fmt_exponent(e["memory_exponent"], why.get("memory"))
        lines.append(f"  {label:32s} time k = {t}; memory k = {m}")
        notes += [n for n in why.values() if n and n not in notes]
    lines += [f"  k {n}; measure more sizes (--full or --graph-edges)" for n in notes]
    return "\n".join(lines)


def plot_groups(rows: list[dict]) -> list[dict]:
    """The rows to plot, one figure per estimator: every sampler with that estimator
    beside exhaustive aggregation (repeated in each figure as the reference), so every
    row is drawn and no figure holds more than one line per sampler."""
    base = [r for r in rows if r["method"] == workload.BASELINE]
    others = [r for r in rows if r["method"] != workload.BASELINE]
    out = []
    for est in dict.fromkeys(r.get("estimator") for r in others):
        mine = [r for r in others if r.get("estimator") == est]
        out += [{**r, "pass": f"{r['pass']}, {est} estimator"} for r in base + mine]
    return out or base


def run(args) -> int:
    sizes = sorted(
        set(args.graph_edges or (workload.FULL_SIZES if args.full else workload.QUICK_SIZES))
    )
    if any(n < 100 for n in sizes):
        print("--graph-edges must all be >= 100", file=sys.stderr)
        return 2
    configs = workload.configs()
    cases = [(c, n) for n in sizes for c in configs]
    rows = []
    started = time.perf_counter()
    bar = tqdm(cases, desc="bench graph", unit="case", file=sys.stderr, disable=args.no_progress)
    for config, n in bar:
        bar.set_postfix_str(f"{config.label} E={n:,}")
        row = workload.run_case(
            config,
            n,
            repeats=args.repeats,
            budget_s=args.budget or 5.0,
            seed=args.seed,
            memory_fraction=args.memory_fraction,
        )
        # the keys the shared report code (comparison, plots) reads: size, mode and pass
        row.update(L=n, mode="graph", **{"pass": f"aggregation step, batch {workload.BATCH}"})
        rows.append(row)
    bar.close()
    wall = time.perf_counter() - started
    summary = summarise(rows, sizes)
    print(render(rows))
    print("\n" + render_exponents(summary))
    config = {
        "family": "graph",
        "sizes": sizes,
        "batch": workload.BATCH,
        "budget": workload.BUDGET,
        "dim": workload.DIM,
        "repeats": args.repeats,
        "seed": args.seed,
        "configs": [c.label for c in configs],
    }
    machine = machine_fingerprint()
    history = Path(args.history_dir) / f"graph-{config_hash(machine)}-{config_hash(config)}.json"
    try:
        previous = json.loads(history.read_text())
    except (OSError, ValueError):
        previous = None
    changes = bench_report.compare_runs(rows, previous["rows"]) if previous else {}
    print(bench_report.render_comparison(changes, previous["created"] if previous else None))
    plots: list[str] = []
    if not args.no_plots:
        from harness.bench.plots import PlotsUnavailable, left_out, plot_rows

        try:
            plots = [
                str(p)
                for p in plot_rows(
                    plot_groups(rows), args.plots_dir, family="graph", size_label="graph edges"
                )
            ]
        except PlotsUnavailable as error:
            print(f"\n{error}", file=sys.stderr)
        missing = left_out(rows, "E")
        if plots and missing:
            print("\nnot plotted (no measurement): " + "; ".join(missing))
    payload = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(),
        "machine": machine,
        "config": config,
        "config_hash": config_hash(config),
        "wall_s": wall,
        "rows": rows,
        "summary": summary,
        "plots": plots,
        "comparison": {
            "previous_created": previous["created"] if previous else None,
            "changes": changes,
        },
    }
    path = write_json_atomic(args.output or "results/graph-scaling.json", payload)
    write_json_atomic(history, payload)
    print(
        f"\nwall time {wall:.1f} s; results written to {path}"
        + (f"; plots: {', '.join(plots)}" if plots else "")
    )
    return 0 if all(r["status"] == "ok" or r["status"].startswith("skipped") for r in rows) else 1
