"""The LISA operator's forward pass as Triton kernels (a chunk-parallel decayed-histogram scan).

Same operator, same arguments and same results as
:func:`impls.attention.lisa_operator.lisa_attention` (vector queries); per codebook b,
query position l and codeword w (W codewords)::

    H[b, l, w] = sum_{j visible from l} gamma^|l - j| * c[b, j, w]       (decayed histogram)
    s[b, l, w] = scale * <q[b, l], Kc[b, w]>                               (scores)
    a[b, l, w] = H[b, l, w] exp(s[b, l, w]) / sum_w' H[b, l, w'] exp(s[b, l, w'])
    out[l]     = sum_b sum_w a[b, l, w] * Vc[b, w]                         (summed over b)

``c[b, j, :]`` is the one-hot of key j's hard code or its soft code (probabilities); padded
keys have c = 0; "visible" is j <= l (causal) or every j (bidirectional). Evaluated as
softmax_w(s + log H) with the row maximum subtracted; a row with an empty histogram gives
exactly 0 for that codebook.

Shapes: query (batch, B, L, d); key_codes (batch, B, L) integers in [0, W) or
(batch, B, L, W) soft codes; key_codewords (B, W, d); value_codewords (B, W, dv);
key_padding_mask (batch, L) bool, True = padded; result (batch, L, dv) in the query's dtype
(float16 / bfloat16 computed in float32, as in the torch operator).

Three kernels, the sequence cut into chunks of C positions (C <= 64, shortened for strong
decay exactly like the torch operator, :func:`effective_chunk_size`, so that gamma^C stays
a normal number); tiles are BLOCK_L = max(16, next power of 2 >= C) rows (rows past C are
masked), BLOCK_W, BLOCK_D, BLOCK_DV = max(16, next power of 2) of W, d, dv (dv <= 128 per
program); every tl.dot runs with input_precision="ieee" (no TF32):

1. ``_chunk_states_kernel``, grid (chunks, batch * B): each chunk's own decayed sums, taken
   relative to the chunk's ends, so every factor is gamma^i <= 1 with i < C:
   log E_k = log sum_{j in k} gamma^(stop_k - 1 - j) c_j and (bidirectional)
   log S_k = log sum_{j in k} gamma^(j - start_k) c_j, (batch, B, chunks, W).
2. ``_scan_states_kernel``, grid (batch * B,): the only sequential part, over chunks of
   (W,) vectors, in the log domain (nothing grows like gamma^-L, nothing underflows):
   before_k = logaddexp(E_{k-1}, before_{k-1} + size_{k-1} log gamma) (keys before the
   chunk, seen from its first position minus one) and, bidirectional, after_k =
   logaddexp(S_{k+1}, after_{k+1} + size_{k+1} log gamma) (keys after the chunk, seen from
   its stop).
3. ``_output_kernel``, grid (chunks, batch, dv blocks), a loop over the B codebooks inside
   (so the sum over b needs no atomics and is deterministic): scores q Kc^T (tl.dot), the
   chunk's own histogram as a (C, C) decay matrix gamma^|i - j| (j <= i when causal) times
   the (C, W) codes (tl.dot), combined with the carried states in the log domain:
   log H[i] = logaddexp(log local[i], before + (i+1) log gamma[, after + (size-i) log gamma]),
   then the masked softmax over W and the (C, W) x (W, dv) product, accumulated over b.

Errors as in the torch operator: scores that are not finite in a row that sees a key raise
``FloatingPointError`` (the kernel counts such rows), and so does an output that overflows
the result dtype.

Backward: NOT a Triton kernel. :class:`_LisaTritonFunction` runs the forward with the
kernels above and, for the backward pass, recomputes the output with the torch operator
(``lisa_attention(..., backend="torch")``) under autograd and differentiates that: exact
gradients, but the time and memory of the torch path's backward (its (batch, B, L, W)
saved tensors) on top of a second forward.

Interpreter: Triton's interpreter runs these kernels on CPU tensors when the environment
has ``TRITON_INTERPRET=1`` *before* ``triton`` is first imported in the process (the
language's own helpers such as ``tl.sum`` are built at import); :func:`interpreter_active`
tells whether that is the case. CPU tensors without it raise ``RuntimeError``.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from impls.attention._validation import compute_dtype
from impls.attention.lisa_validation import (
    check_codes,
    check_codewords,
    check_gamma,
    check_options,
    check_padding_mask,
    check_query,
)

__all__ = ["MAX_CHUNK", "interpreter_active", "lisa_attention_triton"]

MAX_CHUNK = 64  # positions per tile: the (C, C) decay matrix and (C, W) tiles stay small
_MIN_DOT = 16  # tl.dot needs every block dimension >= 16 on GPUs
_MAX_BLOCK_DV = 128


@triton.jit
def _chunk_states_kernel(
    codes_ptr,
    mask_ptr,
    end_ptr,
    start_ptr,
    B,
    L,
    W,
    C,
    NCH,
    params_ptr,
    SOFT: tl.constexpr,
    HAS_MASK: tl.constexpr,
    BIDIR: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    log_gamma = tl.load(params_ptr)  # in the compute dtype (a Python float would be fp32)
    k = tl.program_id(0).to(tl.int64)  # chunk (axis 0: up to 2^31 - 1 programs)
    nb = tl.program_id(1).to(tl.int64)  # n * B + b
    n = nb // B
    start = k * C
    size = tl.minimum(C, L - start)
    i = tl.arange(0, BLOCK_L)
    w = tl.arange(0, BLOCK_W)
    row = i < size
    pos = start + i
    if SOFT:
        ptrs = codes_ptr + (nb * L + pos)[:, None] * W + w[None, :]
        c = tl.load(ptrs, mask=row[:, None] & (w[None, :] < W), other=0.0)
    else:
        code = tl.load(codes_ptr + nb * L + pos, mask=row, other=-1)
        c = tl.where(row[:, None] & (code[:, None] == w[None, :]), 1.0, 0.0)
    if HAS_MASK:
        padded = tl.load(mask_ptr + n * L + pos, mask=row, other=1)
        c = tl.where(padded[:, None] != 0, 0.0, c)
    c = c.to(end_ptr.dtype.element_ty)
    fi = i.to(c.dtype)
    # factors gamma^i <= 1 with i < C: the chunk is short enough that they stay normal
    to_end = tl.where(row, tl.exp((size - 1 - fi) * log_gamma), 0.0)
    out = (nb * NCH + k) * W + w
    tl.store(end_ptr + out, tl.log(tl.sum(c * to_end[:, None], axis=0)), mask=w < W)
    if BIDIR:
        to_start = tl.where(row, tl.exp(fi * log_gamma), 0.0)
        tl.store(start_ptr + out, tl.log(tl.sum(c * to_start[:, None], axis=0)), mask=w < W)


@triton.jit
def _scan_states_kernel(
    end_ptr,
    start_ptr,
    before_ptr,
    after_ptr,
    L,
    W,
    C,
    NCH,
    params_ptr,
    BIDIR: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    log_gamma = tl.load(params_ptr)
    nb = tl.program_id(0).to(tl.int64)
    w = tl.arange(0, BLOCK_W)
    keep = w < W
    base = nb * NCH * W
    carry = tl.full((BLOCK_W,), float("-inf"), end_ptr.dtype.element_ty)
    for k in range(0, NCH):
        tl.store(before_ptr + base + k * W + w, carry, mask=keep)
        size = tl.minimum(C, L - k * C)
        local = tl.load(end_ptr + base + k * W + w, mask=keep, other=float("-inf"))
        decayed = carry + size * log_gamma
        # logaddexp(local, decayed), -inf when both are -inf
        top = tl.maximum(local, decayed)
        low = tl.minimum(local, decayed)
        safe = tl.where(top == float("-inf"), 0.0, top)
        carry = top + tl.log(1.0 + tl.exp(low - safe))
    if BIDIR:
        carry = tl.full((BLOCK_W,), float("-inf"), end_ptr.dtype.element_ty)
        for t in range(0, NCH):
            k = NCH - 1 - t
            tl.store(after_ptr + base + k * W + w, carry, mask=keep)
            size = tl.minimum(C, L - k * C)
            local = tl.load(start_ptr + base + k * W + w, mask=keep, other=float("-inf"))
            decayed = carry + size * log_gamma
            top = tl.maximum(local, decayed)
            low = tl.minimum(local, decayed)
            safe = tl.where(top == float("-inf"), 0.0, top)
            carry = top + tl.log(1.0 + tl.exp(low - safe))


@triton.jit
def _output_kernel(
    q_ptr,
    codes_ptr,
    mask_ptr,
    kc_ptr,
    vc_ptr,
    before_ptr,
    after_ptr,
    out_ptr,
    bad_ptr,
    B,
    L,
    W,
    D,
    DV,
    C,
    NCH,
    params_ptr,
    SOFT: tl.constexpr,
    HAS_MASK: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_W: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    log_gamma = tl.load(params_ptr)
    scale = tl.load(params_ptr + 1)
    k = tl.program_id(0).to(tl.int64)  # chunk (axis 0: up to 2^31 - 1 programs)
    n = tl.program_id(1).to(tl.int64)
    e0 = tl.program_id(2).to(tl.int64) * BLOCK_DV
    start = k * C
    size = tl.minimum(C, L - start)
    i = tl.arange(0, BLOCK_L)
    j = tl.arange(0, BLOCK_L)
    w = tl.arange(0, BLOCK_W)
    dd = tl.arange(0, BLOCK_D)
    e = e0 + tl.arange(0, BLOCK_DV)
    row = i < size
    pos = start + i
    word = w < W
    dtype = out_ptr.dtype.element_ty

    # the within-chunk decay matrix gamma^|i - j| (0 for j > i when causal), factors <= 1
    dist = (i[:, None] - j[None, :]).to(dtype)
    decay = tl.exp(tl.abs(dist) * log_gamma)
    if CAUSAL:
        decay = tl.where(dist >= 0, decay, 0.0)
    fi = i.to(dtype)
    before_decay = (fi + 1.0) * log_gamma  # key at start - 1 is i + 1 away from row i
    after_decay = (size - fi) * log_gamma  # key at stop is size - i away from row i

    keep = row
    if HAS_MASK:
        padded = tl.load(mask_ptr + n * L + pos, mask=row, other=1)
        keep = row & (padded == 0)

    acc = tl.zeros((BLOCK_L, BLOCK_DV), dtype)
    bad = tl.sum(tl.zeros((BLOCK_L,), tl.int32), axis=0)
    for b in range(0, B):
        nb = n * B + b
        q = tl.load(
            q_ptr + (nb * L + pos)[:, None] * D + dd[None, :],
            mask=row[:, None] & (dd[None, :] < D),
            other=0.0,
        )
        kc = tl.load(
            kc_ptr + (b * W + w)[:, None] * D + dd[None, :],
            mask=word[:, None] & (dd[None, :] < D),
            other=0.0,
        )
        scores = tl.dot(q, tl.trans(kc), input_precision="ieee") * scale  # (BLOCK_L, BLOCK_W)

        if SOFT:
            c = tl.load(
                codes_ptr + (nb * L + pos)[:, None] * W + w[None, :],
                mask=row[:, None] & word[None, :],
                other=0.0,
            ).to(dtype)
        else:
            code = tl.load(codes_ptr + nb * L + pos, mask=row, other=-1)
            c = tl.where(row[:, None] & (code[:, None] == w[None, :]), 1.0, 0.0).to(dtype)
        c = tl.where(keep[:, None], c, 0.0)
        local = tl.dot(decay, c, input_precision="ieee")  # (BLOCK_L, BLOCK_W), >= 0

        state = tl.load(before_ptr + (nb * NCH + k) * W + w, mask=word, other=float("-inf"))
        carried = state[None, :] + before_decay[:, None]
        if not CAUSAL:
            ahead = tl.load(after_ptr + (nb * NCH + k) * W + w, mask=word, other=float("-inf"))
            later = ahead[None, :] + after_decay[:, None]
            top = tl.maximum(carried, later)
            low = tl.minimum(carried, later)
            safe = tl.where(top == float("-inf"), 0.0, top)
            carried = top + tl.log(1.0 + tl.exp(low - safe))
        log_local = tl.log(local)
        top = tl.maximum(log_local, carried)
        low = tl.minimum(log_local, carried)
        safe = tl.where(top == float("-inf"), 0.0, top)
        log_hist = top + tl.log(1.0 + tl.exp(low - safe))  # -inf: codeword absent

        seen = tl.max(log_hist, axis=1) > float("-inf")  # the row's histogram is not empty
        finite = (tl.abs(scores) < float("inf")) | (w[None, :] >= W)
        all_finite = tl.min(finite.to(tl.int32), axis=1) > 0
        bad += tl.sum((row & seen & (all_finite == 0)).to(tl.int32), axis=0)

        logits = scores + log_hist
        peak = tl.max(logits, axis=1)
        peak = tl.where(seen, peak, 0.0)
        p = tl.exp(logits - peak[:, None])  # 0 where log H = -inf
        total = tl.sum(p, axis=1)
        weights = p / tl.where(seen, total, 1.0)[:, None]  # empty rows: exactly 0

        vc = tl.load(
            vc_ptr + (b * W + w)[:, None] * DV + e[None, :],
            mask=word[:, None] & (e[None, :] < DV),
            other=0.0,
        )
        acc += tl.dot(weights, vc, input_precision="ieee")

    tl.store(
        out_ptr + (n * L + pos)[:, None] * DV + e[None, :],
        acc,
        mask=row[:, None] & (e[None, :] < DV),
    )
    pid = (k * tl.num_programs(1) + n) * tl.num_programs(2) + tl.program_id(2)
    tl.store(bad_ptr + pid, bad)


def interpreter_active() -> bool:
    """True when Triton runs in interpreter mode in this process (``TRITON_INTERPRET=1``
    was set before triton was imported): the kernels then run on CPU tensors."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except ImportError:  # pragma: no cover - a triton without the interpreter
        return False
    # our kernels interpreted, and the language's helpers not compiled-only JIT functions
    return isinstance(_output_kernel, InterpretedFunction) and not isinstance(tl.sum, JITFunction)


def _block(size: int, low: int = _MIN_DOT, high: int | None = None) -> int:
    block = max(low, triton.next_power_of_2(size))
    return block if high is None else min(block, high)


def _forward(
    query: Tensor,
    key_codes: Tensor,
    key_codewords: Tensor,
    value_codewords: Tensor,
    key_padding_mask: Tensor | None,
    gamma: float,
    causal: bool,
    scale: float,
    chunk_size: int,
) -> Tensor:
    """The three kernels on validated inputs; returns (batch, L, dv) in the query's dtype."""
    from impls.attention.lisa_operator import (
        _check_output,
        _scores_overflow,
        effective_chunk_size,
    )

    if query.device.type == "cpu" and not interpreter_active():
        raise RuntimeError(
            "lisa_attention_triton on CPU tensors needs Triton's interpreter: set "
            "TRITON_INTERPRET=1 before triton is imported (or use a CUDA device)"
        )
    batch, books, length, dim = query.shape
    words, dv = value_codewords.shape[1], value_codewords.shape[2]
    work = compute_dtype(query.dtype)
    q = query.detach().to(work).contiguous()
    kc = key_codewords.detach().to(work).contiguous()
    vc = value_codewords.detach().to(work).contiguous()
    soft = key_codes.is_floating_point()
    codes = (key_codes.detach().to(work) if soft else key_codes.detach()).contiguous()
    has_mask = key_padding_mask is not None
    mask = key_padding_mask.to(torch.int8).contiguous() if has_mask else codes  # dummy ptr

    chunk = effective_chunk_size(min(chunk_size, MAX_CHUNK), gamma, work)
    chunks = triton.cdiv(length, chunk)
    log_gamma = math.log(gamma)
    block_l, block_w = _block(chunk), _block(words)
    block_d, block_dv = _block(dim), _block(dv, high=_MAX_BLOCK_DV)
    params = torch.tensor([log_gamma, scale], dtype=work, device=q.device)
    states = torch.empty(
        2 if causal else 4, batch * books, chunks, words, dtype=work, device=q.device
    )
    end, before = states[0], states[1]
    start, after = (states[2], states[3]) if not causal else (end, before)  # unused if causal

    _chunk_states_kernel[(chunks, batch * books)](
        codes,
        mask,
        end,
        start,
        books,
        length,
        words,
        chunk,
        chunks,
        params,
        SOFT=soft,
        HAS_MASK=has_mask,
        BIDIR=not causal,
        BLOCK_L=block_l,
        BLOCK_W=block_w,
    )
    _scan_states_kernel[(batch * books,)](
        end,
        start,
        before,
        after,
        length,
        words,
        chunk,
        chunks,
        params,
        BIDIR=not causal,
        BLOCK_W=block_w,
    )
    out = torch.empty(batch, length, dv, dtype=work, device=q.device)
    grid = (chunks, batch, triton.cdiv(dv, block_dv))
    bad = torch.zeros(grid[0] * grid[1] * grid[2], dtype=torch.int32, device=q.device)
    _output_kernel[grid](
        q,
        codes,
        mask,
        kc,
        vc,
        before,
        after,
        out,
        bad,
        books,
        length,
        words,
        dim,
        dv,
        chunk,
        chunks,
        params,
        SOFT=soft,
        HAS_MASK=has_mask,
        CAUSAL=causal,
        BLOCK_L=block_l,
        BLOCK_W=block_w,
        BLOCK_D=block_d,
        BLOCK_DV=block_dv,
        num_warps=8 if block_w * max(block_d, block_dv) >= 64 * 64 else 4,  # untuned (GPU)
    )
    if bool(bad.any()):
        raise _scores_overflow("query, key_codewords", work)
    return _check_output(out, query.dtype, work)


class _LisaTritonFunction(torch.autograd.Function):
    """Forward: the Triton kernels. Backward: recomputed with the torch operator under
    autograd (not a Triton kernel; see the module docstring)."""

    @staticmethod
    def forward(ctx, query, key_codes, key_codewords, value_codewords, mask, options):
        gamma, causal, scale, chunk_size = options
        ctx.save_for_backward(query, key_codes, key_codewords, value_codewords)
        ctx.mask = mask
        ctx.options = options
        return _forward(
            query,
            key_codes,
            key_codewords,
            value_codewords,
            mask,
            gamma,
            causal,
            scale,
            chunk_size,
        )

    @staticmethod
    def backward(ctx, grad_out):
        from impls.attention.lisa_operator import lisa_attention

        gamma, causal, scale, chunk_size = ctx.options
        saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[:4]
        inputs = [t.detach().requires_grad_(need) for t, need in zip(saved, needs, strict=True)]
        with torch.enable_grad():
            out = lisa_attention(
                *inputs,
                gamma=gamma,
                causal=causal,
                key_padding_mask=ctx.mask,
                scale=scale,
                chunk_size=chunk_size,
                backend="torch",
            )
            wanted = [t for t, need in zip(inputs, needs, strict=True) if need]
            grads = iter(torch.autograd.grad(out, wanted, grad_out))
        return (*(next(grads) if need else None for need in needs), None, None)


def lisa_attention_triton(
    query: Tensor,
    key_codes: Tensor,
    key_codewords: Tensor,
    value_codewords: Tensor,
    *,
    gamma: float = 1.0,
    causal: bool = True,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
    chunk_size: int = 512,
) -> Tensor:
    """:func:`impls.attention.lisa_operator.lisa_attention` through the Triton kernels.

    Arguments, result and errors as there (the same checks run first). ``chunk_size`` is
    capped at :data:`MAX_CHUNK` (and shortened for strong decay); the result does not
    depend on it. Gradients (query, soft key codes, codewords) are exact; the backward
    pass recomputes through the torch operator (module docstring)."""
    batch, books, length, dim = check_query("query", query)
    words = check_codewords(key_codewords, value_codewords, books, dim, query)
    check_codes("key_codes", key_codes, (batch, books, length), words, query)
    check_padding_mask(key_padding_mask, batch, length, query.device)
    gamma = check_gamma(gamma)
    scale = check_options(causal, scale, chunk_size, dim)
    return _LisaTritonFunction.apply(
        query,
        key_codes,
        key_codewords,
        value_codewords,
        key_padding_mask,
        (gamma, causal, scale, chunk_size),
    )
