"""Sliding-window (local) attention.

Query i attends to the keys j with |i - j| < window (bidirectional) or
i - window < j <= i (causal): exact softmax attention restricted to that band::

    out[i] = sum_{j in band(i)} exp(s_ij - m_i) v_j / sum_{j in band(i)} exp(s_ij - m_i),
    s_ij = <q_i, k_j> / sqrt(d),  m_i = max_{j in band(i)} s_ij.

It equals ``reference.exact_attention`` with an additive bias that is -inf outside the
band, and exact attention once window >= L. Cost: time O(L * window * d),
memory O(L * window) (queries in blocks of ``window`` rows, keys through ``unfold``).
Shapes: q/k (batch, heads, L, d), v (batch, heads, L, dv) -> (batch, heads, L, dv).
Half-precision inputs are computed in float32 and cast back.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from impls.attention._banded import banded_attention
from impls.attention._validation import check_attention_inputs, compute_dtype, expand_keep
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = ["LocalWindowAttention", "local_window_attention"]


def local_window_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    window: int = 64,
) -> Tensor:
    """Sliding-window attention (see the module docstring)."""
    check_attention_inputs(
        q,
        k,
        v,
        causal=causal,
        key_padding_mask=key_padding_mask,
        same_length=True,
        method="local_window",
    )
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"local_window: window must be an int >= 1, got {window!r}")
    batch, heads, length, d = q.shape
    ct = compute_dtype(q.dtype)
    reach = min(window, length) - 1
    keep = expand_keep(key_padding_mask, batch, heads, length, q.device)
    flat = lambda t: t.to(ct).reshape(batch * heads, length, t.shape[-1])  # noqa: E731
    out, _ = banded_attention(
        flat(q),
        flat(k),
        flat(v),
        left=reach,
        right=0 if causal else reach,
        block=max(reach, 1),
        scale=1.0 / math.sqrt(d),
        key_ok=keep.reshape(batch * heads, length),
    )
    return out.reshape(batch, heads, length, v.shape[-1]).to(q.dtype)


class LocalWindowAttention(nn.Module):
    """Module form: ``LocalWindowAttention(dim, heads, window=64)(q, k, v, causal=...)``."""

    def __init__(self, dim: int | None = None, heads: int | None = None, *, window: int = 64):
        super().__init__()
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"local_window: window must be an int >= 1, got {window!r}")
        self.window = window

    def forward(self, q, k, v, *, causal: bool = False, key_padding_mask=None) -> Tensor:
        return local_window_attention(
            q, k, v, causal=causal, key_padding_mask=key_padding_mask, window=self.window
        )

    def extra_repr(self) -> str:
        return f"window={self.window}"


def analytic_cost(query: CostQuery) -> Cost:
    """Each query sees w keys (causal) or 2w - 1 (bidirectional): 4 L w d FLOPs; working
    memory (L, d) buffers plus the (L, w) band of scores."""
    n, d = query.length, query.dim
    w = query.hp.get("window", 64)
    seen = min(w if query.causal else 2 * w - 1, n)
    grad = 3 if query.backward else 1
    working = query.itemsize * query.rows * grad * (8 * d + 6 * w) * n
    flops = query.rows * query.passes * 4.0 * n * seen * d
    return Cost(flops, compulsory_traffic(query), int(working + SLACK_BYTES))
