"""``python -m harness memray``: the largest feasible case of each attention method under
memray — peak heap per case beside its analytic bound, and a flame-graph HTML report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from harness.attention_scaling import DEFAULT_LENGTHS, METHODS
from harness.measure import available_memory_bytes
from harness.results import machine_fingerprint, write_json_atomic


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "memray", help="peak memory and flame graphs under memray", description=__doc__
    )
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=list(DEFAULT_LENGTHS),
        help="candidate lengths; the largest that fits is used per method",
    )
    p.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    p.add_argument("--output-dir", default="results/memray")
    p.add_argument("--no-flamegraph", action="store_true")
    p.set_defaults(func=run)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def run(args) -> int:
    try:
        import memray
    except ImportError:
        print("memray is not installed (pip install memray)", file=sys.stderr)
        return 2
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = 0.5 * available_memory_bytes()
    rows = []
    for name in tqdm(args.methods, desc="memray", unit="method", file=sys.stderr):
        method = METHODS[name]
        fitting = [n for n in sorted(args.lengths) if method.bytes_needed(n) <= budget]
        if not fitting:
            rows.append({"method": name, "status": "no length fits in memory"})
            continue
        length = fitting[-1]
        fn = method.build(length, torch.device("cpu"), torch.Generator().manual_seed(0))
        with torch.inference_mode():
            fn()  # warm-up outside the capture
            capture = out_dir / f"{_slug(name)}-L{length}.bin"
            capture.unlink(missing_ok=True)
            with memray.Tracker(capture, native_traces=False):
                fn()
        peak = int(memray.FileReader(capture).metadata.peak_memory)
        row = {
            "method": name,
            "L": length,
            "peak_bytes": peak,
            "analytic_bytes": method.bytes_needed(length),
            "capture": str(capture),
            "status": "ok",
        }
        if not args.no_flamegraph:
            html = capture.with_suffix(".html")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "memray",
                    "flamegraph",
                    "--force",
                    "-o",
                    str(html),
                    str(capture),
                ],
                check=True,
                capture_output=True,
            )
            row["flamegraph"] = str(html)
        rows.append(row)
    print(f"{'method':16s} {'L':>7s} {'peak':>12s} {'analytic':>12s} {'peak/analytic':>14s}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['method']:16s} {r['status']}")
            continue
        print(
            f"{r['method']:16s} {r['L']:7d} {r['peak_bytes'] / 2**20:9.1f} MiB "
            f"{r['analytic_bytes'] / 2**20:9.1f} MiB {r['peak_bytes'] / r['analytic_bytes']:14.2f}"
        )
    path = write_json_atomic(
        out_dir / "memray.json",
        {"schema": "lisa-bench/memray/1", "machine": machine_fingerprint(), "rows": rows},
    )
    print(f"captures, flame graphs and {path.name} in {out_dir}")
    return 0
