"""The leaderboard measures bench's own cases on a named grid of the workload: grid caps,
per-case statuses, the headline length, and the workload's inputs for the error column."""

from __future__ import annotations

import pytest
import torch

from harness.leaderboard import pipeline
from harness.leaderboard.pipeline import LeaderboardConfig, add_headlines
from harness.leaderboard.store import headline_length
from harness.runner.isolation import Outcome
from harness.workloads import attention as workload
from harness.workloads.grids import GRIDS, Grid


def test_grids_are_named_once_and_every_command_reads_them():
    from harness.commands import memray_report
    from harness.regress import gate_workload

    assert workload.QUICK_LENGTHS == GRIDS["quick"].lengths
    assert workload.FULL_LENGTHS == GRIDS["full"].lengths
    assert memray_report.DEFAULT_LENGTHS == GRIDS["memory"].lengths
    assert gate_workload.DEFAULT_LENGTHS == GRIDS["memory"].lengths
    assert LeaderboardConfig().speed_grid() is GRIDS["leaderboard-quick"]
    assert LeaderboardConfig.full().speed_grid() is GRIDS["leaderboard-full"]


def test_quick_leaderboard_grid_reaches_16k_with_reportable_exponents():
    grid = GRIDS["leaderboard-quick"]
    linear = grid.lengths_for(1.0, 1.0)
    exact = grid.lengths_for(2.0, 1.0)  # SDPA: quadratic time, linear memory
    oracle = grid.lengths_for(2.0, 2.0)  # builds (L, L) matrices
    assert max(linear) >= 16_384 and exact == linear
    assert max(oracle) == 4_096
    for lengths in (linear, oracle):  # >= 4 lengths spanning >= 16x: exponents reportable
        assert len(lengths) >= 4 and lengths[-1] / lengths[0] >= 16
    full = GRIDS["leaderboard-full"]
    assert max(full.lengths_for(1.0, 1.0)) > 65_536 == max(full.lengths_for(2.0, 1.0))


def test_custom_lengths_keep_the_named_grid_caps():
    cfg = LeaderboardConfig(lengths=(1_024, 8_192))
    assert cfg.speed_grid().lengths_for(2.0, 2.0) == (1_024,)
    assert cfg.speed_grid().lengths_for(1.0, 1.0) == (1_024, 8_192)
    with pytest.raises(ValueError, match="grid"):
        LeaderboardConfig(grid="nope").check()
    with pytest.raises(ValueError, match="lengths"):
        LeaderboardConfig(lengths=(512, 256)).check()


class _ScriptedRunner:
    """Answers each call with the next scripted Outcome (or a bench-like ok row)."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def call(self, fn, *args, **kwargs):
        self.calls.append((fn.__name__, args, kwargs))
        return self.outcomes.pop(0)


def _ok(median, peak, roof=None):
    return Outcome("ok", {"status": "ok", "median_s": median, "peak_bytes": peak,
                          "roofline_fraction": roof})  # fmt: skip


def test_speed_grid_runs_bench_cases_and_stops_after_a_timeout():
    runner = _ScriptedRunner(
        [_ok(0.1, 100, 0.5), Outcome("timeout", None, "no answer after 3 s"), _ok(9.9, 9)]
    )
    cfg = LeaderboardConfig(repeats=2, budget_s=1.5)
    got = pipeline._speed_grid("linear", "causal", (256, 512, 1_024), ("pkg:X",), cfg, runner)
    assert [c[0] for c in runner.calls] == ["measure_case", "measure_case"]  # 1,024 not run
    name, args, kwargs = runner.calls[0]
    case = args[1]
    assert (case.method, case.length, case.mode, case.pass_) == ("linear", 256, "causal", "forward")
    assert args[2] == ("pkg:X",) and kwargs["repeats"] == 2 and kwargs["budget_s"] == 1.5
    assert got["time_s"] == [0.1, None, None] and got["memory_bytes"] == [100, None, None]
    assert got["roofline_fraction"] == [0.5, None, None]
    assert got["status"][0] == "ok" and got["status"][1].startswith("timeout")
    assert got["status"][2] == "skipped (timeout at a shorter L)"


def test_speed_grid_reports_a_bench_status_and_goes_on():
    runner = _ScriptedRunner([Outcome("ok", {"status": "error: RuntimeError: boom"}), _ok(0.2, 50)])
    got = pipeline._speed_grid("m", "causal", (256, 512), (), LeaderboardConfig(), runner)
    assert got["status"] == ["error: RuntimeError: boom", "ok"]
    assert got["time_s"] == [None, 0.2]


def _row(name, lengths, ratios, reference_only=False):
    return {
        "method": name,
        "speed": {
            "lengths": lengths,
            "time_ratio": ratios,
            "memory_ratio": [r and 2 * r for r in ratios],
            "reference_only": reference_only,
        },
    }


def test_headline_is_the_longest_length_every_compared_row_reached():
    rows = [
        _row("sdpa", [256, 1_024, 4_096], [1.0, 1.0, 1.0]),
        _row("fast", [256, 1_024, 4_096], [2.0, 0.5, 0.1]),
        _row("stalled", [256, 1_024, 4_096], [2.0, 0.7, None]),
        _row("oracle", [256], [30.0], reference_only=True),  # short grid: not compared
        {"method": "broken", "speed": None},
    ]
    assert headline_length(rows) == 1_024
    assert add_headlines(rows) == 1_024
    assert rows[1]["speed"]["headline"] == {"length": 1_024, "time_ratio": 0.5, "memory_ratio": 1.0}
    assert rows[3]["speed"]["headline"]["time_ratio"] is None  # the oracle never reached it
    assert headline_length([rows[-1]]) is None


def test_draw_inputs_is_the_one_input_generator():
    from harness.conformance.workload import qkv, vocabulary_qkv

    q, k, v = workload.draw_inputs("gaussian", (1, 2, 8, 4), 3, value_dim=5)
    assert q.shape == k.shape == (1, 2, 8, 4) and v.shape == (1, 2, 8, 5)
    assert q.dtype == torch.float64 and not torch.equal(q, k)
    again = workload.draw_inputs("gaussian", (1, 2, 8, 4), 3, value_dim=5)
    assert all(torch.equal(a, b) for a, b in zip((q, k, v), again, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(qkv(1, 2, 8, 4, 5, seed=3), again, strict=True))
    vq, vk, _ = workload.draw_inputs("vocabulary", (2, 1, 64, 8), 0)
    # 64 positions from 16 tokens: rows repeat up to the 0.05 noise
    dist = torch.cdist(vk[0, 0], vk[0, 0])
    assert int((dist < 0.5).sum()) > 64
    same = vocabulary_qkv(2, 1, 64, 8, seed=0)
    assert torch.equal(same[0], vq)
    with pytest.raises(ValueError, match="kind"):
        workload.draw_inputs("uniform", (1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="shape"):
        workload.draw_inputs("gaussian", (1, 1, 0, 4), 0)


def test_error_column_uses_the_workload_dims_and_inputs():
    from impls import registry

    spec = next(s for s in registry.all_methods() if s.name == "oracle")
    err = pipeline.error_against_exact(spec, lengths=(16, 32))
    assert err["dim"] == workload.DIM and err["lengths"] == [16, 32]
    assert set(err["by_length"]) == set(workload.INPUT_KINDS)
    assert all(e < 1e-5 for kind in workload.INPUT_KINDS for e in err["by_length"][kind])
    linear = next(s for s in registry.all_methods() if s.name == "linear")
    approx = pipeline.error_against_exact(linear, lengths=(16,))
    assert approx["gaussian"] > 1e-2  # an approximation shows its error


def test_grid_caps_by_expected_exponents():
    grid = Grid("g", (4, 8, 16), quadratic_max=8, materialized_max=4)
    assert grid.lengths_for(None, None) == (4, 8, 16)
    assert grid.lengths_for(2.5, 1.0) == (4, 8)
    assert grid.lengths_for(1.0, 2.0) == (4,)


def test_downstream_task_from_your_own_dataset_card(tmp_path):
    rows = ["uid,song,ts"] + [
        f"u{u},s{(7 * u + 3 * t) % 300},{t}" for u in range(30) for t in range(6)
    ]
    (tmp_path / "plays.csv").write_text("\n".join(rows) + "\n")
    card = tmp_path / "plays.json"
    card.write_text(
        '{"name": "my-plays", "path": "plays.csv", "format": "csv",'
        ' "columns": {"user": "uid", "item": "song", "time": "ts"}}'
    )
    task = pipeline.load_leaderboard_task(LeaderboardConfig(dataset_card=str(card)))
    assert task.data.name == "my-plays" and task.data.checksum
    assert len(task.test.targets) == 30  # every user keeps its last event for the test split
    small = tmp_path / "small.json"
    (tmp_path / "few.csv").write_text("uid,song,ts\n" + "".join(f"a,s{t},{t}\n" for t in range(5)))
    small.write_text('{"name": "few", "path": "few.csv", "format": "csv",'
                     ' "columns": {"user": "uid", "item": "song", "time": "ts"}}')  # fmt: skip
    with pytest.raises(ValueError, match="--dataset-card .*small.json"):
        pipeline.load_leaderboard_task(LeaderboardConfig(dataset_card=str(small)))


def test_mqar_settings_are_checked_and_the_cell_shows_the_longest_length():
    from harness.leaderboard.report import _mqar_cell

    assert LeaderboardConfig().mqar_lengths == (256,)
    assert LeaderboardConfig.full().mqar_lengths == (256, 1024)
    LeaderboardConfig(mqar_lengths=()).check()  # the column left out
    with pytest.raises(ValueError, match="mqar_lengths"):
        LeaderboardConfig(mqar_lengths=(1024, 256)).check()
    with pytest.raises(ValueError, match="mqar_lengths"):
        LeaderboardConfig(mqar_lengths=(16,)).check()
    with pytest.raises(ValueError, match="mqar_steps"):
        LeaderboardConfig(mqar_steps=0).check()
    row = {"mqar": {"lengths": [256, 1024], "accuracy": [0.9, 0.2], "chance": 0.03125,
                    "steps": 300, "seed": 0}}  # fmt: skip
    cell = _mqar_cell(row)
    assert cell.text == "0.200 @ L=1024" and cell.sort == 0.2
    assert "L=256: 0.900" in cell.title and "chance 0.031" in cell.title
    missing = _mqar_cell({"mqar": None, "stages": {"mqar": "timeout after 3 s"}})
    assert missing.text == "-" and missing.sort is None and "timeout" in missing.title


def _mqar(seeds, per_seed, lengths=(256,)):
    from harness.seqrec.statistics import mean_interval

    intervals = [mean_interval(v) for v in per_seed]
    return {"lengths": list(lengths), "accuracy": [i.mean for i in intervals], "seeds": seeds,
            "per_seed": per_seed, "half_width": [i.half_width for i in intervals],
            "chance": 0.03125, "steps": 300, "seed": seeds[0]}  # fmt: skip


def test_mqar_seeds_give_intervals_and_ties_with_sdpa():
    from harness.leaderboard.report import _mqar_cell

    LeaderboardConfig(mqar_seeds=(0, 1, 2)).check()
    for bad in ((1, 1), (0, True), (0, 1.5)):
        with pytest.raises(ValueError, match="mqar_seeds"):
            LeaderboardConfig(mqar_seeds=bad).check()
    sdpa = {"method": "sdpa", "mqar": _mqar([0, 1, 2], [[0.99, 1.0, 0.98]])}
    near = {"method": "lsh", "mqar": _mqar([0, 1, 2], [[0.97, 1.0, 0.99]])}
    far = {"method": "linear", "mqar": _mqar([0, 1, 2], [[0.21, 0.2, 0.22]])}
    cell = _mqar_cell(near, sdpa)
    # mean 0.9867, sd 0.01528, t(0.975, 2) = 4.303: half-width 0.038
    assert cell.text == "0.987 ± 0.038 @ L=256 ≈ sdpa" and "within noise" in cell.title
    assert "seeds 0, 1, 2" in cell.title
    far_cell = _mqar_cell(far, sdpa)
    assert far_cell.text == "0.210 ± 0.025 @ L=256" and "outside noise" in far_cell.title
    assert "≈" not in _mqar_cell(sdpa, sdpa).text
    # pairing needs two shared seeds: other seeds give the interval but no verdict
    other = {"method": "lsh", "mqar": _mqar([5, 6], [[0.97, 0.99]])}
    assert "sdpa" not in _mqar_cell(other, sdpa).title
    one_shared = {"method": "lsh", "mqar": _mqar([2, 9], [[0.97, 0.99]])}
    assert "sdpa" not in _mqar_cell(one_shared, sdpa).title


def test_stage_mqar_trains_each_seed_at_each_length():
    cfg = LeaderboardConfig(mqar_lengths=(32,), mqar_steps=2, seeds=(7,), mqar_seeds=(3, 4))
    out = pipeline.stage_mqar("linear", cfg, [])
    assert out["seeds"] == [3, 4] and out["seed"] == 3 and len(out["per_seed"][0]) == 2
    assert out["accuracy"][0] == pytest.approx(sum(out["per_seed"][0]) / 2)
    assert out["half_width"][0] is not None
    one = pipeline.stage_mqar("linear", LeaderboardConfig(mqar_lengths=(32,), mqar_steps=2,
                                                          seeds=(3,)), [])  # fmt: skip
    assert one["seeds"] == [3] and one["half_width"] == [None]
    assert one["per_seed"][0][0] == out["per_seed"][0][0]  # seed 3 alone: the same run


def test_long_history_settings_are_checked_and_the_cells_compare_with_sdpa():
    from harness.leaderboard.report import _long_history_cells

    assert LeaderboardConfig().long_history_len is None  # off in the quick preset
    full = LeaderboardConfig.full()
    assert full.long_history_len == 1000 > full.seqrec_max_len
    full.check()
    for bad in (40, 10, True, 64.0):  # not wider than the quick window of 40, or not an int
        with pytest.raises(ValueError, match="long_history_len"):
            LeaderboardConfig(long_history_len=bad).check()
    with pytest.raises(ValueError, match="long_history_epochs"):
        LeaderboardConfig(long_history_len=64, long_history_epochs=0).check()

    def row(method, ndcg, epoch_s, max_len=1000):
        long = {"NDCG@10": ndcg, "HR@10": 0.45, "epoch_time_s": epoch_s, "max_len": max_len,
                "epochs": 25, "seeds": [0]}  # fmt: skip
        return {"method": method, "long_history": long}

    sdpa = row("sdpa", 0.2465, 427.0)
    quality, time = _long_history_cells(row("linear", 0.2449, 272.0), sdpa)
    assert quality.text == "0.2449 @ L=1000" and quality.sort == 0.2449
    assert time.text == "0.64" and time.sort == pytest.approx(272 / 427)
    assert "window 1000" in quality.title and "427.00" in time.title
    _, other_window = _long_history_cells(row("linear", 0.2, 50.0, max_len=500), sdpa)
    assert other_window.text == "-" and other_window.sort is None
    _, no_sdpa = _long_history_cells(row("linear", 0.2, 50.0), None)
    assert no_sdpa.text == "-"
    failed = {"long_history": None, "stages": {"long_history": "timeout after 9 s"}}
    assert all(c.text == "-" and "timeout" in c.title for c in _long_history_cells(failed, sdpa))
    assert _long_history_cells({"long_history": None}, sdpa)[0].title == "not run"
