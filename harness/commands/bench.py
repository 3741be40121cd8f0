"""``python -m harness bench``: forward time and peak memory of exact attention, SDPA and
LISA over sequence length, with speed-ups, fitted exponents and crossover lengths."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

import torch
from tqdm import tqdm

from harness.attention_scaling import DEFAULT_LENGTHS, METHODS, QUICK_LENGTHS, run_case
from harness.results import config_hash, machine_fingerprint, write_json_atomic
from harness.scaling import crossover_length, fit_exponent

BASELINE = "sdpa"
ORACLE = "exact (oracle)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="attention scaling benchmark (the main job)", description=__doc__
    )
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=None,
        help=f"sequence lengths (default {' '.join(map(str, DEFAULT_LENGTHS))})",
    )
    p.add_argument(
        "--quick", action="store_true", help=f"short grid {' '.join(map(str, QUICK_LENGTHS))}"
    )
    p.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    p.add_argument("--repeats", type=int, default=5, help="timed calls per case (median)")
    p.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="stop repeating a case after this many seconds (>= 1 timed call)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--output", default="results/attention-scaling.json")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _fmt_time(s):
    return "-" if s is None else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


def _fmt_bytes(b):
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def _fmt_ratio(a, b):
    return "-" if a is None or b is None or a == 0 else f"{b / a:.1f}x"


def render_table(rows: list[dict]) -> str:
    by_key = {(r["method"], r["L"]): r for r in rows}
    header = ("method", "L", "median", "IQR", "peak mem", "speed-up vs sdpa", "vs oracle", "status")
    lines = []
    for r in rows:
        t = r.get("median_s")
        base = by_key.get((BASELINE, r["L"]), {}).get("median_s")
        oracle = by_key.get((ORACLE, r["L"]), {}).get("median_s")
        iqr = "-" if t is None else f"{_fmt_time(r['q1_s'])}..{_fmt_time(r['q3_s'])}"
        lines.append(
            (
                r["method"],
                str(r["L"]),
                _fmt_time(t),
                iqr,
                _fmt_bytes(r.get("peak_bytes")),
                _fmt_ratio(t, base),
                _fmt_ratio(t, oracle),
                r["status"],
            )
        )
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)) for x in lines]
    return "\n".join(out)


def summarise(rows: list[dict], methods: list[str], lengths: list[int]) -> dict:
    by_key = {(r["method"], r["L"]): r for r in rows}
    summary = {}
    for m in methods:
        ts = [by_key[(m, n)].get("median_s") for n in lengths]
        ms = [by_key[(m, n)].get("peak_bytes") for n in lengths]
        entry = {
            "time_exponent": fit_exponent(lengths, ts),
            "memory_exponent": fit_exponent(lengths, ms),
        }
        if m != BASELINE and BASELINE in methods:
            base = [by_key[(BASELINE, n)].get("median_s") for n in lengths]
            entry["crossover_vs_sdpa"] = crossover_length(lengths, ts, base)
        summary[m] = entry
    return summary


def render_summary(summary: dict) -> str:
    def exp(e):
        return "-" if e is None else f"{e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}]"

    out = ["", "fitted exponents (value ~ L^k, 95% interval) and crossover against sdpa:"]
    for m, e in summary.items():
        line = (
            f"  {m:16s} time k = {exp(e['time_exponent'])}; memory k = {exp(e['memory_exponent'])}"
        )
        if "crossover_vs_sdpa" in e:
            kind, where = e["crossover_vs_sdpa"]
            line += {
                "at": f"; beats sdpa from L ~ {where:,.0f}" if where else "",
                "below": f"; beats sdpa at every L (from {where:,})",
                "above": f"; slower than sdpa up to L = {where:,}",
                "n/a": "; no crossover data",
            }[kind]
        out.append(line)
    return "\n".join(out)


def run(args) -> int:
    lengths = args.lengths or list(QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS)
    if any(n < 1 for n in lengths):
        print("--lengths must all be >= 1", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("--repeats must be >= 1", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    cases = [(m, n) for n in sorted(lengths) for m in args.methods]
    rows = []
    started = time.perf_counter()
    progress = tqdm(cases, desc="bench", unit="case", file=sys.stderr)
    for name, length in progress:
        progress.set_postfix_str(f"{name} L={length}")
        rows.append(
            run_case(
                METHODS[name],
                length,
                repeats=args.repeats,
                budget_s=args.budget,
                device=device,
                seed=args.seed,
            )
        )
    progress.close()
    wall = time.perf_counter() - started
    summary = summarise(rows, args.methods, sorted(lengths))
    print(render_table(rows))
    print(render_summary(summary))
    config = {
        "lengths": sorted(lengths),
        "methods": args.methods,
        "repeats": args.repeats,
        "budget_s": args.budget,
        "device": str(device),
        "seed": args.seed,
        "dtype": "float32",
        "batch": 1,
        "dim": 128,
        "causal": True,
    }
    payload = {
        "schema": "lisa-bench/attention-scaling/1",
        "created": datetime.now(timezone.utc).isoformat(),
        "machine": machine_fingerprint(),
        "config": config,
        "config_hash": config_hash(config),
        "wall_s": wall,
        "rows": rows,
        "summary": summary,
    }
    path = write_json_atomic(args.output, payload)
    print(f"\nwall time {wall:.1f} s; results written to {path}")
    return 0
