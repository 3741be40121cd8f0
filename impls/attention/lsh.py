"""Reformer-style LSH bucketed attention (Kitaev, Kaiser, Levskaya 2020, "Reformer").

Angular LSH: for hash round r, a random rotation R_r (d x n_buckets/2) maps a unit vector
x to bucket h_r(x) = argmax([x R_r ; -x R_r]). Queries are hashed by q_i/|q_i|, keys by
k_j/|k_j| (Reformer shares q = k; here they may differ, with the same rotation).
n_buckets = 2 * round(L / (2 * bucket_size)) (1 bucket when L <= bucket_size).

Per round, the L queries and L keys are merged into one sequence of 2L items sorted by
(bucket, position, key-before-query). Each query attends to the key items among the
``2 * bucket_size`` items before it (causal) or before and after it (bidirectional) in
that order, restricted to its own bucket (and to positions j <= i when causal)::

    o_r[i] = sum_{j in P_r(i)} exp(s_ij - m) v_j / sum_{j in P_r(i)} exp(s_ij - m),
    lse_r[i] = log sum_{j in P_r(i)} exp(s_ij),   s_ij = <q_i, k_j> / sqrt(d)

and rounds are combined as out[i] = sum_r exp(lse_r[i] - logsumexp_r lse_r[i]) o_r[i],
i.e. softmax attention over the multiset of keys found in any round (a key found in two
rounds counts twice, as in Reformer without its de-duplication term). A query that finds
no key in any round returns zeros.

Deviation from Reformer, on purpose: Reformer splits the sorted sequence into fixed
chunks, so a future token's bucket moves chunk boundaries and changes past outputs. Here
the window slides with each query, so within its bucket a query sees exactly the latest
keys at or before it (causal), which depends on no future token. Equivalent to
``reference.exact_attention`` with bias log(count_ij), count_ij = number of rounds in which
query i found key j (-inf when 0); exact once bucket_size >= L (one bucket, full window).
Time O(n_hashes L (bucket_size d + log L)), memory O(n_hashes L bucket_size).
Shapes: q/k (batch, heads, L, d), v (batch, heads, L, dv) -> (batch, heads, L, dv).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from impls.attention._banded import banded_attention
from impls.attention._validation import check_attention_inputs, compute_dtype, expand_keep
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = ["LSHAttention", "lsh_buckets", "number_of_buckets", "sorted_order"]


def number_of_buckets(length: int, bucket_size: int) -> int:
    """Even number of buckets close to length / bucket_size, or 1 for short inputs."""
    if length <= bucket_size:
        return 1
    return 2 * max(1, round(length / (2 * bucket_size)))


def random_rotations(n_hashes: int, dim: int, n_buckets: int, seed: int) -> Tensor:
    """(n_hashes, dim, n_buckets // 2) float64 Gaussian rotations from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_hashes, dim, max(n_buckets // 2, 1), generator=gen, dtype=torch.float64)


def lsh_buckets(x: Tensor, rotations: Tensor, n_buckets: int) -> Tensor:
    """Bucket ids (n_hashes, *x.shape[:-1]) of the rows of x (..., d), int64."""
    if n_buckets == 1:
        return torch.zeros(rotations.shape[0], *x.shape[:-1], dtype=torch.long, device=x.device)
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    proj = torch.einsum("...d,rdb->r...b", unit, rotations.to(device=x.device, dtype=x.dtype))
    return torch.cat([proj, -proj], dim=-1).argmax(dim=-1)


def sorted_order(q_bucket: Tensor, k_bucket: Tensor) -> Tensor:
    """Permutation (..., 2L) sorting items [keys 0..L-1, queries 0..L-1] by
    (bucket, position, key before query); items with index < L are keys."""
    length = q_bucket.shape[-1]
    pos = torch.arange(length, device=q_bucket.device)
    k_key = k_bucket * (2 * length) + 2 * pos
    q_key = q_bucket * (2 * length) + 2 * pos + 1
    return torch.argsort(torch.cat([k_key, q_key], dim=-1), dim=-1, stable=True)


class LSHAttention(nn.Module):
    """``LSHAttention(dim, heads, n_hashes=2, bucket_size=32, seed=0)``; rotations are
    drawn from ``seed`` on every call (they depend on the bucket count, i.e. on L)."""

    def __init__(
        self,
        dim: int | None = None,
        heads: int | None = None,
        *,
        n_hashes: int = 2,
        bucket_size: int = 32,
        seed: int = 0,
    ):
        super().__init__()
        for name, val in (("n_hashes", n_hashes), ("bucket_size", bucket_size)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"lsh: {name} must be an int >= 1, got {val!r}")
        self.n_hashes, self.bucket_size, self.seed = n_hashes, bucket_size, seed

    def rotations(self, dim: int, length: int) -> tuple[Tensor, int]:
        n_buckets = number_of_buckets(length, self.bucket_size)
        return random_rotations(self.n_hashes, dim, n_buckets, self.seed), n_buckets

    def forward(self, q, k, v, *, causal: bool = False, key_padding_mask=None) -> Tensor:
        check_attention_inputs(
            q,
            k,
            v,
            causal=causal,
            key_padding_mask=key_padding_mask,
            same_length=True,
            method="lsh",
        )
        batch, heads, length, d = q.shape
        dv = v.shape[-1]
        ct = compute_dtype(q.dtype)
        qc, kc, vc = q.to(ct), k.to(ct), v.to(ct)
        rot, n_buckets = self.rotations(d, length)
        qb = lsh_buckets(qc, rot, n_buckets)  # (R, N, H, L)
        kb = lsh_buckets(kc, rot, n_buckets)
        keep = expand_keep(key_padding_mask, batch, heads, length, q.device)

        n = batch * heads
        rounds = self.n_hashes
        # Items: first L are keys (key vector, value, is_key), last L are queries.
        zeros_d = torch.zeros(n, length, d, dtype=ct, device=q.device)
        q_items = torch.cat([zeros_d, qc.reshape(n, length, d)], dim=1)
        k_items = torch.cat([kc.reshape(n, length, d), zeros_d], dim=1)
        v_items = torch.cat([vc.reshape(n, length, dv), vc.new_zeros(n, length, dv)], dim=1)
        pos = torch.arange(length, device=q.device).repeat(2).expand(n, 2 * length)
        is_key = torch.zeros(n, 2 * length, dtype=torch.bool, device=q.device)
        is_key[:, :length] = keep.reshape(n, length)

        outs, lses = [], []
        width = 2 * self.bucket_size
        for r in range(rounds):
            bucket = torch.cat([kb[r], qb[r]], dim=-1).reshape(n, 2 * length)
            order = sorted_order(qb[r].reshape(n, length), kb[r].reshape(n, length))
            gather = lambda t, o=order: torch.gather(  # noqa: E731
                t, 1, o[..., None].expand(-1, -1, t.shape[-1]) if t.dim() == 3 else o
            )
            out_s, lse_s = banded_attention(
                gather(q_items),
                gather(k_items),
                gather(v_items),
                left=width,
                right=0 if causal else width,
                block=width,
                scale=1.0 / math.sqrt(d),
                key_ok=gather(is_key),
                q_pos=gather(pos),
                k_pos=gather(pos),
                q_group=gather(bucket),
                k_group=gather(bucket),
                causal=causal,
            )
            # Undo the sort and keep the query items (indices L..2L-1).
            inverse = torch.argsort(order, dim=-1)
            out = torch.gather(out_s, 1, inverse[..., None].expand(-1, -1, dv))[:, length:]
            lse = torch.gather(lse_s, 1, inverse)[:, length:]
            outs.append(out)
            lses.append(lse)
        lse_all = torch.stack(lses)  # (R, n, L)
        total = torch.logsumexp(lse_all, dim=0)
        found = torch.isfinite(total)
        weights = torch.exp(lse_all - torch.where(found, total, torch.zeros_like(total)))
        weights = torch.where(found, weights, torch.zeros_like(weights))
        out = (weights[..., None] * torch.stack(outs)).sum(dim=0)
        return out.reshape(batch, heads, length, dv).to(q.dtype)

    def extra_repr(self) -> str:
        return f"n_hashes={self.n_hashes}, bucket_size={self.bucket_size}, seed={self.seed}"


def lsh_visibility_counts(
    module: LSHAttention, q: Tensor, k: Tensor, *, causal: bool, key_padding_mask=None
) -> Tensor:
    """count[i, j] (N, H, L, L): rounds in which query i finds key j, computed densely from
    the definition (for oracle identity checks, not for speed)."""
    batch, heads, length, d = q.shape
    rot, n_buckets = module.rotations(d, length)
    qb, kb = lsh_buckets(q, rot, n_buckets), lsh_buckets(k, rot, n_buckets)
    keep = expand_keep(key_padding_mask, batch, heads, length, q.device)
    counts = torch.zeros(batch, heads, length, length, dtype=q.dtype, device=q.device)
    width = 2 * module.bucket_size
    i = torch.arange(length, device=q.device)
    for r in range(module.n_hashes):
        order = sorted_order(qb[r], kb[r])
        rank = torch.argsort(order, dim=-1)  # rank of each item in the sorted sequence
        k_rank, q_rank = rank[..., :length], rank[..., length:]
        gap = k_rank[..., None, :] - q_rank[..., :, None]  # (N, H, L, L): key minus query
        ok = (gap >= -width) & (gap <= (0 if causal else width))
        ok &= qb[r][..., :, None] == kb[r][..., None, :]
        ok &= keep[..., None, :]
        if causal:
            ok &= i[None, :] <= i[:, None]
        counts += ok.to(q.dtype)
    return counts


def analytic_cost(query: CostQuery) -> Cost:
    """Per hash round, hashing q and k onto n_buckets / 2 random directions costs
    2 L d n_buckets FLOPs and holds (L, n_buckets) projections: with n_buckets ~ L / b this
    part is quadratic in L (constant d / b), as in Reformer. Attention within the sliding
    window of the sorted sequence costs 4 L (2 b) d; working memory per round (L, d)
    buffers, the (L, 2b) band and the projections."""
    n, d = query.length, query.dim
    rounds = query.hp.get("n_hashes", 2)
    bucket = query.hp.get("bucket_size", 32)
    buckets = number_of_buckets(n, bucket)
    per_row = rounds * (2.0 * n * d * buckets + 4.0 * n * min(2 * bucket, n) * d)
    grad = 3 if query.backward else 1
    band = grad * rounds * (20 * d + 8 * bucket) * n
    hashing = rounds * 3 * n * buckets  # q and k: projections, their negation, the argmax
    working = query.itemsize * query.rows * (band + hashing)
    flops = query.rows * query.passes * per_row
    return Cost(flops, compulsory_traffic(query), int(working + SLACK_BYTES))
