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
ceil(left / block) blocks before and ceil(right / block) blocks after it. Every
sequence is laid out padded by those neighbour blocks, one after the other, so a
neighbour block is a plain offset into one contiguous array: per neighbour one batched
(block x d) x (d x block) score GEMM over all blocks at once, no copy of the keys. The
(block x span) tiles, span = (ceil(left/block) + 1 + ceil(right/block)) * block, are
masked to the band (and the codes/validity) only, turned into softmax weights in
place (exp2 of base-2 scores: the fast exponential on the CPU), and meet the values in
one batched GEMM per neighbour; the backward is written out (``_BandedTiles``) on the
saved tiles. Nothing of size (n, n) exists. Memory
O(n (span + d + dv)). Shapes: q (N, n, d), k (N, n, d), v (N, n, dv), key_ok/codes
(N, n) -> out (N, n, dv), lse (N, n) or None.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["band_geometry", "banded_attention"]

_LOG2_E, _LN_2 = math.log2(math.e), math.log(2.0)


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

    qf (m, B, d); kf, vf (m + P - 1, B, d|dv): part j of query block i is key block i + j;
    blocked (P, m, B, B) bool, True where a key is not allowed. The P score tiles of a
    block live side by side in one (P, m, B, B) buffer (one batched GEMM per part, no
    concatenation), are masked, turned into unnormalised weights in place and
    normalised on the (B x dv) output. Returns (out (m, B, dv), lse (m, B), has_key
    (m, B) bool); a row without an allowed key gets out = 0 (and no gradient) and a
    garbage lse, which the caller replaces. The backward reuses the saved unnormalised
    weights E and row sums Z: dS = E * (dO V^T - delta + dlse) / Z with
    delta = rowsum(dO * O), then dQ, dK, dV by one batched GEMM per part each."""

    @staticmethod
    def forward(ctx, qf, kf, vf, blocked, scale):
        parts, m = blocked.shape[0], qf.shape[0]
        tiles = qf.new_empty(blocked.shape)
        for j in range(parts):  # scores in base-2 units: exp2 is the fast exponential
            torch.baddbmm(
                tiles[j],
                qf,
                kf[j : j + m].transpose(1, 2),
                beta=0.0,
                alpha=scale * _LOG2_E,
                out=tiles[j],
            )
        # a finite floor, not -inf: a row without candidates stays finite
        floor = torch.finfo(tiles.dtype).min
        tiles.masked_fill_(blocked, floor)
        top = tiles.amax(dim=(0, 3), keepdim=True)  # (1, m, B, 1)
        weights = tiles.sub_(top).exp2_()  # unnormalised, in place: exp(s - max s)
        norm = weights.sum(dim=(0, 3), keepdim=True)
        out = torch.bmm(weights[0], vf[:m])
        for j in range(1, parts):
            out.baddbmm_(weights[j], vf[j : j + m])
        has_key = top[0, ..., 0] > floor  # else the floor won the max
        out.div_(norm[0]).mul_(has_key[..., None])
        lse = ((top + torch.log2(norm)) * _LN_2)[0, ..., 0]
        ctx.save_for_backward(qf, kf, vf, weights, norm, out, has_key)
        ctx.mark_non_differentiable(has_key)
        ctx.scale = scale
        return out, lse, has_key

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_lse, _grad_has_key):
        qf, kf, vf, weights, norm, out, has_key = ctx.saved_tensors
        scale = ctx.scale
        grad_out = grad_out * has_key[..., None]
        if grad_lse is not None:
            grad_lse = grad_lse * has_key
        parts, m = weights.shape[0], qf.shape[0]
        scaled = grad_out / norm[0]  # (m, B, dv)
        delta = (grad_out * out).sum(dim=-1)
        if grad_lse is not None:
            delta = delta - grad_lse
        shift = (delta[..., None] / norm[0])[None]  # (1, m, B, 1)
        grad_s = torch.empty_like(weights)
        for j in range(parts):
            torch.bmm(scaled, vf[j : j + m].transpose(1, 2), out=grad_s[j])
        grad_s.sub_(shift).mul_(weights)
        grad_q = torch.bmm(grad_s[0], kf[:m]).mul_(scale)
        grad_k = torch.zeros_like(kf)
        grad_v = torch.zeros_like(vf)
        for j in range(parts):
            if j:
                grad_q.baddbmm_(grad_s[j], kf[j : j + m], alpha=scale)
            grad_k[j : j + m].baddbmm_(grad_s[j].transpose(1, 2), qf, alpha=scale)
            grad_v[j : j + m].baddbmm_(weights[j].transpose(1, 2), scaled)
        return grad_q, grad_k, grad_v, None, None


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
    n_items, n, _ = q.shape
    block, n_blocks, before, after, span = band_geometry(n, left, right, block)
    total = before + n_blocks + after  # blocks per sequence in the padded layout
    parts = before + 1 + after
    # Query blocks b = before .. N*T - after - 1 of the flat layout (every real block, and
    # the padding blocks between sequences, whose rows are dropped at the end); part j of
    # a query block's keys is the block at offset j - before, i.e. rows [j, j + m).
    m = n_items * total - before - after if n_items > 1 else n_blocks
    qf = _query_blocks(q, block, n_blocks, before, after)
    if keys_padded:
        if n_items != 1 or key_ok is not None or k_code is None or q_code is None:
            raise ValueError("banded_attention: keys_padded needs N = 1, codes, no key_ok")
        kf = k.reshape(total, block, k.shape[-1])
        vf = v.reshape(total, block, v.shape[-1])
    else:
        kf = _blocked(k, block, n_blocks, before, after)
        vf = _blocked(v, block, n_blocks, before, after)

    r = torch.arange(block, device=q.device)[:, None]
    c = torch.arange(block, device=q.device)[None, :]
    rel = torch.stack([(j - before) * block + c - r for j in range(parts)])  # key - query
    blocked = ((rel < -left) | (rel > right))[:, None]  # (P, 1, B, B): outside the band
    if not keys_padded:
        ok = torch.ones(n_items, n, dtype=torch.bool, device=q.device)
        okf = _blocked(ok if key_ok is None else key_ok, block, n_blocks, before, after, False)
        blocked = blocked | ~torch.stack([okf[j : j + m] for j in range(parts)])[:, :, None, :]
    if q_code is not None and k_code is not None:
        qc = _query_blocks(q_code, block, n_blocks, before, after, value=-1)
        if keys_padded:
            kcf = k_code.reshape(total, block)
        else:
            kcf = _blocked(k_code, block, n_blocks, before, after, value=-2)
        kc = torch.stack([kcf[j : j + m] for j in range(parts)])  # (P, m, B)
        blocked = blocked | (qc[None, :, :, None] != kc[:, :, None, :])
    out, lse, has_key = _BandedTiles.apply(qf, kf, vf, blocked, scale)
    if with_lse:  # rows without a candidate: lse = -inf (their out is already 0)
        lse = torch.where(has_key, lse, -torch.inf)

    def unblock(x: Tensor) -> Tensor:  # (m, block, ...) -> (N, n, ...)
        if n_items > 1:  # the last sequence's trailing padding blocks were not computed
            x = torch.cat([x, x.new_zeros(before + after, *x.shape[1:])])
        x = x.reshape(n_items, -1, block, *x.shape[2:])[:, :n_blocks]
        return x.reshape(n_items, n_blocks * block, *x.shape[3:])[:, :n]

    return unblock(out), (unblock(lse) if with_lse else None)
