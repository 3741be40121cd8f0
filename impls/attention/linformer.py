"""Linformer (Wang, Li, Khabsa, Fang, Ma 2020, "Linformer: Self-Attention with Linear
Complexity"), bidirectional only.

Keys and values are projected along the length axis by a rank-``proj_len`` matrix E
(proj_len x L) before softmax attention::

    out = softmax(q (E k)^T / sqrt(d) + log c) (E v)

This implementation uses the paper's mean-pooling projection (Section 4, "general
projections"): E averages contiguous blocks of positions, block t covering positions
[floor(t L / p), floor((t+1) L / p)), p = min(proj_len, L). Padded keys are left out of
each block's mean and block t carries the additive weight log c_t, c_t = number of its
unpadded keys, so a block of c identical keys counts like c tokens; empty blocks are
masked. Consequences: padded keys change nothing, an all-padded row gives zeros, and for
proj_len >= L every block is one token, i.e. exact attention. Time O(L p d), memory O(L p).
Shapes: q (batch, heads, Lq, d), k (batch, heads, Lk, d), v (batch, heads, Lk, dv)
-> (batch, heads, Lq, dv).

The pooled keys mix positions before and after any query, so Linformer cannot be causal:
``causal=True`` raises ValueError (and the registry declares causal unsupported).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from impls.attention._validation import check_attention_inputs, compute_dtype
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = ["LinformerAttention", "pooling_projection", "pooled_keys_values"]


def pooling_projection(length: int, proj_len: int, *, dtype, device) -> Tensor:
    """(p, length) 0/1 matrix assigning each position to its block, p = min(proj_len, length)."""
    p = min(proj_len, length)
    block_of = torch.div(torch.arange(length, device=device) * p, length, rounding_mode="floor")
    return (block_of[None, :] == torch.arange(p, device=device)[:, None]).to(dtype)


def pooled_keys_values(
    k: Tensor, v: Tensor, key_padding_mask: Tensor | None, proj_len: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(E k, E v, counts): block means of unpadded keys/values and their counts (N, H, p)."""
    batch, heads, length, _ = k.shape
    e = pooling_projection(length, proj_len, dtype=k.dtype, device=k.device)  # (p, L)
    keep = torch.ones(batch, length, dtype=k.dtype, device=k.device)
    if key_padding_mask is not None:
        keep = keep.masked_fill(key_padding_mask, 0.0)
    e = e[None] * keep[:, None, :]  # (N, p, L), padded keys have weight 0
    counts = e.sum(dim=-1)  # (N, p)
    safe = torch.where(counts > 0, counts, torch.ones_like(counts))
    pk = torch.einsum("npl,nhld->nhpd", e, k) / safe[:, None, :, None]
    pv = torch.einsum("npl,nhld->nhpd", e, v) / safe[:, None, :, None]
    return pk, pv, counts[:, None, :].expand(batch, heads, -1)


class LinformerAttention(nn.Module):
    """``LinformerAttention(dim, heads, proj_len=64)(q, k, v)``; bidirectional only."""

    def __init__(self, dim: int | None = None, heads: int | None = None, *, proj_len: int = 64):
        super().__init__()
        if not isinstance(proj_len, int) or proj_len < 1:
            raise ValueError(f"linformer: proj_len must be an int >= 1, got {proj_len!r}")
        self.proj_len = proj_len

    def forward(self, q, k, v, *, causal: bool = False, key_padding_mask=None) -> Tensor:
        if causal is True:
            raise ValueError(
                "linformer is bidirectional only: its length projection mixes future keys "
                "into every query, so causal=True is not supported"
            )
        check_attention_inputs(
            q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="linformer"
        )
        ct = compute_dtype(q.dtype)
        pk, pv, counts = pooled_keys_values(k.to(ct), v.to(ct), key_padding_mask, self.proj_len)
        scores = torch.einsum("nhid,nhpd->nhip", q.to(ct), pk) / math.sqrt(q.shape[-1])
        log_counts = torch.log(torch.where(counts > 0, counts, torch.ones_like(counts)))
        scores = scores + log_counts[:, :, None, :]
        scores = scores.masked_fill((counts == 0)[:, :, None, :], float("-inf"))
        row_max = scores.amax(dim=-1, keepdim=True)
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        weights = torch.exp(scores - row_max)
        total = weights.sum(dim=-1, keepdim=True)
        out = torch.einsum("nhip,nhpe->nhie", weights, pv)
        out = out / torch.where(total > 0, total, torch.ones_like(total))
        return out.to(q.dtype)

    def extra_repr(self) -> str:
        return f"proj_len={self.proj_len}"


def analytic_cost(query: CostQuery) -> Cost:
    """Mean-pooling keys and values to k rows costs 2 L d, attention to them 4 L k d;
    working memory (L, d) buffers and the (L, k) scores."""
    n, d = query.length, query.dim
    k = min(query.hp.get("proj_len", 64), n)
    grad = 3 if query.backward else 1
    working = query.itemsize * query.rows * grad * (8 * d + 6 * k) * n
    flops = query.rows * query.passes * (4.0 * n * k * d + 2.0 * n * d)
    return Cost(flops, compulsory_traffic(query), int(working + SLACK_BYTES))
