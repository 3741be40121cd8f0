"""torch.nn.functional.scaled_dot_product_attention behind the project's contract.

Equation: out = softmax(q k^T / sqrt(d) + mask) v, with mask = -inf above the diagonal
(causal) and on padded keys. Shapes: q (batch, heads, Lq, d), k (batch, heads, Lk, d),
v (batch, heads, Lk, dv) -> (batch, heads, Lq, dv); key_padding_mask (batch, Lk), True = padded.

SDPA returns NaN for a query row that sees no key; the contract wants zeros. Such rows are
given every key to attend (so forward and backward stay finite) and their output is then
replaced by zeros, which also zeroes their gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from impls.attention._validation import check_attention_inputs

__all__ = ["masked_sdpa", "sdpa_attention"]


def sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Exact attention through torch's fused kernels (see the module docstring)."""
    check_attention_inputs(q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="sdpa")
    return masked_sdpa(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


def masked_sdpa(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool, key_padding_mask: Tensor | None
) -> Tensor:
    """The SDPA call of :func:`sdpa_attention` on checked inputs: a boolean mask for key
    padding, rows without a visible key zeroed. Whichever kernel torch selects (or the one
    a surrounding ``sdpa_kernel`` context pins) runs it."""
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    lq, lk = q.shape[2], k.shape[2]
    visible = (~key_padding_mask)[:, None, None, :]  # (batch, 1, 1, Lk)
    if causal:
        visible = visible & torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril()
    else:
        visible = visible.expand(-1, 1, lq, lk)
    empty = ~visible.any(dim=-1, keepdim=True)  # (batch, 1, Lq, 1): rows with no key
    attend = visible | empty
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
    return out.masked_fill(empty, 0.0)
