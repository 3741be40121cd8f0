"""The oracle, wrapped as a registry method.

out = softmax(scale * q k^T + mask) v with scale = 1/sqrt(d), exactly as
``reference.attention.exact_attention``; q/k/v (batch, heads, L, d), output
(batch, heads, Lq, dv). Time O(L^2 d), memory O(L^2): it materialises the score matrix.
"""

from __future__ import annotations

from torch import Tensor

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
