"""Ranking metrics against sampled negatives.

For each evaluated user, the target's score s_t and the negatives' scores s_1..s_m give
the 0-based rank ``r = #{j : s_j >= s_t}`` (ties count against the target, so a constant
scorer gets r = m, never a lucky 0). Then

    HR@K   = mean 1[r < K]
    NDCG@K = mean 1[r < K] / log2(r + 2)

(one relevant item, so the ideal DCG is 1). A uniformly random scorer has expected
HR@K = K / (m + 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ranks", "hit_rate", "ndcg", "ranking_metrics"]


def ranks(target_scores: Tensor, negative_scores: Tensor) -> Tensor:
    """target_scores (n,), negative_scores (n, m) -> 0-based ranks (n,) int64."""
    if target_scores.dim() != 1 or negative_scores.dim() != 2:
        raise ValueError("target_scores must be (n,) and negative_scores (n, m)")
    if target_scores.shape[0] != negative_scores.shape[0]:
        raise ValueError(
            f"target_scores has {target_scores.shape[0]} rows, negative_scores "
            f"{negative_scores.shape[0]}"
        )
    return (negative_scores >= target_scores[:, None]).sum(dim=1)


def hit_rate(rank: Tensor, k: int) -> float:
    return float((rank < k).double().mean()) if rank.numel() else math.nan


def ndcg(rank: Tensor, k: int) -> float:
    if not rank.numel():
        return math.nan
    gain = torch.where(
        rank < k, 1.0 / torch.log2(rank.double() + 2.0), torch.zeros((), dtype=torch.float64)
    )
    return float(gain.mean())


def ranking_metrics(rank: Tensor, ks: tuple[int, ...] = (5, 10)) -> dict[str, float]:
    """{"HR@5", "NDCG@5", "HR@10", "NDCG@10"} (for ``ks``) from 0-based ranks."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(rank, k)
        out[f"NDCG@{k}"] = ndcg(rank, k)
    return out
