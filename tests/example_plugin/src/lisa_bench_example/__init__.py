"""An example submission: exact softmax attention written out in plain torch.

    out = softmax(q k^T / sqrt(d) + mask) v          mask: -inf above the diagonal (causal)
                                                      and on padded keys
q, k (batch, heads, L, d); v (batch, heads, L, dv); key_padding_mask (batch, L), True =
padded; rows that see no key return zeros. Float32/float64 only (declared below).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from harness.conformance import validate_qkv
from impls.registry import Capabilities, MethodSpec

__all__ = ["SPEC", "softmax_attention"]


def softmax_attention(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, key_padding_mask: Tensor | None = None
) -> Tensor:
    validate_qkv(
        q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="example_softmax"
    )
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    visible = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device)
    if causal:
        visible = visible.tril()
    visible = visible.expand(scores.shape)
    if key_padding_mask is not None:
        visible = visible & ~key_padding_mask[:, None, None, :]
    scores = scores.masked_fill(~visible, -torch.inf)
    empty = ~visible.any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1)
    return (weights @ v).masked_fill(empty, 0.0)


def _factory(dim: int | None = None, heads: int | None = None):
    return softmax_attention


def _oracle_identity(attn, q, k, v, *, causal, key_padding_mask):
    from reference.attention import exact_attention

    return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


SPEC = MethodSpec(
    name="example_softmax",
    factory=_factory,
    exact=True,
    summary="exact softmax attention in plain torch (an example submission)",
    paper="Vaswani et al. 2017",
    capabilities=Capabilities(dtypes=(torch.float32, torch.float64)),
    time_exponent=2.0,
    memory_exponent=2.0,
    oracle_identity="equals the oracle to dtype rounding (always)",
    oracle_reference=_oracle_identity,
    permutation_equivariant=True,
)
