"""Paired, interleaved timing of two commits on this machine, for the regression gate.

Each commit is exported with ``git archive`` into a temporary folder and served by
``workers_per_side`` long-lived worker processes (``regress_worker.py`` with that folder
first on PYTHONPATH), each limited to ``threads`` threads. For every case, round after
round, base and head are timed back to back in a random (seeded) order, so slow drifts of
the machine hit both sides alike; round r uses worker r mod k of each side. Rotating
processes matters: two single processes running identical code can differ systematically
(layout, allocator state; a 0.72x-1.51x A/A ratio was seen on the oracle case with one
worker per side), and with several per side that effect shows up as spread, which the
noise floor absorbs, instead of as a consistent shift. The paired samples go to
:func:`harness.regress_stats.judge`.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from contextlib import ExitStack
from pathlib import Path

from harness.regress_stats import judge

__all__ = ["Worker", "export_commit", "compare_commits"]

WORKER_SCRIPT = Path(__file__).with_name("regress_worker.py")


class GateError(RuntimeError):
    """A comparison that cannot be made (missing commit, case or workload)."""


def export_commit(repo: str | os.PathLike, rev: str, dest: str | os.PathLike) -> Path:
    """Write the tree of ``rev`` (any commit-ish) of ``repo`` into ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", rev],
        capture_output=True,
    )
    if archive.returncode != 0:
        raise GateError(f"cannot export {rev!r}: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryFile() as tar_file:
        tar_file.write(archive.stdout)
        tar_file.seek(0)
        with tarfile.open(fileobj=tar_file) as tar:
            tar.extractall(dest, filter="data")
    return dest


class Worker:
    """A worker process timing cases from the code in ``source`` (see regress_worker)."""

    def __init__(self, source: Path, workload: str, label: str, threads: int | None = None):
        self.label = label
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        command = [sys.executable, str(WORKER_SCRIPT), "--workload", workload]
        if threads:
            command += ["--threads", str(threads)]
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        self.process = subprocess.Popen(
            command,
            cwd=source,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        if "error" in hello:
            self.close()
            raise GateError(f"{label}: {hello['error']}")

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise GateError(f"{self.label}: worker exited (code {self.process.poll()})")
        return json.loads(line)

    def time(self, case: str, calls: int) -> float:
        self.process.stdin.write(json.dumps({"op": "time", "case": case, "calls": calls}) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise GateError(f"{self.label}, case {case!r}: {reply['error']}")
        return float(reply["seconds"])

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


def compare_commits(
    repo: str | os.PathLike,
    base: str,
    head: str,
    cases: list[str],
    *,
    workload: str,
    rounds: int = 21,
    alpha: float = 0.01,
    min_floor: float = 0.05,
    min_sample_s: float = 0.02,
    seed: int = 0,
    workers_per_side: int = 1,
    threads: int | None = None,
    progress=None,
) -> dict:
    """Time every case on both commits in interleaved rounds and judge each.

    ``workers_per_side`` processes serve each commit, in rotation; ``threads`` limits
    each worker's torch/OpenMP threads (None: library default).
    Returns {case: verdict dict (+ base/head samples)} or {case: {"error": ...}}."""
    if (
        isinstance(workers_per_side, bool)
        or not isinstance(workers_per_side, int)
        or (workers_per_side < 1)
    ):
        raise ValueError(f"workers_per_side must be an int >= 1, got {workers_per_side!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
    rng = random.Random(seed)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="regress-") as folder, ExitStack() as stack:
        base_src = export_commit(repo, base, Path(folder) / "base")
        head_src = export_commit(repo, head, Path(folder) / "head")
        sides: dict[str, list[Worker]] = {"base": [], "head": []}
        for side, source, rev in (("base", base_src, base), ("head", head_src, head)):
            for k in range(workers_per_side):
                worker = Worker(source, workload, f"{side} {rev} (worker {k})", threads)
                stack.callback(worker.close)
                sides[side].append(worker)
        for case in cases:
            try:
                one_call = max(sides["base"][0].time(case, 1), sides["head"][0].time(case, 1))
                calls = max(1, math.ceil(min_sample_s / max(one_call, 1e-9)))
                samples = {"base": [], "head": []}
                for r in range(rounds):
                    order = ["base", "head"] if rng.random() < 0.5 else ["head", "base"]
                    for side in order:
                        worker = sides[side][r % workers_per_side]
                        samples[side].append(worker.time(case, calls))
                    if progress is not None:
                        progress()
                verdict = judge(samples["base"], samples["head"], alpha=alpha, min_floor=min_floor)
                results[case] = {**verdict.as_dict(), "calls_per_sample": calls, **samples}
            except GateError as error:
                results[case] = {"error": str(error)}
    return results
