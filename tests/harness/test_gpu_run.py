"""The prepared device run (harness/commands/gpu_run.py): its plan covers the issue's
grid, a step past its share is interrupted and recorded while later steps still run, the
summary is on disk after every step, and a machine without CUDA gets exit status 2 with
the probe's reason instead of a silent CPU run."""

from __future__ import annotations

import json
import sys

import pytest

from harness.commands import gpu_run


def test_plan_runs_every_method_to_65536_and_linear_time_ones_beyond(tmp_path):
    steps = gpu_run.plan(tmp_path, long_methods=["linear", "lisa W=16"])
    assert [s.name for s in steps] == ["probe", "kernels", "grid", "long"]
    grid, long = steps[2].argv, steps[3].argv
    assert "--methods" not in grid  # every available method
    assert grid[grid.index("--lengths") + 1 :][:4] == ["1024", "4096", "16384", "65536"]
    assert grid[grid.index("--device") + 1] == "cuda"
    assert "262144" in long and long[long.index("--methods") + 1 :][:2] == ["linear", "lisa W=16"]
    assert steps[1].env == {"TRITON_INTERPRET": "0"}  # compiled kernels on the GPU
    assert all(str(tmp_path) in " ".join(s.argv) for s in steps[1:])
    assert sum(s.share for s in steps) == pytest.approx(1.0)


def test_linear_time_methods_come_from_the_registry():
    names = gpu_run.linear_time_methods()
    assert {"linear", "performer", "lisa W=16", "lisa W=128"} <= set(names)
    assert "sdpa" not in names and "oracle" not in names


def _step(name, code, share=0.5):
    return gpu_run.Step(name, [sys.executable, "-c", code], share)


def test_a_step_past_its_share_is_interrupted_and_the_next_still_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_run, "MIN_STEP_S", 1.0)
    monkeypatch.setattr(gpu_run, "GRACE_S", 2.0)
    # the hang's limit is 0.1 x 20 s + the probe's unused 1 s = 3 s; the budget leaves
    # the last step well over the 5 s it needs even on a loaded machine
    steps = [
        _step("probe", "print('fine')", 0.05),
        _step("hang", "import time; print('started', flush=True); time.sleep(60)", 0.1),
        _step("fails", "import sys; sys.exit(4)", 0.85),
    ]
    code = gpu_run.execute(steps, tmp_path, budget_s=20.0)
    assert code == 1
    assert [s.status for s in steps] == ["ok", "timeout", "failed (exit 4)"]
    assert steps[1].wall_s < 8.0
    summary = json.loads((tmp_path / "gpu-run.json").read_text())
    assert [s["status"] for s in summary["steps"]] == ["ok", "timeout", "failed (exit 4)"]
    assert "started" in (tmp_path / "hang.log").read_text()


def test_a_failed_probe_skips_the_rest(tmp_path):
    steps = [_step("probe", "import sys; sys.exit(3)"), _step("grid", "print(1)")]
    assert gpu_run.execute(steps, tmp_path, budget_s=60.0) == 1
    assert steps[1].status == "skipped (probe failed)"


def test_without_cuda_the_command_exits_2_naming_the_probe(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the no-CUDA path")
    from harness.cli import main

    assert main(["gpu-run", "--output", str(tmp_path), "--budget", "60"]) == 2
    assert "probe failed" in capsys.readouterr().err
    probe = json.loads((tmp_path / "probe.log").read_text())
    assert probe["cuda"] is False and probe["torch"]
    assert main(["gpu-run", "--budget", "0"]) == 2
