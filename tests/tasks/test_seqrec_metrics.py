"""HR@K / NDCG@K on rankings that can be checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from harness.tasks.metrics import ranking_metrics, ranks


def test_ranks_count_ties_against_the_target():
    target = torch.tensor([5.0, 5.0, 0.0])
    negatives = torch.tensor([[1.0, 2.0, 3.0], [5.0, 6.0, 1.0], [0.0, 0.0, 0.0]])
    assert ranks(target, negatives).tolist() == [0, 2, 3]


def test_metrics_by_hand():
    r = torch.tensor([0, 4, 9, 10])  # 0-based ranks
    m = ranking_metrics(r)
    assert m["HR@5"] == pytest.approx(2 / 4)
    assert m["HR@10"] == pytest.approx(3 / 4)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(6)) / 4)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(6) + 1 / math.log2(11)) / 4)


def test_random_scores_give_the_chance_hit_rate():
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(20_000, 101, generator=gen)
    m = ranking_metrics(ranks(scores[:, 0], scores[:, 1:]))
    sd = math.sqrt(10 / 101 * (1 - 10 / 101) / 20_000)
    assert abs(m["HR@10"] - 10 / 101) < 5 * sd


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="negative_scores"):
        ranks(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="rows"):
        ranks(torch.zeros(3), torch.zeros(2, 4))
