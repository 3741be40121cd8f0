"""Ranking metrics against sampled negatives.

For each evaluated user, the target's score s_t and the negatives' scores s_1..s_m give
the 0-based rank::

    r = #{j : s_j >= s_t  or  s_j not finite}     when s_t is finite
    r = MISS                                       when s_t is NaN or +-inf

* Ties count against the target, so a constant scorer gets r = m, never a lucky 0.
* A target with a non-finite score is a miss: it ranks last, behind every negative, and
  its rank ``MISS`` (2^63 - 1) lies beyond every cut-off K, so it scores 0 in HR@K and
  NDCG@K for every K (also when K > m). A method that returns NaN scores 0, never 1.
* Non-finite negative scores (NaN, +inf, -inf) are treated as ranking above the target:
  a NaN negative cannot push a finite target up (IEEE comparisons with NaN are all false,
  which counted every NaN negative as a win before).

Then

    HR@K   = mean 1[r < K]
    NDCG@K = mean 1[r < K] / log2(r + 2)

(one relevant item, so the ideal DCG is 1). A uniformly random scorer has expected
HR@K = K / (m + 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["MISS", "ranks", "hit_rate", "ndcg", "ranking_metrics"]

MISS = torch.iinfo(torch.int64).max  # rank of a target whose score is not finite


def ranks(target_scores: Tensor, negative_scores: Tensor) -> Tensor:
    """target_scores (n,), negative_scores (n, m) -> 0-based ranks (n,) int64 (see the
    module docstring: non-finite targets get ``MISS``, non-finite negatives count above)."""
    if target_scores.dim() != 1 or negative_scores.dim() != 2:
        raise ValueError("target_scores must be (n,) and negative_scores (n, m)")
    if target_scores.shape[0] != negative_scores.shape[0]:
        raise ValueError(
            f"target_scores has {target_scores.shape[0]} rows, negative_scores "
            f"{negative_scores.shape[0]}"
        )
    above = (negative_scores >= target_scores[:, None]) | ~torch.isfinite(negative_scores)
    rank = above.sum(dim=1)
    return torch.where(torch.isfinite(target_scores), rank, torch.full_like(rank, MISS))


def hit_rate(rank: Tensor, k: int) -> float:
    """HR@K = mean 1[r < K] over 0-based ranks (n,); NaN when n = 0."""
    return float((rank < k).double().mean()) if rank.numel() else math.nan


def ndcg(rank: Tensor, k: int) -> float:
    """NDCG@K = mean 1[r < K] / log2(r + 2) over 0-based ranks (n,); NaN when n = 0."""
    if not rank.numel():
        return math.nan
    hit = rank < k
    safe = torch.where(hit, rank, torch.zeros_like(rank)).double()  # MISS never reaches log2
    gain = torch.where(hit, 1.0 / torch.log2(safe + 2.0), torch.zeros((), dtype=torch.float64))
    return float(gain.mean())


def ranking_metrics(rank: Tensor, ks: tuple[int, ...] = (5, 10)) -> dict[str, float]:
    """{"HR@5", "NDCG@5", "HR@10", "NDCG@10"} (for ``ks``) from 0-based ranks."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(rank, k)
        out[f"NDCG@{k}"] = ndcg(rank, k)
    return out
