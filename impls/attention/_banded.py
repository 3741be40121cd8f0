"""Blocked banded softmax attention: each query attends to keys within a fixed index band.

Shared by sliding-window attention (band over positions) and LSH attention (band over the
bucket-sorted sequence). For query index p the candidate keys are the indices
p' in [p - left, p + right]; a candidate counts only if ``key_ok[p']`` (when given) and
``q_code[p] == k_code[p']`` (when given)::

    s[p, p'] = scale * <q[p], k[p']>      (excluded for non-candidates)
    out[p]   = sum_p' exp(s - lse) v[p'],  lse[p] = log sum_p' exp(s[p, p'])
    (out = 0 and lse = -inf when p has no candidate)

Form (the blocked form of sliding-window kernels): queries are cut into blocks of
``block`` rows; block b attends to the keys of its own block and of the
ceil(left / block) blocks before and ceil(right / block) blocks after it, so a
neighbour block is a plain offset into the key blocks: per neighbour one batched
(block x d) x (d x block) score GEMM, no copy of the keys. One sequence uses its keys
as they are (a neighbour past either end is a tile of excluded keys, never
multiplied); several sequences are laid out one after the other, padded by those
neighbour blocks. The (block x span) tiles, span = (ceil(left/block) + 1 +
ceil(right/block)) * block, are masked to the band (and the codes/validity) only,
turned into softmax weights in place (exp2 of base-2 scores: the fast exponential on
the CPU), and meet the values in one batched GEMM per neighbour. The query blocks go
through these passes a chunk of about ``CHUNK_BYTES`` of tiles at a time, so that each
pass reads tiles still in cache, and the masks of codes and validity are built per
chunk; without a backward ahead one chunk's buffer serves every chunk. The backward is
written out (``_BandedTiles``) on the saved tiles. Nothing of size (n, n) exists.
Memory O(n (span + d + dv)) with a backward ahead, O(n (d + dv)) without.
Shapes: q (N, n, d), k (N, n, d), v (N, n, dv), key_ok/codes (N, n) -> out (N, n, dv),
lse (N, n) or None.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["CHUNK_BYTES", "band_geometry", "banded_attention"]

_LOG2_E, _LN_2 = math.log2(math.e), math.log(2.0)

# codes of keys that match no query and of query rows past a sequence's end; callers'
# codes must avoid both
_EXCLUDED_KEY = torch.iinfo(torch.int64).min
_PADDED_QUERY = _EXCLUDED_KEY + 1

# bytes of score tiles processed at a time (about an L2 cache): see ``_chunks``
CHUNK_BYTES = 1 << 20


def band_geometry(n: int, left: int, right: int, block: int) -> tuple[int, int, int, int, int]:
    """(block, n_blocks, blocks_left, blocks_right, span) of the blocked band."""
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    blocks_left = -(-left // block)
    blocks_right = -(-right // block)
    return block, n_blocks, blocks_left, blocks_right, (blocks_left + 1 + blocks_right) * block


def _pad_rows(x: Tensor, front: int, back: int, value=0) -> Tensor:
    """x (N, n, ...) with ``front`` rows of ``value`` before and ``back`` after (dim 1);
    only the new rows are written (torch.nn.functional.pad fills the whole output)."""
    if front == 0 and back == 0:
        return x
    parts = [x.new_full((x.shape[0], front, *x.shape[2:]), value)] if front else []
    parts.append(x)
    if back:
        parts.append(x.new_full((x.shape[0], back, *x.shape[2:]), value))
    return torch.cat(parts, dim=1)


def _blocked(x: Tensor, block: int, n_blocks: int, before: int, after: int, value=0) -> Tensor:
    """(N, n, ...) -> (N * T, block, ...), T = before + n_blocks + after: each sequence
    padded with ``before`` blocks in front and filled up to T blocks with ``value``, all
    sequences one after the other, so that a block's neighbours are plain offsets."""
    n = x.shape[1]
    xp = _pad_rows(x, before * block, (n_blocks + after) * block - n, value)
    return xp.reshape(x.shape[0] * (before + n_blocks + after), block, *x.shape[2:])


def _query_blocks(x: Tensor, block: int, n_blocks: int, before: int, after: int, value=0):
    """The query-side rows of ``_blocked`` (blocks before .. N*T - after - 1); for one
    sequence these are just its own blocks, without a copy when block divides n."""
    if x.shape[0] == 1:
        xp = _pad_rows(x, 0, n_blocks * block - x.shape[1], value)
        return xp.reshape(n_blocks, block, *x.shape[2:])
    m = x.shape[0] * (before + n_blocks + after) - before - after
    return _blocked(x, block, n_blocks, before, after, value)[before : before + m]


class _BandedTiles(torch.autograd.Function):
    """Softmax attention of query blocks against their neighbour key blocks, forward and
    backward by hand (the FlashAttention recurrences on whole tiles).

    qf (m, B, d); kf, vf (K, B, d|dv): part j of query block i is key block
    i + j - ``shift`` (``shift`` = 0 when the caller padded the keys with the band's
    neighbour blocks, K = m + P - 1; a part that falls outside 0 .. K - 1 is a tile of
    excluded keys, never multiplied); band (P, B, B) bool, True where part j's key lies
    outside the band; q_codes (m, B) and k_codes (m + P - 1, B) int64 or both None: key
    row c of part j is allowed for query row r only if q_codes[i, r] == k_codes[i + j, c]
    (the mask is built per chunk, never for all m blocks at once). The P score tiles
    of a block live side by side in one (P, m, B, B) buffer (one batched GEMM per part,
    no concatenation), are masked, turned into unnormalised weights in place and
    normalised on the (B x dv) output. The query blocks are processed in chunks of
    about ``CHUNK_BYTES`` of tiles, so that the passes over a chunk's tiles run in
    cache; without a backward ahead (``keep_weights`` False) one chunk's buffer serves
    every chunk. Returns (out (m, B, dv), lse (m, B), has_key
    (m, B) bool); a row without an allowed key gets out = 0 (and no gradient) and a
    garbage lse, which the caller replaces. The backward reuses the saved unnormalised
    weights E and row sums Z: dS = E * (dO V^T - delta + dlse) / Z with
    delta = rowsum(dO * O), then dQ, dK, dV by one batched GEMM per part each."""

    @staticmethod
    def forward(ctx, qf, kf, vf, band, q_codes, k_codes, scale, shift, keep_weights):
        parts, m, width = band.shape[0], qf.shape[0], band.shape[2]
        steps = _chunks(m, parts * qf.shape[1] * width * qf.element_size())
        # with a backward ahead every chunk's weights are kept; without, one chunk's buffer
        # serves them all (no fresh pages to fault in, no (m, B, span) peak)
        rows = m if keep_weights else steps[0][1]
        tiles = qf.new_empty((parts, rows, qf.shape[1], width))
        excluded = None  # one chunk's mask of differing codes, reused
        if q_codes is not None:
            excluded = qf.new_empty((steps[0][1], qf.shape[1], width), dtype=torch.bool)
        top = qf.new_empty((m, qf.shape[1]))
        norm = torch.empty_like(top)
        out = qf.new_empty((m, qf.shape[1], vf.shape[-1]))
        ones = qf.new_ones(width)
        floor = torch.finfo(tiles.dtype).min  # finite, not -inf: a keyless row stays finite
        for a, b in steps:
            t = tiles[:, a:b] if keep_weights else tiles[:, : b - a]
            ranges = [_key_range(j, a, b, shift, kf.shape[0]) for j in range(parts)]
            for j, (lo, hi) in enumerate(ranges):  # base-2 scores: exp2 is the fast exp
                if hi > lo:
                    part = t[j, lo - a : hi - a]
                    keys = kf[lo + j - shift : hi + j - shift].transpose(1, 2)
                    torch.baddbmm(part, qf[lo:hi], keys, beta=0.0, alpha=scale * _LOG2_E, out=part)
            # excluded keys: s + floor / 2 (one pass; masked_fill is several times slower),
            # which stays finite and below every allowed score; a tile whose key block
            # lies past the sequence's ends is the floor itself
            for j, (lo, hi) in enumerate(ranges):
                if q_codes is None:
                    t[j].add_(band[j], alpha=floor / 2)
                else:  # the band, or codes that differ (built per chunk, in cache)
                    mask = excluded[: b - a]
                    torch.ne(q_codes[a:b, :, None], k_codes[a + j : b + j, None, :], out=mask)
                    t[j].add_(mask.logical_or_(band[j]), alpha=floor / 2)
                t[j, : max(lo, a) - a].fill_(floor)
                t[j, max(hi, lo) - a :].fill_(floor)
            top_c, norm_c = top[a:b], norm[a:b]
            torch.amax(t[0], dim=-1, out=top_c)
            for j in range(1, parts):
                torch.maximum(top_c, t[j].amax(dim=-1), out=top_c)
            t.sub_(top_c[..., None]).exp2_()  # unnormalised weights in place: exp(s - max s)
            flat_norm = norm_c.view(-1)  # row sums as matrix-vector products (faster)
            for j in range(parts):
                flat_norm.addmv_(t[j].view(-1, width), ones, beta=0.0 if j == 0 else 1.0)
            o, filled = out[a:b], False
            for j, (lo, hi) in enumerate(ranges):
                if hi <= lo:
                    continue
                values = vf[lo + j - shift : hi + j - shift]
                if not filled and (lo, hi) == (a, b):
                    torch.bmm(t[j], values, out=o)
                else:
                    if not filled:
                        o.zero_()
                    o[lo - a : hi - a].baddbmm_(t[j, lo - a : hi - a], values)
                filled = True
            if not filled:  # unreachable (a block's own keys exist), kept as a guard
                o.zero_()
            # normalise while the chunk is in cache; a row without an allowed key (its max
            # is an excluded score) gets 0
            o.div_(norm_c[..., None]).mul_((top_c > floor / 4)[..., None])
        has_key = top > floor / 4
        lse = (top + torch.log2(norm)) * _LN_2
        if keep_weights:
            ctx.save_for_backward(qf, kf, vf, tiles, norm, out, has_key)
        ctx.mark_non_differentiable(has_key)
        ctx.scale, ctx.shift = scale, shift
        return out, lse, has_key

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_lse, _grad_has_key):
        qf, kf, vf, weights, norm, out, has_key = ctx.saved_tensors
        scale, shift = ctx.scale, ctx.shift
        grad_out = grad_out * has_key[..., None]
        if grad_lse is not None:
            grad_lse = grad_lse * has_key
        parts, m = weights.shape[0], qf.shape[0]
        scaled = grad_out / norm[..., None]  # (m, B, dv)
        delta = (grad_out * out).sum(dim=-1)
        if grad_lse is not None:
            delta = delta - grad_lse
        offset = (delta / norm)[None, ..., None]  # (1, m, B, 1)
        grad_q = torch.zeros_like(qf)
        grad_k = torch.zeros_like(kf)
        grad_v = torch.zeros_like(vf)
        chunk_bytes = weights[:, :1].numel() * weights.element_size()
        grad_s = None
        for a, b in _chunks(m, chunk_bytes):
            w = weights[:, a:b]
            if grad_s is None or grad_s.shape[1] != b - a:  # one chunk-sized buffer, reused
                grad_s = torch.empty_like(w)
            ranges = [_key_range(j, a, b, shift, kf.shape[0]) for j in range(parts)]
            for j, (lo, hi) in enumerate(ranges):  # rows outside [lo, hi) are never read
                if hi > lo:
                    values = vf[lo + j - shift : hi + j - shift].transpose(1, 2)
                    torch.bmm(scaled[lo:hi], values, out=grad_s[j, lo - a : hi - a])
            grad_s.sub_(offset[:, a:b]).mul_(w)
            for j, (lo, hi) in enumerate(ranges):
                if hi <= lo:
                    continue
                g, keys = grad_s[j, lo - a : hi - a], slice(lo + j - shift, hi + j - shift)
                grad_q[lo:hi].baddbmm_(g, kf[keys])
                grad_k[keys].baddbmm_(g.transpose(1, 2), qf[lo:hi], alpha=scale)
                grad_v[keys].baddbmm_(w[j, lo - a : hi - a].transpose(1, 2), scaled[lo:hi])
        return grad_q.mul_(scale), grad_k, grad_v, None, None, None, None, None, None


def _key_range(part: int, a: int, b: int, shift: int, n_keys: int) -> tuple[int, int]:
    """Query blocks [lo, hi) of [a, b) whose key block i + part - shift exists."""
    return max(a, shift - part), min(b, n_keys + shift - part)


def _chunks(m: int, block_bytes: int) -> list[tuple[int, int]]:
    """Ranges [a, b) of query blocks whose tiles (``block_bytes`` each) fill about
    ``CHUNK_BYTES``: the passes over a chunk's tiles then hit the cache, not memory."""
    step = max(1, CHUNK_BYTES // max(block_bytes, 1))
    return [(a, min(a + step, m)) for a in range(0, m, step)]


def banded_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    left: int,
    right: int,
    block: int,
    scale: float,
    key_ok: Tensor | None = None,
    q_code: Tensor | None = None,
    k_code: Tensor | None = None,
    with_lse: bool = False,
    keys_padded: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Return (out, lse or None) of banded attention (see the module docstring).

    ``keys_padded``: one sequence (N = 1) whose k, v and k_code the caller has already
    laid out as ``band_geometry`` pads them: ``before * block`` rows in front, filled up
    to (before + n_blocks + after) * block rows, with padding codes that match no query
    code (key_ok must then be None); saves the copies of k and v."""
    if (q_code is None) != (k_code is None):
        raise ValueError("banded_attention: give both q_code and k_code, or neither")
    n_items, n, _ = q.shape
    block, n_blocks, before, after, span = band_geometry(n, left, right, block)
    total = before + n_blocks + after  # blocks per sequence in the padded layout
    parts = before + 1 + after
    # Query blocks b = before .. N*T - after - 1 of the flat layout (every real block, and
    # the padding blocks between sequences, whose rows are dropped at the end); part j of
    # a query block's keys is the block at offset j - before (padded rows [j, j + m)).
    qf = _query_blocks(q, block, n_blocks, before, after)
    if keys_padded:
        if n_items != 1 or key_ok is not None or k_code is None or q_code is None:
            raise ValueError("banded_attention: keys_padded needs N = 1, codes, no key_ok")
        kf = k.reshape(total, block, k.shape[-1])
        vf = v.reshape(total, block, v.shape[-1])
        shift = 0
    elif n_items == 1:  # the key blocks as they are (no padded copy): parts past the ends
        kf = _query_blocks(k, block, n_blocks, before, after)  # are excluded tiles
        vf = _query_blocks(v, block, n_blocks, before, after)
        shift = before
    else:  # sequences side by side, kept apart by padding blocks (masked below)
        kf = _blocked(k, block, n_blocks, before, after)
        vf = _blocked(v, block, n_blocks, before, after)
        shift = 0

    r = torch.arange(block, device=q.device)[:, None]
    c = torch.arange(block * parts, device=q.device)[None, :]
    rel = c - before * block - r  # key minus query, (B, span): part j is columns jB..(j+1)B
    band = ((rel < -left) | (rel > right)).reshape(block, parts, block).transpose(0, 1)
    # key validity and codes as codes compared per chunk in the kernel, indexed as in the
    # padded layout (part j of query block i: row i + j). One sequence that fills its
    # blocks, with every key valid and no codes, needs none: the band says it all.
    q_codes = k_codes = None
    if keys_padded:
        q_codes = _query_blocks(q_code, block, n_blocks, before, after, value=_PADDED_QUERY)
        k_codes = k_code.reshape(total, block)
    elif q_code is not None or key_ok is not None or n_items > 1 or n % block:
        qc = q_code if q_code is not None else q.new_zeros(q.shape[:2], dtype=torch.long)
        kc = k_code if k_code is not None else q.new_zeros(q.shape[:2], dtype=torch.long)
        if key_ok is not None:
            kc = kc.masked_fill(~key_ok, _EXCLUDED_KEY)
        q_codes = _query_blocks(qc, block, n_blocks, before, after, value=_PADDED_QUERY)
        k_codes = _blocked(kc, block, n_blocks, before, after, value=_EXCLUDED_KEY)
    keep_weights = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    out, lse, has_key = _BandedTiles.apply(
        qf, kf, vf, band.contiguous(), q_codes, k_codes, scale, shift, keep_weights
    )
    if with_lse:  # rows without a candidate: lse = -inf (their out is already 0)
        lse = torch.where(has_key, lse, -torch.inf)

    def unblock(x: Tensor) -> Tensor:  # (m, block, ...) -> (N, n, ...)
        if n_items > 1:  # the last sequence's trailing padding blocks were not computed
            x = torch.cat([x, x.new_zeros(before + after, *x.shape[1:])])
        x = x.reshape(n_items, -1, block, *x.shape[2:])[:, :n_blocks]
        return x.reshape(n_items, n_blocks * block, *x.shape[3:])[:, :n]

    return unblock(out), (unblock(lse) if with_lse else None)
