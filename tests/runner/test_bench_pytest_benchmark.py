"""pytest-benchmark habits on the bench suite: ``--benchmark-autosave`` stores the isolated
timings, ``--benchmark-compare`` compares with a saved run and ``--benchmark-compare-fail``
turns a regression into exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("LISA_BENCH_METHODS", None)
    command = [
        sys.executable, "-m", "harness", "bench", "--lengths", "64", "--modes", "causal",
        "--passes", "forward", "--methods", "sdpa", "--repeats", "3", "--no-plots",
        "--no-progress", "--output", str(tmp_path / f"{name}.json"),
        "--history-dir", str(tmp_path / "history"),
        "--benchmark-storage", f"file://{tmp_path / 'store'}", *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_autosave_then_compare_then_compare_fail(tmp_path):
    first = _bench(tmp_path, "first", "--benchmark-autosave")
    assert first.returncode == 0, first.stderr[-2000:]
    (saved,) = (tmp_path / "store").rglob("*.json")
    data = json.loads(saved.read_text())
    (case,) = data["benchmarks"]
    assert case["name"] == "test_bench_case[sdpa|causal|forward|L=64]"
    assert case["stats"]["rounds"] >= 3 and case["stats"]["min"] > 0

    quiet = _bench(
        tmp_path, "second", "--benchmark-compare", "--benchmark-compare-fail=min:100000%"
    )
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "Comparing against benchmarks from" in quiet.stdout + quiet.stderr

    # make the saved run impossibly fast: any new measurement is then a regression
    for key in ("min", "max", "mean", "median"):
        case["stats"][key] = 1e-12
    saved.write_text(json.dumps(data))
    tripped = _bench(tmp_path, "third", "--benchmark-compare", "--benchmark-compare-fail=min:5%")
    assert tripped.returncode == 1
    assert "--benchmark-compare-fail tripped" in tripped.stderr


def test_a_refused_benchmark_option_is_a_usage_error(tmp_path):
    done = _bench(tmp_path, "bad", "--benchmark-compare-fail=nonsense")
    assert done.returncode == 2
    assert not Path(f"{tmp_path / 'bad.json'}.journal.jsonl").exists()
