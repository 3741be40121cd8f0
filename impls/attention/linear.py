"""Linear attention (Katharopoulos, Vyas, Pappas, Fleuret 2020, "Transformers are RNNs").

Softmax similarity is replaced by a kernel phi(q)^T phi(k) with phi(x) = elu(x) + 1 > 0::

    out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i),
    S_i = sum_{j in vis(i)} phi(k_j) v_j^T   (d x dv),   z_i = sum_{j in vis(i)} phi(k_j),

vis(i) = all unpadded keys (bidirectional) or unpadded j <= i (causal). There is no
softmax, hence no scale and no max subtraction; phi > 0 keeps z > 0 whenever a key is
visible, and rows with no visible key return zeros.

Form: the chunk-parallel scan (the form of flash-linear-attention, Yang et al. 2024,
"Gated Linear Attention Transformers with Hardware-Efficient Training"). Positions are
cut into n_c = ceil(L / C) chunks of C; with Q_c, K_c, V_c the chunk's rows::

    U_c   = K_c^T V_c,  u_c = K_c^T 1      all chunks in one batched GEMM (d x dv each)
    S_c   = S_{c-1} + U_c                  prefix over chunks: n_c - 1 in-place adds
    num_c = Q_c S_{c-1} + tril(Q_c K_c^T) V_c      one batched GEMM each, all chunks
    den_c = Q_c s_{c-1} + tril(Q_c K_c^T) 1,       out_c = num_c / den_c

Why it is the best known CPU form: every O(L d^2) or O(L C d) FLOP lands in a batched
GEMM over all chunks at once (C x d x dv and C x C x d blocks; no per-position loop, no
(L, d, dv) prefix tensor); the only loop is the prefix over chunks, one (d, dv) add per
chunk in place in the GEMM's output. The normaliser is kept out of the GEMMs (a ones
column would make them dv + 1 wide, which BLAS runs markedly slower than dv = 128). The
backward is written out (``_ChunkParallel``): 9 batched GEMMs against the forward's 4
and the reversed prefix, in place; it forms the chunk states again (the ninth GEMM)
instead of keeping them, one row and ``SEGMENT_CHUNKS`` chunks at a time from a copy of
each segment's first state once a row has more chunks, so the (L/C, d, dv) states exist
in the forward only. The work is 4 L d dv + 2 L C (d + dv) FLOPs: the
chunk size trades the intra-chunk products (which grow with C) against GEMM efficiency
(which falls for small C); C = 64 measured best at d = 128 on one CPU thread.
Memory O(L d + L C + (L/C) d dv): inputs, features, the (C x C) intra-chunk scores and
the n_c chunk states in the forward (no (L, L) and no (L, d, dv) tensor). Without a backward ahead
(inference), long inputs run the same scan one row and ``SEGMENT_CHUNKS`` chunks at a
time, the running state carried between segments (``_segmented_scan``): the chunk
states, scores and (given ``feature_map``) the features then exist for one segment
only. Bidirectional attention is the closed form
phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1) (two GEMMs and two GEMVs), the key features
reduced to the state before the query features are formed, and a written-out backward
that needs only the features (``impls.attention._closed_form``): without a backward
ahead, the query features and the output are the only (L, d)-sized tensors alive at the
peak (16 MiB at L = 16,384, d = 128, against 48 MiB for the same ops one after the
other).

``kernel_attention`` also serves Performer, whose causal stabiliser weighs key j for
query i by 2^(k_factor_j - k_factor_i) <= 1 (k_factor non-decreasing, in base-2 log
units: exp2 is the fast exponential on the CPU). Then each chunk's state is kept
relative to the chunk's own level lam_c = k_factor at its last position: keys enter it
with 2^(k_factor_j - lam_c) <= 1, the prefix becomes the rescaled scan
S_c = 2^(lam_{c-1} - lam_c) S_{c-1} + U_c (one (d, dv) multiply-add per chunk, factor
<= 1), and query i reads S_{c-1} with 2^(lam_{c-1} - k_factor_i) <= 1: no factor above 1
anywhere, so no overflow at any L; the intra-chunk weights use the exact per-position
factors, so no future token changes a past output. A fixed decay gamma^(i - j)
(``gamma=``, RetNet's retention; ``decay_linear``) uses the same scan with factors that
are equal for every chunk, formed once in float64 (``_fixed_decay_factors``).

It equals ``reference.exact_attention`` with scale 0 and the additive bias
log(phi(q_i)^T phi(k_j)). Shapes: q/k (batch, heads, Lq|Lk, d), v (batch, heads, Lk, dv)
-> (batch, heads, Lq, dv). Half inputs are computed in float32 and cast back.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from impls.attention._closed_form import ELU_FEATURES, IDENTITY_FEATURES, closed_form_attention
from impls.attention._validation import check_attention_inputs, compute_dtype
from impls.costs import SLACK_BYTES, Cost, CostQuery, compulsory_traffic

__all__ = [
    "LinearAttention",
    "elu_feature_map",
    "elu_attention",
    "kernel_attention",
    "kernel_attention_reference",
    "linear_attention",
]


def elu_feature_map(x: Tensor) -> Tensor:
    """phi(x) = elu(x) + 1, elementwise, strictly positive (one new tensor)."""
    return F.elu(x).add_(1.0)


def _divide(num: Tensor, den: Tensor) -> Tensor:
    """num / den[..., None], and zeros where den == 0 (no visible key), gradient-safe."""
    ok = den > 0
    out = num / torch.where(ok, den, torch.ones_like(den))[..., None]
    return torch.where(ok[..., None], out, torch.zeros_like(out))


def _chunked(x: Tensor, chunk: int, n_chunks: int) -> Tensor:
    """(N, H, L, e) -> (N, H, n_chunks, chunk, e), zero rows appended up to n_chunks*chunk."""
    tail = n_chunks * chunk - x.shape[2]
    if tail:
        x = F.pad(x, (0, 0, 0, tail))
    return x.reshape(x.shape[0], x.shape[1], n_chunks, chunk, x.shape[-1])


def _inclusive_scan_(u: Tensor, shrink: Tensor | None, zero_last: bool = True) -> Tensor:
    """In place along dim 1: u_t <- g_t u_{t-1} + u_t (g_t = shrink[:, t], 1 when None);
    then (``zero_last``) the last state of each row, which no chunk reads, is zeroed.
    u (R, T, a, b)."""
    if shrink is None and u.shape[-1] == 1:  # the normalisers: one cumulative sum
        u.cumsum_(dim=1)  # (for the (d, dv) states the loop is several times faster)
    else:
        for t in range(1, u.shape[1]):
            if shrink is None:
                u[:, t].add_(u[:, t - 1])
            else:
                u[:, t].addcmul_(u[:, t - 1], shrink[:, t, None, None])
    if zero_last:
        u[:, -1].zero_()
    return u


def _inclusive_scan_backward_(grad: Tensor, shrink: Tensor | None) -> Tensor:
    """In place: the gradient w.r.t. u of ``_inclusive_scan_`` from the gradient of its
    output, G_t <- G_t + g_{t+1} G_{t+1} from the end (the zeroed last state has none)."""
    grad[:, -1].zero_()
    for t in range(grad.shape[1] - 2, -1, -1):
        if shrink is None:
            grad[:, t].add_(grad[:, t + 1])
        else:
            grad[:, t].addcmul_(grad[:, t + 1], shrink[:, t + 1, None, None])
    return grad


def _finish_(num: Tensor, den: Tensor, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Add the intra-chunk part and divide, in place: num (F, C, dv) += A V, den (F, C, 1)
    += A 1, out = num / den, 0 where den <= 0 (no visible key, or every weight
    underflowed). Returns (out (= num), den (F, C) with 1 where empty, empty (F, C))."""
    num.baddbmm_(a, v)
    den = den[..., 0].add_(a.sum(dim=-1))
    empty = den <= 0
    den.masked_fill_(empty, 1.0)
    return num.div_(den[..., None]).masked_fill_(empty[..., None], 0.0), den, empty


SEGMENT_CHUNKS = 64  # chunks per segment: the forward without a backward ahead, the backward


class _ChunkParallel(torch.autograd.Function):
    """The causal chunk-parallel scan on chunked features, forward and backward by hand.

    fq, fk (R, T, C, m), vc (R, T, C, dv); optional, without gradient: ``weights``
    (R, T, C, C) multiplying the intra-chunk scores (None: the causal 0/1 triangle),
    ``decay`` (R, T, C) scaling keys into their chunk state, ``shrink`` (R, T) rescaling
    the running state from chunk to chunk, ``carry`` (R, T, C) scaling each query's read
    of the state. ``weights``, ``decay`` and ``carry`` may also be given without their
    (R, T) dims, (C, C) and (C,), when every chunk shares them: they broadcast, and no
    (R, T, C, C) copy is made. Returns out = num / den (R, T, C, dv), zeros where den = 0::

        A_c = (Q_c K_c^T) * W_c,   U_c = (decay_c K_c)^T V_c,   u_c = (decay_c K_c)^T 1,
        S_c = shrink_c S_{c-1} + U_c,   s_c = shrink_c s_{c-1} + u_c   (in place),
        num_c = A_c V_c + carry_c (Q_c S_{c-1}),   den_c = A_c 1 + carry_c (Q_c s_{c-1})

    (nothing from the state for c = 0). All chunks of all rows are one flat batch: chunk
    f reads state f - 1, and the state of each row's last chunk (read by nobody in its
    row) is zeroed, so the first chunk of the next row reads zeros. The normaliser is
    kept out of the GEMMs (a ones column would make them dv + 1 wide, which BLAS runs
    markedly slower than dv = 128). The backward uses the same batched GEMMs (9 of them
    against the forward's 4) and the reversed scans, in place; autograd's generic
    backward of the equivalent ops spends more time on slicing, concatenation and flips
    than on the GEMMs. The states S are not saved: the backward forms them again
    (``_state_gradients``), all at once in one buffer that their gradient then
    overwrites, or, for rows of more than ``SEGMENT_CHUNKS`` chunks, one segment at a
    time from the state before it (saved: (R, n_seg - 1, m, dv)). At L = 65,536, d = 128,
    one head the forward+backward peak of linear attention fell from 386 to 263 MiB with
    this (Performer, m = 256, with its written-out feature backward: 692 to 449 MiB)."""

    @staticmethod
    def forward(ctx, fq, fk, vc, weights, decay, shrink, carry):
        rows, n_chunks, chunk, m = fq.shape
        dv = vc.shape[-1]
        flat = rows * n_chunks
        q3, k3, v3 = (
            fq.reshape(flat, chunk, m),
            fk.reshape(flat, chunk, m),
            vc.reshape(flat, chunk, dv),
        )
        a = torch.bmm(q3, k3.transpose(1, 2))
        if weights is None:
            a.tril_()
        else:
            a.mul_(weights.reshape(-1, chunk, chunk))
        dec = None if decay is None else decay.reshape(-1, chunk, 1)
        if decay is None:
            norms = k3.sum(dim=1)  # (F, m)
        else:  # decay_c^T K_c: a GEMV per chunk, no (C, m) copy of the keys
            norms = torch.bmm(decay.reshape(-1, 1, chunk).expand(flat, 1, chunk), k3)[:, 0]
        _inclusive_scan_(norms.view(rows, n_chunks, m, 1), shrink)
        num = torch.empty(flat, chunk, dv, dtype=fq.dtype, device=fq.device)
        den = torch.empty(flat, chunk, 1, dtype=fq.dtype, device=fq.device)
        den[0].zero_()
        if flat > 1:
            torch.bmm(q3[1:], norms[:-1, :, None], out=den[1:])
        # the states S are not saved: the backward forms them again (``_state_gradients``)
        seg = SEGMENT_CHUNKS
        checkpoints = None
        if n_chunks <= seg:  # all states at once
            states = _chunk_states(k3, v3, dec, shrink, rows)
            num[0].zero_()
            if flat > 1:
                torch.bmm(q3[1:], states[:-1], out=num[1:])
            del states
        else:  # one row and segment at a time; kept: S before each segment but the first
            n_seg = -(-n_chunks // seg)
            checkpoints = q3.new_empty(rows, n_seg - 1, m, dv)
            buf = q3.new_empty(seg, m, dv)
            for r in range(rows):
                for j in range(n_seg):
                    t0, t1 = j * seg, min((j + 1) * seg, n_chunks)
                    f0, f1 = r * n_chunks + t0, r * n_chunks + t1
                    prev = None if j == 0 else checkpoints[r, j - 1]
                    reads = _segment_reads(buf, k3, v3, dec, shrink, r, t0, t1, f0, prev)
                    torch.bmm(q3[f0:f1], reads, out=num[f0:f1])
                    if j < n_seg - 1:  # S_{t1 - 1} = g_{t1 - 1} S_{t1 - 2} + U_{t1 - 1}
                        v_last = v3[f1 - 1] if dec is None else v3[f1 - 1] * _rows(dec, f1 - 1)
                        after = torch.mm(k3[f1 - 1].T, v_last, out=checkpoints[r, j])
                        factor = None if shrink is None else shrink[r, t1 - 1]
                        after.add_(reads[-1] if factor is None else reads[-1] * factor)
        if carry is not None:
            num.mul_(carry.reshape(-1, chunk, 1))
            den.mul_(carry.reshape(-1, chunk, 1))
        out, den, empty = _finish_(num, den, a, v3)
        ctx.save_for_backward(
            q3, k3, v3, a, norms, den, out, empty, checkpoints, weights, decay, shrink, carry
        )
        ctx.shape = (rows, n_chunks, chunk, m, dv, seg)
        return out.view(rows, n_chunks, chunk, dv)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        q3, k3, v3, a, norms, den, out, empty, checkpoints = ctx.saved_tensors[:9]
        weights, decay, shrink, carry = ctx.saved_tensors[9:]
        rows, n_chunks, chunk, m, dv, seg = ctx.shape
        flat = rows * n_chunks
        # out = num / den: d num = g / den, d den = -sum(g * out) / den (0 where empty,
        # since out is 0 there and its rows get no gradient)
        gn = grad.reshape(flat, chunk, dv) / den[..., None]
        gn.masked_fill_(empty[..., None], 0.0)
        gd = -(gn * out).sum(dim=-1)
        gnc, gdc = gn, gd
        if carry is not None:
            gnc = gn * carry.reshape(-1, chunk, 1)
            gdc = gd * carry.reshape(-1, chunk)
        da = torch.bmm(gn, v3.transpose(1, 2)).add_(gd[..., None])
        if weights is None:
            da.tril_()
        else:
            da.mul_(weights.reshape(-1, chunk, chunk))
        dq = torch.bmm(da, k3)
        grad_norms = torch.zeros(flat, m, 1, dtype=q3.dtype, device=q3.device)
        if flat > 1:
            dq[1:].baddbmm_(gdc[1:, :, None], norms[:-1, None, :])
            torch.bmm(q3[1:].transpose(1, 2), gdc[1:, :, None], out=grad_norms[:-1])
        dz = _inclusive_scan_backward_(grad_norms.view(rows, n_chunks, m, 1), shrink)
        dz = dz.view(flat, 1, m)
        dvc = torch.bmm(a.transpose(1, 2), gn)
        dk = torch.empty_like(k3)
        dec = None if decay is None else decay.reshape(-1, chunk, 1)
        states = _state_gradients(q3, k3, v3, gnc, dec, shrink, checkpoints, rows, seg, dq)
        for f0, f1, du in states:  # du: dLoss/dU of chunks f0..f1-1, (f1 - f0, m, dv)
            if dec is None:
                dvc[f0:f1].baddbmm_(k3[f0:f1], du)
            else:  # (decay K) du = decay (K du): no K copy
                dvc[f0:f1].add_(torch.bmm(k3[f0:f1], du).mul_(_rows(dec, f0, f1)))
            torch.bmm(v3[f0:f1], du.transpose(1, 2), out=dk[f0:f1])
        dk.add_(dz)
        if dec is not None:
            dk.mul_(dec)
        dk.baddbmm_(da.transpose(1, 2), q3)
        shape = (rows, n_chunks, chunk)
        return dq.view(*shape, m), dk.view(*shape, m), dvc.view(*shape, dv), None, None, None, None


def _state_gradients(q3, k3, v3, gnc, dec, shrink, checkpoints, rows, seg, dq):
    """The chunk states' part of ``_ChunkParallel``'s backward: adds gnc_c S_{c-1}^T to
    dq (in place) and yields (f0, f1, du), du = dLoss/dU_c for flat chunks f0..f1-1::

        G_c = Q_{c+1}^T gnc_{c+1}  (0 for a row's last chunk),   dU_c = G_c + g_{c+1} dU_{c+1}

    Without ``checkpoints`` (a row of at most ``seg`` chunks): every state at once, in
    one (F, m, dv) buffer, read by dq and then overwritten by its gradient; one yield.
    With them ((R, n_seg - 1, m, dv), the state before each segment but a row's first):
    one row and one segment at a time from the last, each segment's states formed again
    from its checkpoint in a (seg, m, dv) buffer, dU carried to the segment before; the
    buffer is yielded, so each du must be used before the next is asked for."""
    flat, chunk, m = q3.shape
    n_chunks = flat // rows
    if checkpoints is None:
        states = _chunk_states(k3, v3, dec, shrink, rows)
        if flat > 1:
            dq[1:].baddbmm_(gnc[1:], states[:-1].transpose(1, 2))
            # the last state of each row is zero (no chunk reads it), and stays zero
            torch.bmm(q3[1:].transpose(1, 2), gnc[1:], out=states[:-1])
        du = _inclusive_scan_backward_(states.view(rows, n_chunks, m, -1), shrink)
        yield 0, flat, du.view(flat, m, -1)
        return
    buf = q3.new_empty(seg, m, v3.shape[-1])

    def grow(r: int, t: int):  # g_t of row r: the factor S_{t-1} enters S_t with
        return None if shrink is None else shrink[r, t]

    for r in range(rows):
        later = None  # dU of the chunk after the segment
        for j in reversed(range(checkpoints.shape[1] + 1)):
            t0, t1 = j * seg, min((j + 1) * seg, n_chunks)
            g, f0, f1 = t1 - t0, r * n_chunks + t0, r * n_chunks + t1
            prev = None if j == 0 else checkpoints[r, j - 1]
            reads = _segment_reads(buf, k3, v3, dec, shrink, r, t0, t1, f0, prev)
            # (a row's first chunk reads the zeroed reads[0])
            dq[f0:f1].baddbmm_(gnc[f0:f1], reads.transpose(1, 2))
            du = reads  # now overwritten by dU
            n = min(t1, n_chunks - 1) - t0  # chunks whose state the next chunk reads
            if n > 0:
                torch.bmm(
                    q3[f0 + 1 : f0 + 1 + n].transpose(1, 2), gnc[f0 + 1 : f0 + 1 + n], out=du[:n]
                )
            du[n:].zero_()
            if later is not None:
                factor = grow(r, t1)
                du[-1].add_(later if factor is None else later * factor)
            for i in range(g - 2, -1, -1):
                factor = grow(r, t0 + i + 1)
                if factor is None:
                    du[i].add_(du[i + 1])
                else:
                    du[i].addcmul_(du[i + 1], factor)
            later = du[0].clone()
            yield f0, f1, du


def _rows(dec: Tensor, f0: int, f1: int | None = None) -> Tensor:
    """The decay factors (F or 1, C, 1) of flat chunk f0 (or chunks f0..f1-1)."""
    if dec.shape[0] == 1:
        return dec[0] if f1 is None else dec
    return dec[f0] if f1 is None else dec[f0:f1]


def _segment_reads(buf, k3, v3, dec, shrink, r, t0, t1, f0, prev) -> Tensor:
    """buf[:g] <- the states chunks t0..t1-1 (g = t1 - t0) of row r read: reads[i] =
    S_{t0 + i - 1}, formed from ``prev`` = S_{t0 - 1} (None at a row's start: zeros) as
    reads[i] = g_{t0 + i - 1} reads[i - 1] + U_{t0 + i - 1}, the U in one batched GEMM.
    k3 (F, C, m), v3 (F, C, dv), buf (>= g, m, dv); flat chunk f0 is chunk t0 of row r."""
    g = t1 - t0
    reads = buf[:g]
    if prev is None:
        reads[0].zero_()
    else:
        reads[0].copy_(prev)
    if g > 1:
        k, v = k3[f0 : f0 + g - 1], v3[f0 : f0 + g - 1]
        if dec is not None:
            v = v * _rows(dec, f0, f0 + g - 1)
        torch.bmm(k.transpose(1, 2), v, out=reads[1:])
        for i in range(1 if prev is not None else 2, g):
            factor = None if shrink is None else shrink[r, t0 + i - 1]
            if factor is None:
                reads[i].add_(reads[i - 1])
            else:
                reads[i].addcmul_(reads[i - 1], factor)
    return reads


def _chunk_states(k3: Tensor, v3: Tensor, dec, shrink, rows: int) -> Tensor:
    """The running chunk states of ``_ChunkParallel``: U_c = (decay_c K_c)^T V_c, one
    batched GEMM, then S_c = shrink_c S_{c-1} + U_c in place, each row's last state
    zeroed. k3 (F, C, m), v3 (F, C, dv), ``dec`` None or (F or 1, C, 1) -> (F, m, dv). The
    decay scales the values, not the keys (the same product; the (C, dv) copy is the
    smaller one when dv <= m)."""
    flat, chunk, m = k3.shape
    vd = v3 if dec is None else v3 * dec
    states = torch.bmm(k3.transpose(1, 2), vd)
    return _inclusive_scan_(states.view(rows, flat // rows, m, v3.shape[-1]), shrink).view(
        flat, m, -1
    )


def runs_segmented(n_chunks: int, *tensors: Tensor) -> bool:
    """Whether a causal scan over rows of ``n_chunks`` chunks runs segmented: no backward
    ahead (grad mode off, or no input requiring grad) and more than one segment."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return not needs_grad and n_chunks > SEGMENT_CHUNKS


def _segmented_scan(
    fq, fk, vc, weights, decay, shrink, carry, feature_map=None, keep=None
) -> Tensor:
    """``_ChunkParallel``'s forward when no backward follows, one row and one segment of
    ``SEGMENT_CHUNKS`` chunks at a time (``scan_segments``). Same arguments and result as
    ``_ChunkParallel.apply``; with ``feature_map``, fq and fk are the raw chunked q and k
    and each segment's features are formed here (keys where ``keep`` (R, T, C) is False
    zeroed), so no (L, m) feature buffer exists either."""
    rows, n_chunks, chunk, m = fq.shape

    def part(factor: Tensor | None, r: int, t0: int, t1: int, shared_dims: int):
        if factor is None or factor.dim() == shared_dims:  # shared by every chunk
            return factor
        return factor[r, t0:t1]

    def inputs(r: int, t0: int, t1: int):
        q, k, v = fq[r, t0:t1], fk[r, t0:t1], vc[r, t0:t1]
        if feature_map is not None:
            q, k = feature_map(q), feature_map(k)
            if keep is not None:
                k = k.mul_(keep[r, t0:t1, :, None])
        g_seg = None if shrink is None else shrink[r, t0:t1]
        return (
            q,
            k,
            v,
            part(weights, r, t0, t1, 2),
            part(decay, r, t0, t1, 1),
            g_seg,
            part(carry, r, t0, t1, 1),
        )

    return scan_segments(inputs, rows, n_chunks, chunk, m, vc.shape[-1], vc)


def scan_segments(inputs, rows: int, n_chunks: int, chunk: int, m: int, dv: int, like: Tensor):
    """The causal chunk-parallel scan without a backward, one row and one segment of
    ``SEGMENT_CHUNKS`` chunks at a time, the running state (S, s) carried from segment to
    segment: the equations of ``_ChunkParallel``, but the chunk states (T, m, dv) and the
    intra-chunk scores (T, C, C) exist for one segment only, in buffers reused by every
    segment (at L = 65,536 and m = dv = 128 the full states are 64 MiB of fresh pages,
    whose faults alone cost about as much as the GEMM that fills them).

    ``inputs(r, t0, t1)`` gives segment [t0, t1) of row r: (q, k (g, C, m), v (g, C, dv),
    weights (g, C, C) | (C, C) | None, decay (g, C) | (C,) | None, shrink (g,) | None,
    carry (g, C) | (C,) | None), with g = t1 - t0 and the meanings of ``_ChunkParallel``;
    shrink[0] carries the state of the segment before into chunk t0. It is called row
    by row and, within a row, segment after segment, so it may carry a running quantity
    of its own. Returns (R, T, C, dv), like ``like``."""
    seg = min(SEGMENT_CHUNKS, n_chunks)
    out = like.new_empty(rows, n_chunks, chunk, dv)
    a_buf, st_buf = like.new_empty(seg, chunk, chunk), like.new_empty(seg, m, dv)
    z_buf, den_buf = like.new_empty(seg, m, 1), like.new_empty(seg, chunk, 1)
    for r in range(rows):
        state, norm = like.new_zeros(m, dv), like.new_zeros(m, 1)
        for t0 in range(0, n_chunks, seg):
            t1 = min(t0 + seg, n_chunks)
            g = t1 - t0
            q, k, v, w, d, g_seg, c = inputs(r, t0, t1)
            a = torch.bmm(q, k.transpose(1, 2), out=a_buf[:g])
            if w is None:
                a.tril_()
            else:
                a.mul_(w)
            kd = k if d is None else k * d[..., None]
            st = torch.bmm(kd.transpose(1, 2), v, out=st_buf[:g])
            z = torch.sum(kd, dim=1, out=z_buf[:g, :, 0])[..., None]
            num, den = out[r, t0:t1], den_buf[:g]
            torch.mm(q[0], state, out=num[0])  # chunk t0 reads the carried state
            torch.mm(q[0], norm, out=den[0])
            if t0 > 0:  # S_t0 = g_t0 S_{t0 - 1} + U_t0, then the scan within the segment
                grow = 1.0 if g_seg is None else g_seg[0]
                st[0].add_(state * grow)
                z[0].add_(norm * grow)
            scan_factors = None if g_seg is None else g_seg[None]
            _inclusive_scan_(st[None], scan_factors, zero_last=False)
            _inclusive_scan_(z[None], scan_factors, zero_last=False)
            if g > 1:
                torch.bmm(q[1:], st[:-1], out=num[1:])
                torch.bmm(q[1:], z[:-1], out=den[1:])
            if c is not None:
                num.mul_(c[..., None])
                den.mul_(c[..., None])
            _finish_(num, den, a, v)
            state, norm = st[-1].clone(), z[-1].clone()
            del q, k, kd  # this segment's features: freed before the next are formed
    return out


def _fixed_decay_factors(gamma: float, chunk: int, dtype: torch.dtype, device):
    """The factors of the decay gamma^(i - j), the same for every chunk, formed in float64:
    (weights (C, C): gamma^(i - j) for j <= i else 0; decay (C,): gamma^(C - 1 - j), a
    key's factor into its chunk state; shrink (): gamma^C, the state's from chunk to
    chunk; carry (C,): gamma^(i + 1), a query's read of the previous state). All <= 1."""
    i = torch.arange(chunk, dtype=torch.float64, device=device)
    log_gamma = math.log(gamma)
    lag = i[:, None] - i[None, :]
    weights = torch.exp(lag.clamp_min(0) * log_gamma).masked_fill_(lag < 0, 0.0)
    decay = torch.exp((chunk - 1 - i) * log_gamma)
    shrink = torch.tensor(math.exp(chunk * log_gamma), dtype=torch.float64, device=device)
    carry = torch.exp((i + 1) * log_gamma)
    return tuple(t.to(dtype) for t in (weights, decay, shrink, carry))


def _bidirectional(phi_q, phi_k, v, feature_map, key_padding_mask) -> Tensor:
    """The closed form of ``impls.attention._closed_form``: elu+1 features formed there
    (its backward needs only the features), any other map applied here and its features
    handed over as they are (``feature_map`` None: they are features already)."""
    if feature_map is elu_feature_map:
        return closed_form_attention(phi_q, phi_k, v, key_padding_mask, ELU_FEATURES)
    if feature_map is not None:
        phi_q, phi_k = feature_map(phi_q), feature_map(phi_k)
        if key_padding_mask is not None:
            phi_k = phi_k.masked_fill(key_padding_mask[:, None, :, None], 0.0)
    return closed_form_attention(phi_q, phi_k, v, None, IDENTITY_FEATURES)


def kernel_attention(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    chunk_size: int = 64,
    k_factor: Tensor | None = None,
    gamma: float | None = None,
    feature_map: Callable[[Tensor], Tensor] | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Normalised kernel attention on non-negative features, chunk-parallel when causal.

    phi_q (N, H, Lq, m), phi_k (N, H, Lk, m) (padded keys already zeroed), v (N, H, Lk, dv)
    -> (N, H, Lq, dv). Optional per-position log-factors (causal only, used by Performer's
    stabiliser, base-2 log units): for query i, key j <= i is weighted by
    2^(k_factor_j - k_factor_i);
    k_factor (N, H, L) must be non-decreasing in j (it is detached), so every factor
    applied is <= 1 (no overflow). Optional fixed decay ``gamma`` in (0, 1] (causal
    only, not with k_factor): key j <= i is weighted by gamma^(i - j). With
    ``feature_map`` (a new tensor of features from a tensor of rows; not with k_factor),
    phi_q and phi_k are the raw q and k, and the features (keys padded by
    ``key_padding_mask`` (N, Lk) zeroed) are formed where they are needed: per segment
    in the scan without a backward ahead, else all at once. See the module docstring for
    the algorithm.
    """
    if gamma is not None and (not causal or k_factor is not None):
        raise ValueError("kernel_attention: gamma needs causal=True and no k_factor")
    if not causal:
        return _bidirectional(phi_q, phi_k, v, feature_map, key_padding_mask)
    batch, heads, length, m = phi_q.shape
    chunk = max(1, min(chunk_size, length))
    n_chunks = -(-length // chunk)
    # no backward ahead and more than one segment: the segmented scan (features per segment)
    segmented = runs_segmented(n_chunks, phi_q, phi_k, v)
    if feature_map is not None and not (segmented and k_factor is None):  # all at once
        phi_q, phi_k = feature_map(phi_q), feature_map(phi_k)
        if key_padding_mask is not None:
            phi_k = phi_k.masked_fill(key_padding_mask[:, None, :, None], 0.0)
        feature_map = None
    rows = batch * heads
    fq = _chunked(phi_q, chunk, n_chunks).reshape(rows, n_chunks, chunk, m)
    fk = _chunked(phi_k, chunk, n_chunks).reshape(rows, n_chunks, chunk, m)
    vc = _chunked(v, chunk, n_chunks).reshape(rows, n_chunks, chunk, -1)
    weights = decay = shrink = carry = None
    if k_factor is not None:
        level = k_factor.detach().reshape(rows, length)
        tail = n_chunks * chunk - length
        if tail:  # padded positions keep the last level (still non-decreasing)
            level = torch.cat([level, level[:, -1:].expand(rows, tail)], dim=-1)
        level = level.reshape(rows, n_chunks, chunk)
        tril = torch.ones(chunk, chunk, dtype=torch.bool, device=v.device).tril()
        diff = level[..., None, :] - level[..., :, None]  # [i, j] = level_j - level_i
        weights = torch.exp2(diff.masked_fill(~tril, -torch.inf))  # <= 1, 0 above diagonal
        lam = level[..., -1]  # (R, T): the level each chunk's state is kept at
        decay = torch.exp2(level - lam[..., None])  # <= 1
        before = torch.cat([torch.full_like(lam[:, :1], -torch.inf), lam[:, :-1]], dim=1)
        # state after chunk t is kept at lam_t: g_t = 2^(lam_{t-1} - lam_t) (t = 0: unused)
        shrink = torch.exp2(before - lam)
        carry = torch.exp2(before[..., None] - level)  # (R, T, C), <= 1 (0 for chunk 0)
    elif gamma is not None:
        weights, decay, shrink, carry = _fixed_decay_factors(gamma, chunk, fq.dtype, v.device)
        shrink = shrink.expand(rows, n_chunks)
    if segmented:
        keep = None
        if feature_map is not None and key_padding_mask is not None:
            keep = (~key_padding_mask).to(fk.dtype)[:, None, :, None].expand(batch, heads, -1, 1)
            keep = _chunked(keep, chunk, n_chunks).reshape(rows, n_chunks, chunk)
        out = _segmented_scan(fq, fk, vc, weights, decay, shrink, carry, feature_map, keep)
    else:
        out = _ChunkParallel.apply(fq, fk, vc, weights, decay, shrink, carry)
    return out.reshape(batch, heads, n_chunks * chunk, -1)[:, :, :length]


def kernel_attention_reference(
    phi_q: Tensor, phi_k: Tensor, v: Tensor, *, causal: bool, k_factor: Tensor | None = None
) -> Tensor:
    """The definition, densely: weights w_ij = phi(q_i)^T phi(k_j) (times
    2^(k_factor_j - k_factor_i)), masked to j <= i when causal, out = w v / rowsum(w).
    O(L^2) memory; for tests of the chunked form only."""
    weights = phi_q @ phi_k.transpose(-1, -2)
    if causal:
        length = phi_q.shape[2]
        tril = torch.ones(length, length, dtype=torch.bool, device=v.device).tril()
        if k_factor is not None:
            diff = k_factor[..., None, :] - k_factor[..., :, None]
            weights = weights * torch.exp2(diff.masked_fill(~tril, -torch.inf))
        weights = weights.masked_fill(~tril, 0.0)
    return _divide(weights @ v, weights.sum(dim=-1))


def linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    chunk_size: int = 64,
) -> Tensor:
    """Linear attention with elu+1 features (see the module docstring)."""
    check_attention_inputs(
        q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="linear"
    )
    _check_chunk_size(chunk_size)
    return elu_attention(q, k, v, key_padding_mask, causal=causal, chunk_size=chunk_size)


def elu_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None,
    *,
    causal: bool,
    chunk_size: int,
    gamma: float | None = None,
) -> Tensor:
    """``kernel_attention`` on elu+1 features of validated inputs, computed in float32 or
    float64 (``compute_dtype``) and cast back; the features are formed where the scan
    needs them (see ``kernel_attention``'s ``feature_map``)."""
    ct = compute_dtype(q.dtype)
    out = kernel_attention(
        q.to(ct),
        k.to(ct),
        v.to(ct),
        causal=causal,
        chunk_size=chunk_size,
        gamma=gamma,
        feature_map=elu_feature_map,
        key_padding_mask=key_padding_mask,
    )
    return out.to(q.dtype)


def _check_chunk_size(chunk_size) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"linear: chunk_size must be an int >= 1, got {chunk_size!r}")


class LinearAttention(nn.Module):
    """Module form: ``LinearAttention(dim, heads, chunk_size=64)(q, k, v, causal=...)``."""

    def __init__(self, dim: int | None = None, heads: int | None = None, *, chunk_size: int = 64):
        super().__init__()
        _check_chunk_size(chunk_size)
        self.chunk_size = chunk_size

    def forward(self, q, k, v, *, causal: bool = False, key_padding_mask=None) -> Tensor:
        return linear_attention(
            q, k, v, causal=causal, key_padding_mask=key_padding_mask, chunk_size=self.chunk_size
        )

    def extra_repr(self) -> str:
        return f"chunk_size={self.chunk_size}"


def chunked_kernel_cost(query: CostQuery, features: int, chunk_size: int) -> tuple[float, int]:
    """(FLOPs, working elements) per (batch, head) row of one forward ``kernel_attention``
    call with m = ``features`` and dv = d. Bidirectional: 4 L m dv for the state and
    read-out GEMMs, 4 L m for the normaliser, 2 L dv for the division. Causal: 4 L m dv
    for the chunk states and their read-out (GEMMs), 2 L C (m + dv) for the (C x C)
    intra-chunk scores and their product with V, 4 L m + 2 L C for the normaliser, the
    prefix adds over chunks (n_c m (dv + 1)) and the division. Working elements: the
    value/output buffers and their padded copies, the (L, C) scores, the n_c chunk
    states (m x dv) and normalisers."""
    n, d = query.length, query.dim
    if not query.causal:
        flops = 4.0 * n * features * d + 4.0 * n * features + 2.0 * n * d
        return flops, int(4 * n * d + 2 * features * (d + 1))
    chunk = max(1, min(chunk_size, n))
    n_chunks = math.ceil(n / chunk)
    flops = 4.0 * n * features * d + 2.0 * n * chunk * (features + d)
    flops += 4.0 * n * features + 2.0 * n * chunk  # the normaliser
    flops += n_chunks * features * (d + 1) + 2.0 * n * d  # prefix adds, division
    working = (5 * d + 2 * chunk) * n + n_chunks * features * (d + 1)
    return flops, int(working)


def analytic_cost(query: CostQuery) -> Cost:
    """The chunk-parallel scan of ``kernel_attention`` (see ``chunked_kernel_cost``) plus
    the elu+1 feature maps of q and k (about 4 L d); working memory adds the two (L, d)
    feature buffers and their padded copies. Backward: 2x the forward FLOPs (the
    written-out backward runs 8 GEMMs against the forward's 4), and the saved
    activations plus their gradients (3x the working memory)."""
    n, d = query.length, query.dim
    flops, working = chunked_kernel_cost(query, d, query.hp.get("chunk_size", 64))
    per_row = flops + 4.0 * n * d
    grad = 3 if query.backward else 1
    working_bytes = query.itemsize * query.rows * grad * (working + 4 * n * d)
    return Cost(
        query.rows * query.passes * per_row,
        compulsory_traffic(query),
        int(working_bytes + SLACK_BYTES),
    )
