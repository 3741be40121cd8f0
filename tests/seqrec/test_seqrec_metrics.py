"""HR@K / NDCG@K on rankings that can be checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from harness.seqrec.ranking_metrics import MISS, ranking_metrics, ranks


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


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_a_non_finite_target_is_a_miss_for_every_cutoff(bad):
    target = torch.tensor([bad, 1.0])
    negatives = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    r = ranks(target, negatives)
    assert r[0] == MISS and r[0] > negatives.shape[1]  # behind every negative
    assert r[1] == 0
    m = ranking_metrics(r[:1], ks=(1, 5, 10, 1000))  # K > m too: still a miss
    assert all(v == 0.0 for v in m.values())


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_non_finite_negatives_rank_above_a_finite_target(bad):
    target = torch.tensor([1.0, 1.0])
    negatives = torch.tensor([[bad, 0.0, 0.0], [bad, bad, bad]])
    assert ranks(target, negatives).tolist() == [1, 3]


def test_a_scorer_that_returns_nan_scores_zero():
    """The reported bug: NaN >= NaN is False, so all-NaN scores used to rank every target
    first (HR@10 = NDCG@10 = 1)."""
    scores = torch.full((50, 101), NAN)
    m = ranking_metrics(ranks(scores[:, 0], scores[:, 1:]))
    assert m == {"HR@5": 0.0, "NDCG@5": 0.0, "HR@10": 0.0, "NDCG@10": 0.0}


def test_making_scores_non_finite_never_improves_a_rank():
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(500, 21, generator=gen)
    base = ranks(scores[:, 0], scores[:, 1:])
    for bad in (NAN, INF, -INF):
        spoiled = scores.clone()
        spoiled[torch.rand(500, 21, generator=gen) < 0.2] = bad
        worse = ranks(spoiled[:, 0], spoiled[:, 1:])
        assert (worse >= base).all()
        finite_target = torch.isfinite(spoiled[:, 0])
        assert (worse[~finite_target] == MISS).all()
        for k in (1, 5, 10, 100):
            assert (
                ranking_metrics(worse, ks=(k,))[f"HR@{k}"] <= ranking_metrics(base, (k,))[f"HR@{k}"]
            )
