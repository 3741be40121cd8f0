"""Metrics for the graph tasks: Micro/Macro-F1 (single-label) and ROC-AUC."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["micro_f1", "macro_f1", "roc_auc"]


def micro_f1(pred: Tensor, target: Tensor) -> float:
    """Single-label multi-class Micro-F1 (equals accuracy)."""
    if pred.numel() == 0:
        raise ValueError("pred is empty")
    return float((pred == target).double().mean())


def macro_f1(pred: Tensor, target: Tensor, num_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); classes absent from
    both pred and target are skipped."""
    scores = []
    for c in range(num_classes):
        tp = int(((pred == c) & (target == c)).sum())
        fp = int(((pred == c) & (target != c)).sum())
        fn = int(((pred != c) & (target == c)).sum())
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores)) if scores else 0.0


def roc_auc(pos: Tensor, neg: Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties count 1/2
    (Mann-Whitney U / (n_pos n_neg), with average ranks).

    Non-finite scores (NaN, +-inf) lose: a pair counts 1 only when both scores are finite
    and the positive's is larger (1/2 when equal); a pair with a non-finite positive or a
    non-finite negative counts 0. So AUC = U(finite pos, finite neg) / (n_pos n_neg), and
    a scorer that returns NaN gets 0, never the 1 that sorting NaN last would give."""
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("roc_auc needs at least one positive and one negative score")
    n_pos, n_neg = pos.numel(), neg.numel()
    pos, neg = pos.double().flatten(), neg.double().flatten()
    pos, neg = pos[torch.isfinite(pos)], neg[torch.isfinite(neg)]
    if pos.numel() == 0 or neg.numel() == 0:
        return 0.0
    scores = torch.cat([pos, neg])
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # average ranks over ties
    uniq, inv, counts = torch.unique(sorted_scores, return_inverse=True, return_counts=True)
    sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inv, ranks[order])
    ranks[order] = (sums / counts)[inv]
    kept = pos.numel()
    u = float(ranks[:kept].sum()) - kept * (kept + 1) / 2
    return u / (n_pos * n_neg)
