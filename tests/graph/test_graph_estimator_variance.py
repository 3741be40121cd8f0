"""Estimator error against the exhaustive oracle, the budget-quality sweep and the
quality column of the interleaved epoch comparison (tiny seeded graphs, no downloads)."""

from __future__ import annotations

import json

import pytest
import torch

from harness.datasets import make_synthetic_graph
from harness.graph.budget_quality import quality_row
from harness.graph.estimator_variance import (
    estimator_error,
    fixed_embeddings,
    main,
    planted_edge_weights,
)
from harness.graph.hep_training import TrainConfig


@pytest.fixture(scope="module")
def tiny():
    task = make_synthetic_graph(3000, seed=1)
    targets = task.split["train"][:48]
    return task, targets, fixed_embeddings(task.graph)


def _row(rows, estimator):
    return next(r for r in rows if r["estimator"] == estimator)


@pytest.mark.parametrize("sampler", ["type-dependent", "uniform", "type-fusion", "adaptive"])
def test_sampling_every_candidate_without_replacement_has_zero_error(tiny, sampler):
    task, targets, x = tiny
    ew = planted_edge_weights(task.graph)
    rows = estimator_error(
        task.graph, targets, "paper", x, sampler, 10_000, 3, edge_weight=ew, replace=False
    )
    for r in rows:
        assert r["rel_mse"] < 1e-24 and r["rel_variance"] < 1e-24
        assert r["uncovered"] == 0
        assert r["edges"] == r["exhaustive_edges"]


@pytest.mark.parametrize("sampler", ["uniform", "type-dependent", "type-fusion"])
def test_importance_sampling_variance_falls_as_the_budget_grows(tiny, sampler):
    task, targets, x = tiny
    var = [
        _row(estimator_error(task.graph, targets, "paper", x, sampler, n, 60), "importance")[
            "rel_variance"
        ]
        for n in (2, 8, 32)
    ]
    assert var[0] > var[1] > var[2] > 0


def test_error_decomposes_and_importance_sampling_is_unbiased(tiny):
    task, targets, x = tiny
    draws = 400
    rows = estimator_error(task.graph, targets, "paper", x, "type-dependent", 8, draws)
    for r in rows:
        assert r["rel_mse"] == pytest.approx(r["rel_variance"] + r["rel_bias2"], rel=1e-9)
        assert set(r["rel_mse_by_relation"]) == {
            "__".join(rel) for rel in task.graph.relations_into("paper")
        }
    imp = _row(rows, "importance")
    # unbiased: the squared bias of the mean of K draws is about variance / K
    assert imp["rel_bias2"] < 5 * imp["rel_variance"] / draws
    # the adaptive estimator weights a sample like importance sampling
    ada = _row(rows, "adaptive")
    assert ada["rel_mse"] == imp["rel_mse"] and ada["rel_variance"] == imp["rel_variance"]


def test_more_draws_cover_more_targets(tiny):
    task, targets, x = tiny
    unc = [
        estimator_error(task.graph, targets, "paper", x, "uniform", n, 10)[0]["uncovered"]
        for n in (2, 64)
    ]
    assert 0 <= unc[1] < unc[0] <= 1


def test_variance_command_prints_one_row_per_estimator(capsys):
    args = ["--edges", "2000", "--batch-size", "32", "--budgets", "4", "16", "--draws", "3"]
    assert main([*args, "--samplers", "uniform", "nodewise"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 * 2 * 3
    assert {r["sampler"] for r in rows} == {"uniform", "nodewise"}
    assert all(r["targets"] == 32 and r["rel_mse"] > 0 for r in rows)
    assert all(r["target_type"] == "paper" for r in rows)
    assert main([*args, "--samplers", "type-fusion", "--target-type", "author"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 * 3 and all(r["target_type"] == "author" for r in rows)
    assert all(set(r["rel_mse_by_relation"]) == {"paper__written_by__author"} for r in rows)


def test_budget_quality_row_summarises_seeds(tiny):
    task, _, _ = tiny
    row = quality_row(
        task, "type-fusion", "self-normalized", 16, [0, 1], epochs=1, batch_size=256, dim=8
    )
    assert len(row["metrics"]) == 2 and row["min"] <= row["median"] <= row["max"]
    assert 0 < row["edges"] < row["exhaustive_edges"]
    assert row["diverged"] == []


def test_epoch_comparison_reports_the_metric_against_the_baseline(tiny):
    from harness.graph.epoch_comparison import compare

    task, _, _ = tiny
    configs = [
        TrainConfig(sampler="exhaustive", estimator="importance", epochs=1, batch_size=256, dim=8),
        TrainConfig(sampler="uniform", estimator="importance", budget=8, epochs=1, batch_size=256),
    ]
    seen = []
    rows = compare(task, configs, repeats=1, progress=lambda r, c, rec: seen.append((r, c)))
    assert [(r, c.sampler) for r, c in seen] == [(0, "exhaustive"), (0, "uniform")]
    assert rows[0]["metric_delta"] == 0
    assert 0 <= rows[1]["test_metric"] <= 1
    assert rows[1]["metric_delta"] == pytest.approx(rows[1]["test_metric"] - rows[0]["test_metric"])
    assert torch.tensor(rows[1]["edge_reduction"]) > 0


def test_samplers_without_draw_probabilities_are_refused_for_the_adaptive_estimator():
    from impls.sampling.pairing import check_pairing, pairing_problem

    for sampler in ("nodewise", "exhaustive"):
        assert "needs draw probabilities" in pairing_problem(sampler, "adaptive")
        for est in ("importance", "self-normalized"):
            assert pairing_problem(sampler, est) is None
    for sampler in ("type-dependent", "type-fusion", "adaptive", "uniform", "ladies"):
        assert pairing_problem(sampler, "adaptive") is None
    with pytest.raises(ValueError, match="sampler must be one of"):
        pairing_problem("bogus", "adaptive")
    with pytest.raises(ValueError, match="'nodewise' does not produce"):
        TrainConfig(sampler="nodewise", estimator="adaptive").check()
    check_pairing("type-fusion", "adaptive")


def test_budget_quality_sweep_reports_an_unsupported_pair_and_goes_on(capsys):
    from harness.graph.budget_quality import main as quality_main

    rc = quality_main(
        [
            "--edges", "3000", "--seeds", "0", "--epochs", "1", "--batch-size", "256",
            "--dim", "8", "--budgets", "8", "--samplers", "nodewise", "uniform",
            "--estimators", "adaptive", "importance",
        ]
    )  # fmt: skip
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by = {(r["sampler"], r["estimator"]): r for r in rows}
    assert by[("nodewise", "adaptive")]["status"].startswith("unsupported: ")
    assert "median" not in by[("nodewise", "adaptive")]
    for key in [("nodewise", "importance"), ("uniform", "adaptive"), ("uniform", "importance")]:
        assert by[key]["status"] == "ok" and 0 <= by[key]["median"] <= 1
