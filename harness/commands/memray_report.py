"""``python -m harness memray``: the largest feasible case of each attention method under
memray — peak heap per case beside its analytic bound, and a flame-graph HTML report.

The method rows come from the method registry, resolved when the command runs (never
when the parser is built), so a bad ``LISA_BENCH_METHODS`` entry fails this command with
a one-line error and leaves ``--help`` and the other commands alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.runner.cli import add_isolation_arguments, limits_from_args
from harness.workloads.grids import GRIDS

DEFAULT_LENGTHS = GRIDS["memory"].lengths  # candidate lengths (the named grid "memory")


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
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="rows of the attention workload to run (default: every available one; "
        "`python -m harness methods` lists the registry)",
    )
    p.add_argument(
        "--output-dir",
        default="results/memray",
        help="folder for the captures (.bin), flame graphs and memray.json",
    )
    p.add_argument("--no-flamegraph", action="store_true", help="skip the flame-graph HTML reports")
    add_isolation_arguments(p)
    p.set_defaults(func=run)


def memray_plan(lengths: list[int], methods: list[str] | None, budget: float) -> list:
    """(worker) [(method, the largest length whose analytic need fits ``budget``, or None)]
    over the gate workload's rows; ValueError naming unknown ``methods``."""
    from harness.regress.gate_workload import METHODS

    unknown = [m for m in methods or () if m not in METHODS]
    if unknown:
        raise ValueError(
            f"--methods: unknown {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(sorted(METHODS))}"
        )
    out = []
    for name in methods or list(METHODS):
        fitting = [n for n in sorted(lengths) if METHODS[name].bytes_needed(n) <= budget]
        out.append((name, fitting[-1] if fitting else None))
    return out


def memray_capture(name: str, length: int, capture: str) -> dict:
    """(worker) One warm-up call, then one call under memray writing ``capture``."""
    import memray
    import torch

    from harness.regress.gate_workload import METHODS

    method = METHODS[name]
    fn = method.build(length, torch.device("cpu"), torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fn()  # warm-up outside the capture
        Path(capture).unlink(missing_ok=True)
        with memray.Tracker(capture, native_traces=False):
            fn()
    return {
        "peak_bytes": int(memray.FileReader(capture).metadata.peak_memory),
        "analytic_bytes": method.bytes_needed(length),
        "capture": capture,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def run(args) -> int:
    try:
        import memray  # noqa: F401 - checked here, used in the worker
    except ImportError:
        print("memray is not installed (pip install memray)", file=sys.stderr)
        return 2
    from tqdm import tqdm

    from harness.measure import available_memory_bytes
    from harness.results import machine_fingerprint, write_json_atomic

    try:
        limits = limits_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from harness.runner.isolation import IsolatedRunner

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = 0.5 * available_memory_bytes()
    rows = []
    with IsolatedRunner(limits) as runner:
        planned = runner.call(memray_plan, list(args.lengths), args.methods, budget)
        if not planned.ok:
            first = planned.message.splitlines()[0] if planned.message else planned.status
            print(f"error: {first.partition(': ')[2] or first}", file=sys.stderr)
            return 2
        for name, length in tqdm(planned.value, desc="memray", unit="method", file=sys.stderr):
            if length is None:
                rows.append({"method": name, "status": "no length fits in memory"})
                continue
            capture = out_dir / f"{_slug(name)}-L{length}.bin"
            outcome = runner.call(memray_capture, name, length, str(capture))
            if not outcome.ok:
                status = outcome.describe().splitlines()[0][:300]
                rows.append({"method": name, "L": length, "status": status})
                continue
            row = {"method": name, "L": length, **outcome.value, "status": "ok"}
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
    # The table, with a reading per row: a peak within a few times the linear bound is its
    # constant; growth between two lengths (this run's rows, or the previous run's in this
    # folder on this machine) tells linear from super-linear memory.
    import json

    from harness.bench.tables import render_memray

    try:
        before = json.loads((out_dir / "memray.json").read_text())
        same = before.get("machine") == machine_fingerprint()
        earlier = [r for r in before["rows"] if isinstance(r, dict)] if same else []
    except (OSError, ValueError, KeyError, TypeError):
        earlier = []
    print(render_memray(rows, earlier))
    path = write_json_atomic(
        out_dir / "memray.json",
        {"schema": "lisa-bench/memray/1", "machine": machine_fingerprint(), "rows": rows},
    )
    print(f"captures, flame graphs and {path.name} in {out_dir}")
    return 0
