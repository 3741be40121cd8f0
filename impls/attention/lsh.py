"""Reformer-style LSH bucketed attention (Kitaev, Kaiser, Levskaya 2020, "Reformer").

Angular LSH, factorised: for hash round r the bucket of a vector x is the mixed-radix
number of ``levels`` independent cross-polytope hashes, level l with f_l buckets hashing
x to argmax([x R_rl ; -x R_rl]) for a Gaussian R_rl (d x f_l/2), so

    h_r(x) = sum_l argmax([x R_rl ; -x R_rl]) * prod_{l' < l} f_l',   prod_l f_l = n_buckets.

Reformer's own code factorises n_buckets the same way (a list of factors) to save the
(L x n_buckets/2) projection; here every level has at most 16 buckets, so hashing costs
O(L d log n_buckets) instead of O(L d n_buckets), which with n_buckets ~ L / bucket_size
was quadratic in L. n_buckets is the power of two nearest (in log scale) to
L / bucket_size (at least 2), or 1 when L <= bucket_size. Queries and keys are hashed
with the same rotations (Reformer shares q = k; here they may differ).

Per round, the L queries and L keys are merged into one sequence of 2L items sorted by
(bucket, position, key-before-query). Each query attends to the key items among the
``2 * bucket_size`` items before it (causal) or before and after it (bidirectional) in
that order, restricted to its own bucket (and hence to positions j <= i when causal)::

    o_r[i] = sum_{j in P_r(i)} exp(s_ij - m) v_j / sum_{j in P_r(i)} exp(s_ij - m),
    lse_r[i] = log sum_{j in P_r(i)} exp(s_ij),   s_ij = <q_i, k_j> / sqrt(d)

and rounds are combined as out[i] = sum_r exp(lse_r[i] - logsumexp_r lse_r[i]) o_r[i],
i.e. softmax attention over the multiset of keys found in any round (a key found in two
rounds counts twice, as in Reformer without its de-duplication term). A query that finds
no key in any round returns zeros.

Form: sort, then blocked attention over the sorted sequence (Reformer's chunking): the
sorted items (all sequences of the batch side by side, kept apart by their codes) are
gathered straight into the padded chunk layout, cut into chunks of 2 * bucket_size, and
each chunk attends to its own and the previous chunk (and the next one when
bidirectional) through batched GEMMs (``impls.attention._banded``); only the window and
the bucket are masked. Rounds run one after another, so that their buffers stay small
enough for the allocator to reuse them instead of mapping fresh pages each call.
Deviation from Reformer, on purpose: Reformer lets a query see its whole own and
previous chunk, so a future token's bucket moves chunk boundaries and changes past
outputs; here the mask keeps exactly the window of items before each query, which
depends on no future token (causality holds) and costs nothing extra (the chunk pair
covers the window). It is the best known CPU form: the only super-linear step is the
O(L log L) sort, the attention is BLAS-3 on (2b x 4b) tiles (6b bidirectional), and
nothing of size (L, L) or (L, n_buckets) exists. Half the rows and columns of each tile
are items of the other kind (queries and keys share one sorted sequence): the price of
q != k, which Reformer's shared-QK attention does not pay; the analytic cost counts the
full tiles.

Equivalent to ``reference.exact_attention`` with bias log(count_ij), count_ij = number of
rounds in which query i found key j (-inf when 0); exact once bucket_size >= L (one
bucket, full window). Time O(n_hashes L (bucket_size d + d log L + log L)), memory
O(n_hashes L (bucket_size + d)).
Shapes: q/k (batch, heads, L, d), v (batch, heads, L, dv) -> (batch, heads, L, dv).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from impls.attention._banded import CHUNK_BYTES, band_geometry, banded_attention
from impls.attention._validation import check_attention_inputs, compute_dtype, expand_keep
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = [
    "LSHAttention",
    "bucket_levels",
    "lsh_buckets",
    "lsh_visibility_counts",
    "number_of_buckets",
    "sorted_order",
]

_NO_KEY, _NO_QUERY = -4, -3  # item codes that match nothing


MAX_LEVEL_BITS = 4  # a hashing level has at most 2**4 = 16 buckets (8 directions)


def number_of_buckets(length: int, bucket_size: int) -> int:
    """The power of two nearest to length / bucket_size (at least 2), or 1 for short inputs."""
    if length <= bucket_size:
        return 1
    return 2 ** max(1, round(math.log2(length / bucket_size)))


def bucket_levels(n_buckets: int) -> tuple[int, ...]:
    """Buckets per hashing level (powers of two, at most 16 each, as even as possible),
    whose product is ``n_buckets``; () for a single bucket."""
    bits = n_buckets.bit_length() - 1
    if bits <= 0:
        return ()
    levels = -(-bits // MAX_LEVEL_BITS)
    return tuple(2 ** (bits // levels + (i < bits % levels)) for i in range(levels))


def random_rotations(n_hashes: int, dim: int, n_buckets: int, seed: int) -> Tensor:
    """(n_hashes, dim, directions) float64 Gaussian directions from ``seed``: the levels'
    f_l / 2 directions side by side (1 column for a single bucket, unused)."""
    directions = max(sum(f // 2 for f in bucket_levels(n_buckets)), 1)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_hashes, dim, directions, generator=gen, dtype=torch.float64)


def lsh_buckets(x: Tensor, rotations: Tensor, n_buckets: int) -> Tensor:
    """Bucket ids (n_hashes, *x.shape[:-1]) of the rows of x (..., d), int64 (see the
    module docstring: mixed-radix number of per-level cross-polytope hashes)."""
    levels = bucket_levels(n_buckets)
    bucket = torch.zeros(rotations.shape[0], *x.shape[:-1], dtype=torch.long, device=x.device)
    if not levels:
        return bucket
    proj = torch.einsum("...d,rdb->r...b", x, rotations.to(device=x.device, dtype=x.dtype))
    radix, offset = 1, 0
    for size in levels:
        part = proj[..., offset : offset + size // 2]
        # argmax([part; -part]) without forming it: the largest entry of part, unless the
        # smallest one is larger in magnitude (ties go to part, the first half, as argmax)
        top, top_at = part.max(dim=-1)
        low, low_at = part.min(dim=-1)
        bucket += radix * torch.where(top >= -low, top_at, size // 2 + low_at)
        radix, offset = radix * size, offset + size // 2
    return bucket


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
        n, rounds = batch * heads, self.n_hashes
        ct = compute_dtype(q.dtype)
        qc, kc, vc = (t.to(ct).reshape(n, length, t.shape[-1]) for t in (q, k, v))
        rot, n_buckets = self.rotations(d, length)
        with torch.no_grad():  # buckets and the sort are discrete: no gradient
            qb = lsh_buckets(qc.detach(), rot, n_buckets)  # (R, n, L)
            kb = lsh_buckets(kc.detach(), rot, n_buckets)
            # codes in the banded attention: a query item matches the key items of its
            # bucket; key items never match as queries, query and padded items as keys.
            # The n sequences of a round form one sequence of items; adding
            # sequence * n_buckets to the codes keeps each sequence to itself.
            offset = torch.arange(n, device=q.device)[:, None]
            k_code = kb + offset * n_buckets
            if key_padding_mask is not None:
                keep = expand_keep(key_padding_mask, batch, heads, length, q.device)
                k_code = k_code.masked_fill(~keep.reshape(1, n, length), _NO_KEY)
            # one code past the items: the zero row the band's padding points at
            k_code = torch.cat([k_code, torch.full_like(qb, _NO_KEY)], dim=-1).reshape(rounds, -1)
            k_code = torch.cat([k_code, k_code.new_full((rounds, 1), _NO_KEY)], dim=-1)
            q_code = torch.cat([torch.full_like(kb, _NO_QUERY), qb + offset * n_buckets], dim=-1)
            positions = torch.arange(2 * length, device=q.device)
        # keys carry k, queries q; the last row is zero (padding of the band): one copy
        total = n * 2 * length
        items = qc.new_empty(total + 1, d)
        items[:total].view(n, 2 * length, d)[:, :length] = kc
        items[:total].view(n, 2 * length, d)[:, length:] = qc
        items[total] = 0
        # the values of the key items, then one zero row for every other item
        values = torch.cat([vc.reshape(n * length, dv), vc.new_zeros(1, dv)])
        width = 2 * self.bucket_size
        block, n_blocks, before, after, _ = band_geometry(
            total, width, 0 if causal else width, width
        )
        outs, lses = [], []
        for r in range(rounds):  # one round at a time: its buffers stay heap-sized
            with torch.no_grad():
                order = sorted_order(qb[r], kb[r])  # (n, 2L): items [keys, queries]
                # the sorted items, laid out with the band's padding (pointing at the
                # zero row): the gather writes the padded layout directly
                pad = torch.full((before * block,), total, dtype=order.dtype, device=q.device)
                tail = torch.full(
                    ((n_blocks + after) * block - total,), total, dtype=order.dtype, device=q.device
                )
                flat_order = torch.cat([pad, (order + 2 * length * offset).reshape(-1), tail])
                # where each query item went: its rank in the sorted order
                rank = torch.empty_like(order).scatter_(-1, order, positions.expand_as(order))
                q_rank = (rank[:, length:] + 2 * length * offset).reshape(-1)
                q_sorted = q_code[r].reshape(-1).index_select(0, flat_order[pad.numel() :][:total])
                # item e = (sequence e // 2L, slot e % 2L) holds a value only as a key
                slot = flat_order % (2 * length)
                value_order = torch.where(
                    slot < length, flat_order // (2 * length) * length + slot, n * length
                )
            xs = items.index_select(0, flat_order)[None]  # (1, padded, d)
            out_s, lse_s = banded_attention(
                xs[:, before * block : before * block + total],
                xs,
                values.index_select(0, value_order)[None],
                left=width,
                right=0 if causal else width,
                block=width,
                scale=1.0 / math.sqrt(d),
                q_code=q_sorted[None],
                k_code=k_code[r].index_select(0, flat_order)[None],
                with_lse=True,
                keys_padded=True,
            )
            outs.append(out_s[0].index_select(0, q_rank))  # (n * L, dv), query order
            lses.append(lse_s[0].index_select(0, q_rank))
        lse_all = torch.stack(lses)  # (R, n * L)
        total = torch.logsumexp(lse_all, dim=0)
        found = torch.isfinite(total)
        weights = torch.exp(lse_all - torch.where(found, total, torch.zeros_like(total)))
        weights = torch.where(found, weights, torch.zeros_like(weights))[..., None]
        out = outs[0] * weights[0]
        for r in range(1, rounds):
            out = out.addcmul(outs[r], weights[r])
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
    """Per hash round: hashing q and k onto sum_l f_l / 2 directions (about 2 log2(L / b)
    of them, see ``bucket_levels``) costs 4 L d dirs FLOPs; the sort of 2L items is
    O(L log L) comparisons (no FLOPs); the blocked attention over the 2L sorted items in
    chunks of 2b costs 4 (2L) span d for the score and value GEMMs, span = 4b (causal) or
    6b (bidirectional), plus the softmax (about 5 (2L) span). Working memory with a
    backward ahead (which keeps every round's activations): the sorted item vectors and
    values and their gradients (about 8 (2L, d) buffers), the score tiles, weights and
    masks (3 (2L, span)), the projections (L dirs), per round. Without one (the forward
    pass; rounds run one after another): the items (2L, d), the key values (L, dv), each
    round's output (L, dv) and the merged one; for the round in flight the items and
    values gathered in sorted order and its sorted output ((2L, d + 2 dv)), one chunk of
    tiles and its mask (``CHUNK_BYTES`` each), and about 36 L int64 indices and codes
    (bucket ids, sort orders, ranks, gathered codes)."""
    n, d = query.length, query.dim
    rounds = query.hp.get("n_hashes", 2)
    bucket = query.hp.get("bucket_size", 32)
    dirs = sum(f // 2 for f in bucket_levels(number_of_buckets(n, bucket)))
    width = 2 * bucket
    block, n_blocks, before, after, span = band_geometry(
        2 * n, width, 0 if query.causal else width, width
    )
    items = n_blocks * block
    per_round = 4.0 * n * d * dirs + 4.0 * items * span * d + 5.0 * items * span
    flops = query.rows * query.passes * rounds * per_round
    if query.backward:
        band = 3 * (8 * items * d + 3 * items * span) + 2 * n * dirs
        working = query.itemsize * query.rows * rounds * band
    else:
        padded = (before + n_blocks + after) * block
        floats = 2 * n * d + n * d + (rounds + 1) * n * d + padded * 2 * d + items * (d + 2)
        floats += rounds * n * dirs * 2  # the projections of q and k
        working = query.itemsize * query.rows * floats + 8 * query.rows * 36 * n
        working += 2 * max(CHUNK_BYTES, query.itemsize * block * span)
    return Cost(flops, compulsory_traffic(query), int(working + SLACK_BYTES))
