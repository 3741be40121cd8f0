"""Misbehaving methods through ``seqrec`` and ``leaderboard``: the run completes, the
other rows are all present, and each bad row carries its own status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env.pop("LISA_BENCH_METHODS", None)
    return env


TINY_SEQREC = [
    "--epochs", "1", "--dim", "8", "--max-len", "10", "--negatives", "5", "--no-progress",
]  # fmt: skip


def _seqrec(method: str, *extra: str):
    command = [sys.executable, "-m", "harness", "seqrec", "--method", method, *TINY_SEQREC]
    return subprocess.run(
        [*command, *extra], env=_env(), capture_output=True, text=True, timeout=300
    )


def test_seqrec_reports_a_crashing_method_as_a_status(tmp_path):
    out = tmp_path / "runs.json"
    done = _seqrec("bad_aborts", "--plugin", "misbehaving_methods:ABORTS", "--output", str(out))
    assert done.returncode == 1, done.stderr[-2000:]
    assert "crashed: killed by SIGABRT" in done.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["status"].startswith("crashed") and "test" not in run  # no score at all


def test_seqrec_times_out_a_hanging_method(tmp_path):
    done = _seqrec("bad_hangs", "--plugin", "misbehaving_methods:HANGS", "--timeout", "3")
    assert done.returncode == 1
    assert "timeout: no answer after 3 s" in done.stderr


def test_seqrec_gives_a_nan_method_no_score(tmp_path):
    out = tmp_path / "runs.json"
    done = _seqrec("bad_nan", "--plugin", "misbehaving_methods:RETURNS_NAN", "--output", str(out))
    assert done.returncode == 1
    (run,) = json.loads(out.read_text())["runs"]
    assert run["status"].startswith("diverged")
    assert run["test"]["HR@10"] == 0.0 and run["test"]["NDCG@10"] == 0.0


def test_leaderboard_survives_every_misbehaviour(tmp_path):
    out = tmp_path / "board"
    bad = {
        "misbehaving_methods:RAISES": ("bad_raises", "error: RuntimeError"),
        "misbehaving_methods:HANGS": ("bad_hangs", "timeout: "),
        "misbehaving_methods:ABORTS": ("bad_aborts", "crashed: killed by SIGABRT"),
        "misbehaving_methods:EXITS": ("bad_exits", "crashed: worker exited with code 3"),
        "misbehaving_methods:RETURNS_NAN": ("bad_nan", "invalid: "),
        "misbehaving_methods:PEEKS": ("bad_peeks", "invalid: causal leak"),
        "misbehaving_methods:WRONG_SHAPE": ("bad_shape", "invalid: output shape"),
    }
    plugins = [a for ref in [*bad, "misbehaving_import_abort:SPEC"] for a in ("--plugin", ref)]
    command = [
        sys.executable, "-m", "harness", "leaderboard", "--quick", *plugins,
        "--methods", "sdpa", "--no-conformance", "--timeout", "3",
        "--lengths", "32", "64", "--repeats", "1",
        "--epochs", "1", "--seqrec-dim", "8", "--max-len", "10",
        "--synthetic-users", "120", "--synthetic-items", "130",
        "--mqar-lengths", "32", "--mqar-steps", "2",
        "--no-progress", "--output-dir", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    doc = json.loads((out / "leaderboard.json").read_text())
    rows = {r["method"]: r for r in doc["rows"]}
    assert rows["sdpa"]["status"] == "ok" and rows["sdpa"]["downstream"]["NDCG@10"] >= 0
    baselines = doc["downstream_baselines"]["metrics"]  # same targets and negatives
    assert 0 <= baselines["random"]["HR@10"] <= 1 and 0 <= baselines["popularity"]["HR@10"] <= 1
    for name, expected in bad.values():
        row = rows[name]
        assert row["status"] == "failed", row
        assert row["stages"]["validation"].startswith(("invalid: " + expected, expected)), row
        assert row["speed"] is None and row["downstream"] is None, row
    aborted = rows["misbehaving_import_abort:SPEC"]
    assert aborted["status"] == "failed" and "SIGABRT" in aborted["stages"]["load"]
    assert not Path(f"{out / 'leaderboard.json'}.journal.jsonl").exists()
