"""Drawing a budget of candidates from a proposal q, with or without replacement.

With replacement: n independent draws from q; c(u) = times u was drawn; the expansion
factor c(u) / (n q(u)) has expectation 1 for every u (Hansen-Hurwitz).

Without replacement: inclusion probabilities pi_u = min(1, lambda q(u)) with lambda
chosen so that sum_u pi_u = min(n, K) (capping: units whose lambda q(u) would exceed 1
are taken with certainty and the rest of the budget is spread over the others), then
systematic PPS sampling: one uniform start r in [0, 1), u kept iff some point r + j,
j integer, falls in [C_{u-1}, C_u) with C the running sum of pi. Each u is kept with
probability exactly pi_u, the sample size is exactly sum pi, and the expansion factor is
1 / pi_u (Horvitz-Thompson). When n >= K every pi_u = 1 and every candidate is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["draw_with_replacement", "capped_inclusion_probabilities", "draw_systematic"]


def draw_with_replacement(q: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """q: (K,) float64 probabilities summing to 1; returns counts (K,) float64."""
    if n == 0 or q.numel() == 0:
        return torch.zeros_like(q)
    idx = torch.multinomial(q, n, replacement=True, generator=generator)
    return torch.bincount(idx, minlength=q.numel()).to(torch.float64)


def capped_inclusion_probabilities(q: Tensor, n: int) -> Tensor:
    """pi = min(1, lambda q) with sum(pi) = min(n, K'), K' = number of q > 0.

    q: (K,) non-negative float64. Candidates with q = 0 get pi = 0."""
    k = q.numel()
    target = min(n, k)
    pi = torch.zeros_like(q)
    if target == 0:
        return pi
    certain = torch.zeros(k, dtype=torch.bool)
    positive = q > 0
    if int(positive.sum()) <= target:
        return positive.to(q.dtype)
    while True:
        free = ~certain & positive
        budget = target - int(certain.sum())
        if budget == 0:
            return certain.to(q.dtype)
        # elementwise division (not q * (budget / sum)): stays exact for subnormal q
        scaled = torch.where(free, q / q[free].sum(), torch.zeros_like(q)) * budget
        new_certain = free & (scaled >= 1.0)
        if not bool(new_certain.any()):
            pi = torch.where(certain, torch.ones_like(q), torch.where(free, scaled, pi))
            return pi
        certain |= new_certain


def draw_systematic(pi: Tensor, generator: torch.Generator | None) -> Tensor:
    """Systematic PPS sample: returns a bool mask (K,), u kept with probability pi[u]."""
    if pi.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    r = torch.rand((), generator=generator, dtype=torch.float64)
    certain = pi >= 1.0
    partial = torch.where(certain, torch.zeros_like(pi), pi)  # certain units take no point
    upper = torch.cumsum(partial, 0)
    lower = upper - partial
    hits = torch.floor(upper - r) - torch.floor(lower - r)
    return certain | ((hits > 0) & (partial > 0))
