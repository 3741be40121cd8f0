"""A narrowed bench run never replaces the default grid's results or plots: its default
output is named by its config hash, and it says where it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.cli import build_parser
from harness.commands import bench

ROOT = Path(__file__).resolve().parents[2]


def _args(*extra: str):
    return build_parser().parse_args(["bench", *extra])


def test_default_grid_keeps_the_default_names():
    args = _args()
    lengths = [4096, 256, 1024]  # the quick grid, in any order
    assert bench.is_default_grid(args, lengths)
    assert bench.output_paths(args, lengths, "abc") == (
        Path("results/attention-scaling.json"),
        Path("results/plots"),
    )
    # settings that do not narrow the grid keep the names too
    assert bench.is_default_grid(_args("--repeats", "9", "--quick"), lengths)


def test_narrowed_grids_are_named_by_config_hash():
    quick = [256, 1024, 4096]
    for extra, lengths in (
        (["--lengths", "256"], [256]),
        (["--full"], [256, 1024, 4096, 16384, 65536]),
        (["--methods", "sdpa"], quick),
        (["--plugin", "pkg.mod:SPEC"], quick),
        (["--method", "pkg.mod:SPEC"], quick),  # the old spelling still counts
        (["--modes", "causal"], quick),
        (["--passes", "forward"], quick),
    ):
        args = _args(*extra)
        assert not bench.is_default_grid(args, lengths), extra
        assert bench.output_paths(args, lengths, "abc") == (
            Path("results/attention-scaling-abc.json"),
            Path("results/plots/abc"),
        )
    # explicit names always win
    args = _args("--lengths", "256", "--output", "x.json", "--plots-dir", "p")
    assert bench.output_paths(args, [256], "abc") == (Path("x.json"), Path("p"))


def test_a_narrowed_run_writes_beside_the_default_results(tmp_path):
    default = tmp_path / "results" / "attention-scaling.json"
    default.parent.mkdir()
    default.write_text('{"full": "run"}')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--methods", "sdpa", "--lengths", "32"]
        + ["--modes", "causal", "--passes", "forward", "--no-plots", "--no-progress"]
        + ["--repeats", "3", "--threads", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert default.read_text() == '{"full": "run"}'  # the full run's results stay
    (written,) = (tmp_path / "results").glob("attention-scaling-*.json")
    doc = json.loads(written.read_text())
    assert written.name == f"attention-scaling-{doc['config_hash']}.json"
    assert doc["complete"] and doc["config"]["lengths"] == [32]
    assert f"results written to {Path('results') / written.name}" in done.stdout
    assert not (tmp_path / "results" / "plots").exists()
