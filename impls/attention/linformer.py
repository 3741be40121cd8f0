"""Linformer (Wang, Li, Khabsa, Fang, Ma 2020, "Linformer: Self-Attention with Linear
Complexity"), bidirectional only.

Keys and values are projected along the length axis by rank-``proj_len`` matrices E and
F (proj_len x L) before softmax attention::

    out = softmax(q (E k)^T / sqrt(d) + log c) (F v)

What this module implements: E = F = mean pooling, the paper's "general projections"
variant (Section 4: "one can also choose ... mean/max pooling, or convolution where the
kernel and stride is set to n/k"), not the learned projections of its main experiments.
A benchmark of untrained operators has nothing to learn E from, and a random Gaussian E
would be an arbitrary approximation that is exact for no proj_len; pooling is
deterministic, keeps the paper's O(L k) cost and becomes exact attention at k >= L. Block
t pools positions [floor(t L / p), floor((t+1) L / p)), p = min(proj_len, L). Padded keys
are left out of each block's mean and block t carries the additive weight log c_t,
c_t = number of its unpadded keys, so a block of c identical keys counts like c tokens;
empty blocks are masked. Consequences: padded keys change nothing, an all-padded row
gives zeros, and for proj_len >= L every block is one token, i.e. exact attention.

Form: the pooling is a segment sum over contiguous blocks (a reshape-and-sum when p
divides L, else one ``index_add`` of the rows), O(L d) instead of the dense (p x L)
projection's O(L p d); attention to the p pooled rows is one GEMM with the log-count
bias fused in (``baddbmm``), a fused softmax over (L x p) and one GEMM with the pooled
values. That is the best known CPU form: everything but two O(L d) reductions is BLAS-3,
and nothing of size (L, L) exists. Time O(L p d), memory O(L (p + d)).
Shapes: q (batch, heads, Lq, d), k (batch, heads, Lk, d), v (batch, heads, Lk, dv)
-> (batch, heads, Lq, dv).

The pooled keys mix positions before and after any query, so Linformer cannot be causal
(the paper gives no causal form): ``causal=True`` raises ValueError (and the registry
declares causal unsupported).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from impls.attention._validation import check_attention_inputs, compute_dtype
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = ["LinformerAttention", "block_sums", "pooling_projection", "pooled_keys_values"]


def pooling_projection(length: int, proj_len: int, *, dtype, device) -> Tensor:
    """(p, length) 0/1 matrix assigning each position to its block, p = min(proj_len, length)."""
    p = min(proj_len, length)
    block_of = torch.div(torch.arange(length, device=device) * p, length, rounding_mode="floor")
    return (block_of[None, :] == torch.arange(p, device=device)[:, None]).to(dtype)


def pooled_keys_values(
    k: Tensor, v: Tensor, key_padding_mask: Tensor | None, proj_len: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(E k, E v, counts): block means of unpadded keys/values and their counts (N, H, p),
    by the dense projection matrix E of the definition (O(L p d); the oracle identity
    uses it, the module uses ``block_sums``)."""
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


def block_sums(
    k: Tensor, v: Tensor, key_padding_mask: Tensor | None, proj_len: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(sum of unpadded k per block, same for v, counts (N, 1, p)) by segment sums: the
    fast form of ``pooled_keys_values`` (which applies the dense projection matrix)."""
    batch, heads, length, _ = k.shape
    p = min(proj_len, length)
    if key_padding_mask is not None:
        keep = (~key_padding_mask).to(k.dtype)  # (N, L)
        k = k * keep[:, None, :, None]
        v = v * keep[:, None, :, None]
    if length % p == 0:
        size = length // p
        sk = k.reshape(batch, heads, p, size, -1).sum(dim=3)
        sv = v.reshape(batch, heads, p, size, -1).sum(dim=3)
        if key_padding_mask is None:
            counts = k.new_full((batch, 1, p), float(size))
        else:
            counts = keep.reshape(batch, p, size).sum(dim=-1)[:, None, :]
        return sk, sv, counts
    block_of = torch.div(torch.arange(length, device=k.device) * p, length, rounding_mode="floor")
    sk = k.new_zeros(batch, heads, p, k.shape[-1]).index_add(2, block_of, k)
    sv = v.new_zeros(batch, heads, p, v.shape[-1]).index_add(2, block_of, v)
    ones = torch.ones(batch, length, dtype=k.dtype, device=k.device)
    weight = ones if key_padding_mask is None else keep
    counts = k.new_zeros(batch, p).index_add(1, block_of, weight)[:, None, :]
    return sk, sv, counts


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
        qc, kc, vc = q.to(ct), k.to(ct), v.to(ct)
        batch, heads, lq, d = qc.shape
        sk, sv, counts = block_sums(kc, vc, key_padding_mask, self.proj_len)
        p = counts.shape[-1]
        has = counts > 0
        safe = torch.where(has, counts, torch.ones_like(counts))[..., None]  # (N, 1, p, 1)
        pk, pv = sk / safe, sv / safe
        # log c_t, and a finite floor for empty blocks: a row whose blocks are all empty
        # (every key padded) stays finite and is zeroed below
        bias = torch.where(has, torch.log(safe[..., 0]), torch.finfo(ct).min)  # (N, 1, p)
        bias = bias.expand(batch, heads, p).reshape(batch * heads, 1, p)
        scores = torch.baddbmm(
            bias,
            qc.reshape(batch * heads, lq, d),
            pk.reshape(batch * heads, p, d).transpose(1, 2),
            alpha=1.0 / math.sqrt(d),
        )
        out = torch.bmm(torch.softmax(scores, dim=-1), pv.reshape(batch * heads, p, -1))
        out = out.reshape(batch, heads, lq, -1)
        if key_padding_mask is not None:
            out = out * has.any(dim=-1)[:, :, None, None]
        return out.to(q.dtype)

    def extra_repr(self) -> str:
        return f"proj_len={self.proj_len}"


def analytic_cost(query: CostQuery) -> Cost:
    """Pooling keys and values to p = min(proj_len, L) block means is a segment sum,
    2 L d additions; attention to them is 4 L p d (the score GEMM with the bias fused,
    the value GEMM) plus the softmax (about 5 L p). Working memory: the scores and
    weights (2 (L, p)), the output and a padded copy of k and v (3 (L, d)), the pooled
    rows (2 (p, d))."""
    n, d = query.length, query.dim
    p = min(query.hp.get("proj_len", 64), n)
    grad = 3 if query.backward else 1
    working = query.itemsize * query.rows * grad * ((3 * d + 2 * p) * n + 2 * p * d)
    flops = query.rows * query.passes * (4.0 * n * p * d + 5.0 * n * p + 2.0 * n * d)
    return Cost(flops, compulsory_traffic(query), int(working + SLACK_BYTES))
