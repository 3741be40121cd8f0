"""A new author's path, end to end: an external package (tests/example_plugin) declares a
method, ``python -m harness leaderboard --quick --plugin ...`` runs it in a reduced form
(tiny L grid, tiny synthetic data), and the report shows it. A deliberately broken method
from the conformance suite rides along: it must fail conformance and get no speed score."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "example_plugin"


def _env(*paths):
    env = dict(os.environ)
    env.pop("LISA_BENCH_METHODS", None)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT)])
    return env


def test_leaderboard_runs_an_external_plugin_and_gates_a_broken_one(tmp_path):
    out = tmp_path / "results"
    cmd = [
        sys.executable, "-m", "harness", "leaderboard", "--quick",
        "--plugin", "lisa_bench_example:SPEC",
        "--plugin", "conformance_broken:PEEK_AHEAD",
        "--methods", "sdpa",
        "--lengths", "32", "64", "--repeats", "1",
        "--epochs", "2", "--seqrec-dim", "8", "--max-len", "10",
        "--synthetic-users", "120", "--synthetic-items", "130",
        "--mqar-lengths", "32", "--mqar-steps", "3",
        "--long-history-len", "16", "--long-history-epochs", "1",
        "--no-progress", "--output-dir", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=_env(PLUGIN / "src", ROOT / "tests" / "conformance"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    # a submitted method failed: the board is written, and the exit code says so
    assert done.returncode == 1, done.stderr[-3000:]
    assert "FAILED broken_peek_ahead" in done.stderr
    doc = json.loads((out / "leaderboard.json").read_text())
    rows = {r["method"]: r for r in doc["rows"]}
    assert set(rows) == {"sdpa", "example_softmax", "broken_peek_ahead"}
    good, bad = rows["example_softmax"], rows["broken_peek_ahead"]
    assert good["conformance"]["status"] == "passed" and good["conformance"]["passed"] > 10
    assert len(good["speed"]["time_ratio"]) == 2 and good["speed"]["crossover"]["kind"]
    assert good["error"]["gaussian"] < 1e-5  # exact method
    assert 0.0 <= good["downstream"]["NDCG@10"] <= 1.0
    assert bad["conformance"]["status"] == "failed" and bad["conformance"]["failed"] > 0
    assert bad["speed"] is None and "no speed or downstream score" in " ".join(bad["notes"])
    assert bad["downstream"] is None and bad["status"] == "failed"  # never trained
    assert bad["mqar"] is None
    # the long-range column: MQAR accuracy of the fixed model with this attention
    assert good["mqar"]["lengths"] == [32] and good["mqar"]["steps"] == 3
    assert 0.0 <= good["mqar"]["accuracy"][0] <= 1.0 and good["mqar"]["chance"] > 0
    # the long-history columns: the model again with the window widened from 10 to 16
    for long in (good["long_history"], rows["sdpa"]["long_history"]):
        assert long["max_len"] == 16 and long["epochs"] == 1 and long["seeds"] == [0]
        assert 0.0 <= long["NDCG@10"] <= 1.0 and long["epoch_time_s"] > 0
    assert bad["long_history"] is None
    assert any("causal" in f for f in bad["conformance"]["failures"])  # the reason, not a name
    assert good["status"] == "ok" and rows["sdpa"]["status"] == "ok"
    assert bad["rank"] == 3  # below every conformant method, whatever its quality
    assert rows["sdpa"]["speed"]["time_ratio"] == [1.0, 1.0]
    assert doc["data_checksums"]["synthetic"] == good["data_checksum"]
    assert "example_softmax" in (out / "leaderboard.md").read_text()
    board = (out / "leaderboard.md").read_text()
    assert "MQAR accuracy" in board and "epoch time / SDPA, long history" in board
    assert "@ L=16" in board
    assert 'data-method="example_softmax"' in (out / "leaderboard.html").read_text()


def test_installed_plugin_is_found_through_its_entry_point(tmp_path):
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources, and
    # an egg-info under tests/example_plugin/src would register the entry point for every
    # process that has src on its path
    source = shutil.copytree(PLUGIN, tmp_path / "example_plugin")
    target = tmp_path / "site"
    pip = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
        "--no-index", "--target", str(target), str(source),
    ]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot build the example package here: {done.stderr[-500:]}")
    listed = subprocess.run(
        [sys.executable, "-m", "harness", "methods", "-v"],
        cwd=tmp_path,
        env=_env(target),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert (
        "example_softmax [entry point example_softmax (lisa_bench_example:SPEC)]" in listed.stdout
    )
