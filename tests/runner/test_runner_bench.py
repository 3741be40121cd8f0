"""Misbehaving methods through ``python -m harness bench``: the run completes, every other
row is present, and each bad row carries its own status. Interrupts (SIGINT, SIGKILL)
lose at most the case in flight, and ``--resume`` finishes the same rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BAD = {
    "misbehaving_methods:RAISES": ("bad_raises", "error: RuntimeError: this method always raises"),
    "misbehaving_methods:HANGS": ("bad_hangs", "timeout: "),
    "misbehaving_methods:ABORTS": ("bad_aborts", "crashed: killed by SIGABRT"),
    "misbehaving_methods:EXITS": ("bad_exits", "crashed: worker exited with code 3"),
    "misbehaving_methods:ALLOCATES": ("bad_allocates", "oom: "),
    "misbehaving_methods:RETURNS_NAN": ("bad_nan", "invalid: "),
    "misbehaving_methods:PEEKS": ("bad_peeks", "invalid: causal leak"),
    "misbehaving_methods:WRONG_SHAPE": ("bad_shape", "invalid: output shape"),
}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env.pop("LISA_BENCH_METHODS", None)
    return env


def _bench(tmp_path: Path, *extra: str, methods=("sdpa",), lengths=("64",), **popen):
    out = tmp_path / "out.json"
    command = [
        sys.executable,
        "-m",
        "harness",
        "bench",
        "--lengths",
        *lengths,
        "--modes",
        "causal",
        "--passes",
        "forward",
        "--methods",
        *methods,
        "--output",
        str(out),
        "--history-dir",
        str(tmp_path / "history"),
        "--no-plots",
        "--no-progress",
        "--repeats",
        "3",
        "--threads",
        "1",
        *extra,
    ]
    return command, out


def test_every_misbehaviour_is_a_row_and_the_run_completes(tmp_path):
    refs = [*BAD, "misbehaving_import_abort:SPEC", "misbehaving_import_slow:SPEC"]
    names = [name for name, _ in BAD.values()]
    command, out = _bench(
        tmp_path,
        *[a for ref in refs for a in ("--plugin", ref)],
        "--timeout",
        "4",
        "--memory-cap-gb",
        "3",
        methods=("sdpa", "lisa W=16", *names),
    )
    started = time.perf_counter()
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    assert done.returncode == 1, done.stderr[-3000:]  # some case failed: exit code says so
    doc = json.loads(out.read_text())
    assert doc["complete"] is True
    status = {r["method"]: r["status"] for r in doc["rows"]}
    assert status["sdpa"] == "ok" and status["lisa W=16"] == "ok", status
    for name, expected in BAD.values():
        assert status[name].startswith(expected), (name, status[name])
    skipped = {s["method"]: s["reason"] for s in doc["skipped_methods"]}
    assert "crashed: killed by SIGABRT" in skipped["misbehaving_import_abort:SPEC"]
    assert "timeout" in skipped["misbehaving_import_slow:SPEC"]
    for name in ("bad_hangs", "bad_aborts", "bad_exits"):
        row = next(r for r in doc["rows"] if r["method"] == name)
        assert row["seconds_until_recovered"] < 30, row
    assert wall < 240


def test_a_chatty_method_is_measured_and_the_tables_stay_clean(tmp_path):
    command, out = _bench(
        tmp_path, "--plugin", "misbehaving_methods:PRINTS", methods=("chatty_but_correct",)
    )
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not" not in done.stdout.split("{")[0] or '"not"' not in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok"]


def _journal_cases(out: Path) -> int:
    journal = Path(f"{out}.journal.jsonl")
    if not journal.exists():
        return 0
    return max(0, len(journal.read_text().splitlines()) - 1)


INTERRUPTED = dict(
    methods=("sdpa", "slow_but_correct"),
    extra=("--plugin", "misbehaving_methods:SLEEPY"),
    lengths=("32", "48", "64"),
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The rows of the run the interrupted ones must reproduce (made once)."""
    folder = tmp_path_factory.mktemp("whole")
    command, whole = _bench(
        folder,
        *INTERRUPTED["extra"],
        methods=INTERRUPTED["methods"],
        lengths=INTERRUPTED["lengths"],
    )
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(whole.read_text())


def _row_keys(doc: dict) -> list:
    return sorted((r["method"], r["L"], r["mode"], r["pass"], r["status"]) for r in doc["rows"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupt_then_resume_gives_the_rows_of_an_uninterrupted_run(tmp_path, sig, uninterrupted):
    cut_dir = tmp_path / "cut"
    complete_before = cut_dir / "out.json"
    cut_dir.mkdir()
    complete_before.write_text('{"sentinel": "an earlier complete document"}')
    command, out = _bench(
        cut_dir,
        *INTERRUPTED["extra"],
        methods=INTERRUPTED["methods"],
        lengths=INTERRUPTED["lengths"],
    )
    # each call of the slow method takes 1 s in this run (0.2 s in the others), so the
    # rest of the run outlasts any scheduling delay of this loop on a loaded machine
    process = subprocess.Popen(
        command,
        env={**_env(), "SLEEPY_SECONDS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _journal_cases(out) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(sig)
    process.communicate(timeout=60)
    assert process.returncode != 0
    kept = _journal_cases(out)
    assert 2 <= kept < 6
    # the complete document of an earlier run was not replaced by the partial one
    assert json.loads(out.read_text()) == {"sentinel": "an earlier complete document"}

    again = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = subprocess.run(
        [*command, "--resume"], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming: {kept} case(s)" in resumed.stdout

    final = json.loads(out.read_text())
    assert final["complete"] is True
    assert _row_keys(final) == _row_keys(uninterrupted)
    assert not Path(f"{out}.journal.jsonl").exists()


def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    from filelock import FileLock

    command, out = _bench(tmp_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{out}.lock"):
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "another run is writing" in done.stderr
