"""A run killed without a chance to clean up (SIGKILL, SIGTERM) must not leave its
isolated worker computing on: the worker exits within about a second of its run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from harness.runner.isolation import IsolatedRunner, Limits

    def work(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)  # a long call: training, or a hang

    if __name__ == "__main__":
        with IsolatedRunner(Limits(timeout_s=300)) as runner:
            runner.call(work, sys.argv[1])
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_worker_dies_with_its_run(tmp_path, sig):
    script, marker = tmp_path / "run.py", tmp_path / "worker.pid"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, str(script), str(marker)], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()):
            assert run.poll() is None, "the run ended before its worker started"
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        worker = int(marker.read_text())
        assert _alive(worker)
        run.send_signal(sig)
        run.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), f"worker {worker} outlived its run by 10 s"
    finally:
        if run.poll() is None:
            run.kill()
