"""Linear attention with a fixed decay: LISA's recency prior without its codebooks.

Causal linear attention (elu + 1 features, ``impls.attention.linear``) in which key j
weighs gamma^(i - j) for query i, the decay LISA applies to its codeword histogram::

    out_i = sum_{j <= i} w_ij v_j / sum_{j <= i} w_ij,   w_ij = gamma^(i-j) phi(q_i).phi(k_j)

over the unpadded keys j, phi(x) = elu(x) + 1 > 0. This is retention (Sun et al. 2023,
RetNet) with positive features and a normaliser, and the comparison LISA's decay asks
for: the same prior on recency, with every key kept as a vector instead of a codeword.
gamma = 1 is ``linear``. Oracle identity: the oracle with scale 0 and bias
log(phi(q_i).phi(k_j)) + (i - j) log gamma.

Form: the chunk-parallel scan of ``linear`` (``kernel_attention(..., gamma=)``, chunks of
C) with the decay's factors, which are the same for every row and chunk, are formed once
in float64 and broadcast (no per-chunk copies): the intra-chunk weights gamma^(i - j)
(j <= i < C), the keys' factors into their chunk state gamma^(C - 1 - j), the state's
shrink from chunk to chunk gamma^C and the queries' read of the previous state
gamma^(i + 1). Every factor is <= 1, so nothing
overflows at any L; the state of chunks long past shrinks towards zero as it should.
Cost: that of ``linear`` plus one (C x C) multiply per chunk and a scale of the keys.

Limit, checked up front: a query row that sees keys only further back than the dtype's
exponent range allows (its own key padded and the nearest visible key more than about
0.9 * ln(1 / tiny) / ln(1 / gamma) positions back: 786 for float32 at gamma = e^-0.1)
would get a denominator that underflows; that raises ``FloatingPointError`` instead of
returning zeros. Causal only (the bidirectional weights gamma^|i - j| would need a
second, reversed scan). Shapes: q, k (batch, heads, L, d), v (batch, heads, L, dv) ->
(batch, heads, L, dv); half inputs are computed in float32 and cast back.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from impls.attention._validation import check_attention_inputs, compute_dtype
from impls.attention.linear import _check_chunk_size, elu_attention
from impls.attention.linear import analytic_cost as _linear_cost
from impls.costs import Cost, CostQuery

__all__ = ["DecayedLinearAttention", "analytic_cost", "decayed_linear_attention"]

METHOD = "decay_linear"
_RANGE_FRACTION = 0.9  # of ln(1 / tiny) a row's nearest visible key may lie back


def check_gamma(gamma) -> float:
    """gamma as a float in (0, 1]; ValueError naming it otherwise."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"{METHOD}: gamma must be a number in (0, 1], got {gamma!r}")
    return float(gamma)


def _check_reach(key_padding_mask: Tensor, gamma: float, dtype: torch.dtype) -> None:
    """FloatingPointError when some query's nearest visible key lies beyond the range."""
    if gamma == 1.0:
        return
    length = key_padding_mask.shape[1]
    pos = torch.arange(length, device=key_padding_mask.device)
    last_seen = torch.where(key_padding_mask, -1, pos).cummax(dim=1).values  # -1: none yet
    lag = torch.where(last_seen >= 0, pos - last_seen, 0)
    reach = _RANGE_FRACTION * -math.log(torch.finfo(dtype).tiny) / -math.log(gamma)
    worst = int(lag.max())
    if worst > reach:
        raise FloatingPointError(
            f"{METHOD}: a query's nearest visible key lies {worst} positions back, beyond "
            f"the {int(reach)} that gamma={gamma:g} allows in {dtype} (its weight "
            "gamma^lag underflows); use float64, a larger gamma or shorter padding runs"
        )


def decayed_linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    gamma: float,
    causal: bool = True,
    key_padding_mask: Tensor | None = None,
    chunk_size: int = 64,
) -> Tensor:
    """Causal elu+1 linear attention with decay gamma^(i - j) (see the module docstring)."""
    check_attention_inputs(q, k, v, causal=causal, key_padding_mask=key_padding_mask, method=METHOD)
    if not causal:
        raise ValueError(f"{METHOD}: causal must be True (the decayed scan is causal only)")
    gamma = check_gamma(gamma)
    _check_chunk_size(chunk_size)
    ct = compute_dtype(q.dtype)
    if key_padding_mask is not None:
        _check_reach(key_padding_mask, gamma, ct)
    return elu_attention(q, k, v, key_padding_mask, causal=True, chunk_size=chunk_size, gamma=gamma)


class DecayedLinearAttention(nn.Module):
    """Module form: ``DecayedLinearAttention(dim, heads, gamma=..., chunk_size=64)``."""

    def __init__(
        self,
        dim: int | None = None,
        heads: int | None = None,
        *,
        gamma: float = math.exp(-0.1),
        chunk_size: int = 64,
    ):
        super().__init__()
        self.gamma = check_gamma(gamma)
        _check_chunk_size(chunk_size)
        self.chunk_size = chunk_size

    def forward(self, q, k, v, *, causal: bool = True, key_padding_mask=None) -> Tensor:
        return decayed_linear_attention(
            q,
            k,
            v,
            gamma=self.gamma,
            causal=causal,
            key_padding_mask=key_padding_mask,
            chunk_size=self.chunk_size,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma:g}, chunk_size={self.chunk_size}"


def analytic_cost(query: CostQuery) -> Cost:
    """``linear``'s causal cost plus the decay: C x C weights multiplied into each chunk's
    scores (L C FLOPs), the keys scaled into their chunk state (L d) and the queries' read
    of the state scaled (L dv): 2 L C + 2 L d more FLOPs per (batch, head) row, times 3
    with the backward, as for ``linear``."""
    base = _linear_cost(query)
    n, d = query.length, query.dim
    chunk = max(1, min(query.hp.get("chunk_size", 64), n))
    extra = query.rows * query.passes * (2.0 * n * chunk + 2.0 * n * d)
    return Cost(base.flops + extra, base.traffic_bytes, base.working_bytes)
