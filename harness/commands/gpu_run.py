"""``python -m harness gpu-run``: the one prepared device run (``nox -s gpu``).

A GPU session is short and paid for by the minute, so the run is planned before it
starts and every step has a share of one time budget (default 480 s, so that a 15-minute
device lease holds a rerun). Steps, in order:

1. ``probe``: CUDA is present; device name, torch, triton, xformers and fla-core versions;
2. ``kernels``: the Triton LISA tests (tests/attention/test_lisa_triton.py) compiled on
   the GPU (``TRITON_INTERPRET=0``), against the torch operator and the float64 oracle,
   and the pinned-kernel SDPA tests;
3. ``grid``: ``bench --device cuda`` for every method at L = 1,024 .. 65,536, causal,
   forward and forward+backward (every row is validated against its oracle identity on
   the GPU before it is timed: the GPU conformance check of each method);
4. ``long``: the linear-time methods and the LISA rows at L = 131,072 and 262,144.

Everything goes under one folder (``--output``, default ``results/gpu``): each step's
log, the bench JSON and plots, and ``gpu-run.json`` (the plan, each step's status, exit
code and wall time; rewritten atomically after every step, so a run cut off keeps what it
finished). A step that runs past its share is interrupted (SIGINT: bench then writes its
``.partial.json`` and journal, resumable with ``--resume``), killed 20 s later if it has
not stopped, and recorded as ``timeout``; the next steps still run in the time left.
``--dry-run`` prints the plan and writes nothing. Exit status: 0 when every step passed,
1 when one failed or timed out, 2 when there is no CUDA device (``--device cpu`` runs the
same plan on the CPU, for rehearsal at small ``--lengths``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_BUDGET_S = 480.0
GRID_LENGTHS = (1024, 4096, 16384, 65536)
LONG_LENGTHS = (131072, 262144)
GRACE_S = 20.0
MIN_STEP_S = 30.0  # a step gets at least this long while the budget lasts
# share of the budget per step; unused time carries over to the next steps
SHARES = {"probe": 0.05, "kernels": 0.2, "grid": 0.5, "long": 0.25}

PROBE = """
import importlib.metadata as md, json, sys, torch
info = {"cuda": torch.cuda.is_available(), "torch": torch.__version__}
for pkg in ("triton", "xformers", "fla-core"):
    try:
        info[pkg] = md.version(pkg)
    except md.PackageNotFoundError:
        info[pkg] = None
if info["cuda"]:
    info["device_name"] = torch.cuda.get_device_name(0)
    info["capability"] = list(torch.cuda.get_device_capability(0))
print(json.dumps(info))
sys.exit(0 if info["cuda"] or sys.argv[1] != "cuda" else 3)
"""


@dataclass
class Step:
    """One command of the run: ``argv`` run with ``env`` added to the environment."""

    name: str
    argv: list[str]
    share: float
    env: dict[str, str] = field(default_factory=dict)
    status: str = "pending"  # pending | ok | failed (exit N) | timeout | skipped (...)
    wall_s: float | None = None


def linear_time_methods() -> list[str]:
    """Registry methods expected to scale as L^1 in time, plus the LISA operator rows."""
    from harness.workloads.attention import LISA_WORDS
    from impls import registry

    names = [s.name for s in registry.all_methods() if s.time_exponent <= 1.0]
    return names + [f"lisa W={w}" for w in LISA_WORDS]


def plan(
    output: Path,
    *,
    device: str = "cuda",
    lengths: tuple[int, ...] = GRID_LENGTHS,
    long_lengths: tuple[int, ...] = LONG_LENGTHS,
    long_methods: list[str] | None = None,
    python: str = sys.executable,
) -> list[Step]:
    """The steps of the run (see the module docstring), writing under ``output``."""
    bench = [python, "-m", "harness", "bench", "--device", device, "--modes", "causal"]
    bench += ["--passes", "forward", "forward+backward", "--timeout", "60", "--no-progress"]
    steps = [
        Step("probe", [python, "-c", PROBE, device], SHARES["probe"]),
        Step(
            "kernels",
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
            + ["tests/attention/test_lisa_triton.py", "tests/attention/test_sdpa_backends.py"]
            + ["--junitxml", str(output / "kernels-junit.xml")],
            SHARES["kernels"],
            env={"TRITON_INTERPRET": "0"} if device == "cuda" else {"TRITON_INTERPRET": "1"},
        ),
        Step(
            "grid",
            bench
            + ["--lengths", *map(str, lengths)]
            + ["--output", str(output / "attention-grid.json")]
            + ["--plots-dir", str(output / "plots-grid")],
            SHARES["grid"],
        ),
    ]
    if long_lengths:
        methods = long_methods if long_methods is not None else linear_time_methods()
        steps.append(
            Step(
                "long",
                bench
                + ["--lengths", *map(str, long_lengths), "--methods", *methods]
                + ["--output", str(output / "attention-long.json")]
                + ["--plots-dir", str(output / "plots-long")],
                SHARES["long"],
            )
        )
    return steps


def _write_summary(path: Path, payload: dict) -> None:
    from harness.results import write_json_atomic

    write_json_atomic(path, payload)


def _copy_lines(source, sink) -> None:
    for line in source:
        sink.write(line)
        sink.flush()
        sys.stdout.write(line)
        sys.stdout.flush()


def _run_step(step: Step, limit_s: float, log: Path) -> None:
    """Run ``step`` for at most ``limit_s`` seconds, its output to the terminal and ``log``.
    Past the limit: SIGINT to its process group, SIGKILL after ``GRACE_S``."""
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            step.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **step.env},
            text=True,
            errors="replace",
            start_new_session=True,
        )
        copier = threading.Thread(target=_copy_lines, args=(proc.stdout, sink), daemon=True)
        copier.start()
        timed_out = False
        try:
            proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        copier.join(timeout=5.0)
    step.wall_s = round(time.monotonic() - start, 2)
    if timed_out:
        step.status = "timeout"
    else:
        step.status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"


def execute(steps: list[Step], output: Path, budget_s: float) -> int:
    """Run ``steps`` in order within ``budget_s`` seconds in all; 0 when every one passed."""
    output.mkdir(parents=True, exist_ok=True)
    summary_path = output / "gpu-run.json"
    started = time.monotonic()
    payload = {"budget_s": budget_s, "steps": [asdict(s) for s in steps]}
    carried = 0.0
    for i, step in enumerate(steps):
        left = budget_s - (time.monotonic() - started)
        share = step.share * budget_s + carried
        limit = min(max(share, MIN_STEP_S), left)
        if left < 5.0:
            step.status = "skipped (budget spent)"
        else:
            print(
                f"\n== gpu-run {i + 1}/{len(steps)}: {step.name} (up to {limit:.0f} s)", flush=True
            )
            _run_step(step, limit, output / f"{step.name}.log")
            carried = max(0.0, share - (step.wall_s or 0.0))
            print(f"== {step.name}: {step.status} in {step.wall_s:.1f} s", flush=True)
        if step.name == "probe" and step.status != "ok":
            for later in steps[i + 1 :]:
                later.status = "skipped (probe failed)"
        payload["steps"] = [asdict(s) for s in steps]
        payload["wall_s"] = round(time.monotonic() - started, 2)
        _write_summary(summary_path, payload)
        if step.name == "probe" and step.status != "ok":
            break
    print(f"\ngpu-run summary: {summary_path}")
    for s in steps:
        print(f"  {s.name:8s} {s.status}" + (f" ({s.wall_s:.1f} s)" if s.wall_s else ""))
    return 0 if all(s.status == "ok" for s in steps) else 1


def run(args) -> int:
    if args.budget <= 0:
        print(f"error: --budget must be > 0 seconds, got {args.budget}", file=sys.stderr)
        return 2
    output = Path(args.output)
    steps = plan(
        output,
        device=args.device,
        lengths=tuple(args.lengths),
        long_lengths=tuple(args.long_lengths),
    )
    if args.dry_run:
        print(json.dumps({"budget_s": args.budget, "steps": [asdict(s) for s in steps]}, indent=1))
        return 0
    code = execute(steps, output, args.budget)
    if steps[0].status != "ok":
        print(
            f"error: the probe failed (no CUDA device for --device {args.device}?); "
            f"see {output / 'probe.log'}",
            file=sys.stderr,
        )
        return 2
    return code


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gpu-run", help="the prepared device run (nox -s gpu)", description=__doc__
    )
    p.add_argument("--output", default="results/gpu", help="folder for every result")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds in all")
    p.add_argument(
        "--device",
        default="cuda",
        choices=("cuda", "cpu"),
        help="cpu: rehearse the plan on a CPU machine (use small --lengths)",
    )
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=list(GRID_LENGTHS),
        help="grid lengths for every method",
    )
    p.add_argument(
        "--long-lengths",
        type=int,
        nargs="*",
        default=list(LONG_LENGTHS),
        help="lengths for the linear-time methods only (none: skip the step)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    p.set_defaults(func=run)
