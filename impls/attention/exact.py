"""The oracle, wrapped as a registry method.

out = softmax(scale * q k^T + mask) v with scale = 1/sqrt(d), exactly as
``reference.attention.exact_attention``; q/k/v (batch, heads, L, d), output
(batch, heads, Lq, dv). Time O(L^2 d), memory O(L^2): it materialises the score matrix.
"""

from __future__ import annotations

from torch import Tensor

from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic
from reference.attention import exact_attention

__all__ = ["oracle_attention"]


def oracle_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Exact softmax attention from ``reference`` (the contract's q/k/v signature)."""
    return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


def oracle_cost(query: CostQuery) -> Cost:
    """The oracle materialises the (L, L) scores: 4 L^2 d FLOPs (half when causal); the
    score matrix is written and read back a few times; working memory is a handful of
    (L, L) matrices (scores, mask, softmax and its temporaries)."""
    n, d = query.length, query.dim
    pairs = n * (n + 1) / 2 if query.causal else n * n
    flops = query.rows * query.passes * 4.0 * pairs * d
    squares = (10 if query.backward else 6) * n * n
    traffic = compulsory_traffic(query, extra_per_token=3 * n)
    return Cost(flops, traffic, int(query.itemsize * query.rows * (squares + 4 * n * d)))


def fused_exact_cost(query: CostQuery) -> Cost:
    """Fused exact attention (SDPA, xformers): the oracle's FLOPs, compulsory traffic only,
    working memory a few (L, d) buffers (tripled with backward)."""
    n, d = query.length, query.dim
    pairs = n * (n + 1) / 2 if query.causal else n * n
    flops = query.rows * query.passes * 4.0 * pairs * d
    grad = 3 if query.backward else 1
    working = int(query.itemsize * query.rows * grad * 4 * d * n + SLACK_BYTES)
    return Cost(flops, compulsory_traffic(query), working)
