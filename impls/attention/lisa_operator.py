"""The LISA codeword-histogram attention operator (Wu et al., WWW 2021), as a chunked scan.

Per codebook b, query position l and codeword w (W codewords)::

    H[b, l, w] = sum_{j visible from l} gamma^|l - j| * c[b, j, w]       (decayed histogram)
    s[b, l, w] = scale * <q[b, l], Kc[b, w]>                               (scores)
    a[b, l, w] = H[b, l, w] exp(s[b, l, w]) / sum_w' H[b, l, w'] exp(s[b, l, w'])
    out[l]     = sum_b sum_w a[b, l, w] * Vc[b, w]                         (summed over b)

``c[b, j, :]`` is the one-hot of key j's hard code, or its soft code (a probability vector);
padded keys have ``c = 0``. "Visible" means ``j <= l`` when causal, every j otherwise.

Empty rows and overflow are told apart explicitly (never by ``nan_to_num``):
* a row whose histogram is empty (H[b, l, :] = 0 for every w: nothing visible yet, or every
  visible key padded) returns exactly 0 for that codebook;
* a row that sees at least one key needs all its W scores finite; scores that are not
  (|q . Kc| beyond the dtype's range although the inputs are finite, e.g. float32 inputs
  of magnitude 1e20) raise ``FloatingPointError`` naming the arguments, and so does an
  output that overflows the result dtype (``value_codewords`` too large, or a float32
  result beyond the half-precision range). Scores of empty rows are never used.

Half precision: float16 and bfloat16 inputs are accumulated in float32 (scores, log
histograms, softmax, the sum over codewords) and the result is cast back to the input
dtype; gradients flow back in the input dtype. Against the float64 oracle on the same
(half-valued) inputs the result is then the exactly rounded float32 value rounded once
more to the input dtype: |out - oracle| <= eps * max(1, max |oracle|) with eps the
input dtype's machine epsilon (2^-10 for float16, 2^-7 for bfloat16), for moderate L.

How it is computed (and why it is stable for any length):
* The sequence is cut into chunks of ``chunk_size`` positions. A running state of shape
  (batch, B, W) carries log H at the end of the previous chunk; inside a chunk the decayed
  prefix sums are formed with factors gamma^(+-i) for 0 <= i < chunk only, and the chunk is
  shortened for strong decay so that those factors stay within the dtype's range. Nothing
  grows like gamma^(-L) (the authors' code divides by gamma^(L-1-j)).
* The state is kept as a logarithm, so a codeword seen long ago keeps its exact relative
  weight even when gamma^(l-j) would underflow but its score is large enough to matter:
  the weights are softmax_w(s + log H), with the row maximum subtracted before exp.
* Bidirectional attention with gamma < 1 needs the decayed histogram of later keys too: a
  first reverse pass stores only the (batch, B, W) state at each chunk boundary.
Without gradients no (L, L) or (L, B, W) tensor is ever formed; peak memory is
O(L * dv + chunk * B * W). With gradients the scores, codes and weights of the whole
sequence, (batch, B, L, W) each, are kept for an analytic backward pass
(:class:`_HistogramAttention`): a reverse decayed scan in the linear domain, with no
log-domain intermediates for autograd to record. It is exact at empty histogram entries
(dL/dH = exp(s - log Z) * ..., finite where H = 0), which straight-through one-hot codes
need: a key's code gets a gradient toward codewords absent from the histogram so far.

Two entry points share the scan:
* :func:`lisa_attention` — queries are vectors, scores are q . Kc.
* :func:`lisa_attention_cached` — queries are codes too (LISA-Base); scores are rows of the
  W x W table T[b] = scale * Qc[b] Kc[b]^T built once, gathered per position.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from impls.attention._validation import compute_dtype
from impls.attention.lisa_straight_through import straight_through_rows
from impls.attention.lisa_validation import (
    check_codes,
    check_codewords,
    check_gamma,
    check_options,
    check_padding_mask,
    check_query,
)
from impls.costs import Cost
from reference.attention import check_finite

__all__ = ["lisa_attention", "lisa_attention_cached", "effective_chunk_size"]

ScoreFn = Callable[[int, int], Tensor]


# Tests set this to route every chunk through the exact log-domain path (the fallback).
_ALWAYS_EXACT = False
# A chunk's linear-domain weights are kept when every non-empty row's normaliser is at least
# _Z_SAFETY * W * tiny * (largest scaled histogram entry + 3) / eps (see :class:`_Scan`).
_Z_SAFETY = 4.0
# Bidirectional: chunk-boundary states kept per level of the checkpointed reverse pass.
_FANOUT = 16
# With gradients, a scan step spans at least this many positions (see :func:`_scan_chunk`).
_GRAD_MIN_CHUNK = 32


def effective_chunk_size(chunk_size: int, gamma: float, dtype: torch.dtype) -> int:
    """Chunk length actually used: ``chunk_size`` shortened so that gamma^(-chunk) stays
    inside the range of ``dtype`` (45% of its exponent range), so that neither
    gamma^(-i) nor gamma^(+i) over a chunk can overflow or leave the normal range."""
    log_gamma = math.log(gamma)
    if log_gamma == 0.0:
        return chunk_size
    span = 0.45 * -math.log(torch.finfo(dtype).tiny)  # ~39 for float32, ~318 for float64
    return max(1, min(chunk_size, int(span / -log_gamma)))


def _chunk_elements(batch: int, length: int, dv: int, grad: bool) -> int:
    """Elements of all chunk-sized working tensors of one scan step together. Without
    gradients at most a quarter of the (batch, L, dv) output (at least 2^12, at most 2^17:
    512 KiB in float32), so that the scan's working memory stays below that of a fused
    exact-attention kernel at every L; with gradients (the whole-sequence weights are kept
    anyway) 2^19."""
    if grad:
        return 2**19
    return min(2**17, max(2**12, batch * length * dv // 4))


def _scan_chunk(
    chunk_size: int,
    gamma: float,
    dtype: torch.dtype,
    *,
    shape: tuple[int, int, int, int],
    dv: int,
    grad: bool,
    causal: bool,
) -> int:
    """Positions per scan step: :func:`effective_chunk_size`, further shortened so that the
    (batch, B, W, C) working tensors (2 causal, 4 bidirectional) fit
    :func:`_chunk_elements`; with gradients never below ``_GRAD_MIN_CHUNK`` positions
    (the backward keeps (batch, B, L, W) scores and weights anyway, and every scan step
    costs a fixed dozen passes: with batch * B * W in the 10^5 of a training batch the
    element budget alone gives steps of 2 positions, measured 2.1x slower per training
    step than 32)."""
    batch, books, length, words = shape
    buffers = 2 if causal else 4
    per_buffer = _chunk_elements(batch, length, dv, grad) // buffers
    limit = max(1, per_buffer // (batch * books * words))
    if grad:
        limit = max(limit, _GRAD_MIN_CHUNK)
    return min(effective_chunk_size(chunk_size, gamma, dtype), limit)


class _ChunkDecay:
    """Decay factors for offsets 0..chunk within a chunk (the backward pass's scan)."""

    def __init__(self, chunk: int, log_gamma: float, dtype: torch.dtype, device: torch.device):
        self.log_gamma = log_gamma
        pos = torch.arange(chunk + 1, device=device, dtype=dtype)[:, None]
        self.grow = torch.exp(-log_gamma * pos)  # gamma^(-i), at most e^span
        self.shrink = torch.exp(log_gamma * pos)  # gamma^(+i)

    def prefix(self, counts: Tensor) -> Tensor:
        """P[i] = sum_{j <= i} gamma^(i - j) counts[j] along dim 2 (chunk positions).

        Computed as gamma^i * cumsum(gamma^(-j) counts[j]); the chunk is short enough that
        gamma^(-j) cannot overflow."""
        if self.log_gamma == 0.0:
            return torch.cumsum(counts, dim=2)
        size = counts.shape[2]
        return torch.cumsum(counts * self.grow[:size], dim=2) * self.shrink[:size]


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


class _Counts:
    """The keys' codes, written chunk by chunk in the scan's (batch, B, W, C) layout.

    ``codes``: (batch, B, L) integer hard codes or (batch, B, L, W) float codes (soft codes,
    or the straight-through one-hots); ``key_padding_mask``: padded keys count 0."""

    def __init__(self, codes: Tensor, key_padding_mask: Tensor | None, dtype: torch.dtype):
        self.codes, self.mask, self.dtype = codes, key_padding_mask, dtype
        self.soft = codes.is_floating_point()

    def into(
        self, start: int, stop: int, weight: Tensor, out: Tensor, *, flip: bool = False
    ) -> None:
        """out[n, b, w, k] = weight[k] * c[n, b, j, w] * keep[n, j] with j = start + k
        (``flip``: j = stop - 1 - k); ``out`` (batch, B, W, stop - start)."""
        if stop <= start:
            return
        codes = self.codes[:, :, start:stop]
        if self.mask is not None:
            keep = (~self.mask[:, start:stop]).to(self.dtype)  # (batch, C)
            if flip:
                keep = keep.flip(-1)
            scale = (keep * weight)[:, None, None, :]
        else:
            scale = weight[None, None, None, :]
        if flip:
            codes = codes.flip(2)
        if self.soft:
            torch.mul(codes.transpose(2, 3), scale, out=out)
            return
        batch, books, size = codes.shape
        out.zero_()
        out.scatter_(2, codes.long().unsqueeze(2), scale.expand(batch, books, 1, size))


class _VectorScores:
    """Raw scores <q[n, b, l], Kc[b, w]>, written as (batch, B, W, C); ``scale`` is applied
    by the scan (folded into its exponentials).

    The query's finiteness is not tested up front (a separate pass over the (batch, B, L,
    d) query, the largest input): every score of every position is formed by the scan,
    and a NaN or Inf query entry makes its row's scores non-finite (inf * 0 and
    inf - inf are NaN), which sends the chunk to the exact path; there
    :meth:`check_inputs` tells a non-finite query from overflowing scores."""

    def __init__(self, query: Tensor, key_codewords: Tensor, scale: float):
        self.query, self.key_codewords, self.scale = query, key_codewords, scale

    def check_inputs(self, start: int, stop: int) -> None:
        """ValueError naming the query if its positions start..stop hold NaN or Inf."""
        check_finite("query", self.query[:, :, start:stop])

    def into(self, start: int, stop: int, out: Tensor) -> None:
        for n in range(out.shape[0]):
            query = self.query[n, :, start:stop]  # (B, C, d)
            # one streaming read first: the thin (W-row) product then runs from cache, ~1.5x
            # faster than when it streams the queries from memory itself
            query.sum()
            torch.bmm(self.key_codewords, query.transpose(1, 2), out=out[n])


class _GivenScores:
    """Scores from a function (start, stop) -> (batch, B, C, W), already scaled."""

    scale = 1.0

    def __init__(self, scores: Callable[[int, int], Tensor]):
        self.scores = scores

    def check_inputs(self, start: int, stop: int) -> None:
        """Nothing: the tensors the scores are built from were checked up front."""

    def into(self, start: int, stop: int, out: Tensor) -> None:
        out.copy_(self.scores(start, stop).transpose(2, 3))


class _Scan:
    """The chunked scan of one call: per chunk, the attention weights over the W codewords
    of every (batch, B, position) row, in the layout (batch, B, W, C).

    Fast path (linear domain, per chunk): with c_j the (masked) code of key j and
    ``a = gamma * exp(carry)`` the decayed histogram carried in from earlier chunks,

        X[i] = a + sum_{j <= i} gamma^(-j) c_j              (= H[i] / gamma^i; one cumsum)
        E[i] = exp(s[i] - max_w s[i] + i log gamma)         (row maximum subtracted)
        weights = X E / sum_w X E

    (bidirectional: H = gamma^i X + the mirrored sum over later keys, E without the
    i log gamma). Everything is a non-negative sum; the only losses are entries below the
    normal range (an underflowing E, or a carried entry ``a`` that is subnormal), each off
    by at most ``tiny`` times the largest X. So a row is accepted when its normaliser is
    at least ``_Z_SAFETY * W * tiny * (max X + 3) / eps``: its weights are then within
    eps / _Z_SAFETY of the exact ones. Empty rows (nothing visible, or every visible key
    padded: known from the mask) must have a normaliser of exactly 0 and get weights 0.

    Exact path (log domain): a chunk with any row that fails the test, or with a
    non-finite score, is recomputed as softmax_w(s + log H) with log H from logaddexp of
    the carried log state and the chunk's own log prefix sums; this keeps a codeword seen
    long ago (gamma^(l - j) below the dtype's range) at its exact relative weight when its
    score is large enough to matter, and tells empty rows from overflowing scores.

    The carried state is always kept exactly as a logarithm, (batch, B, W):
    log H at a chunk's last row = logaddexp(carry + C log gamma, log of the chunk's own
    decayed sum)."""

    def __init__(
        self,
        scores: _VectorScores | _GivenScores,
        counts: _Counts,
        *,
        shape: tuple[int, int, int, int],
        gamma: float,
        causal: bool,
        chunk: int,
        dtype: torch.dtype,
        device: torch.device,
        key_padding_mask: Tensor | None,
        score_names: str,
    ):
        self.scores, self.counts, self.shape = scores, counts, shape
        self.gamma, self.causal, self.chunk = gamma, causal, chunk
        self.dtype, self.device, self.score_names = dtype, device, score_names
        self.log_gamma = lg = math.log(gamma)
        pos = torch.arange(chunk + 1, dtype=dtype, device=device)
        self.grow = torch.exp(-lg * pos)  # gamma^(-i) <= e^span
        self.shrink = torch.exp(lg * pos)  # gamma^i
        self.rowlog = lg * pos  # i log gamma
        info = torch.finfo(dtype)
        self.tiny = info.tiny
        self.z_factor = _Z_SAFETY * shape[3] * info.tiny / info.eps
        batch, length = shape[0], shape[2]
        if key_padding_mask is None:
            self.first = [0] * batch
        else:  # first key that is not padded, per batch element (L if none)
            keep = ~key_padding_mask
            first = torch.where(keep.any(1), keep.to(torch.int8).argmax(1), length)
            self.first = [int(f) for f in first.tolist()]
        self.first_t = torch.tensor(self.first, device=device)

    def _empty(self, start: int, stop: int) -> Tensor | None:
        """(batch, 1, C) bool, True for rows with an empty histogram; None if there are
        none in the chunk (the codes of a key always have mass 1, so only the mask
        matters)."""
        length = self.shape[2]
        if self.causal:
            if all(f <= start for f in self.first):
                return None
            pos = torch.arange(start, stop, device=self.device)
            return (pos[None, :] < self.first_t[:, None])[:, None, :]
        if all(f < length for f in self.first):
            return None
        return (self.first_t == length)[:, None, None].expand(-1, 1, stop - start)

    # -- the reverse pass of bidirectional attention -------------------------------------

    def _suffix_state(self, k: int, after: Tensor, scratch: Tensor) -> Tensor:
        """log sum_{j >= start_k} gamma^(j - start_k) c_j from that of chunk k + 1."""
        batch, books, length, words = self.shape
        start = k * self.chunk
        stop = min(start + self.chunk, length)
        size = stop - start
        x = scratch[: batch * books * words * size].view(batch, books, words, size)
        self.counts.into(start, stop, self.shrink[:size], x)
        return torch.logaddexp(x.sum(-1).log_(), after + size * self.log_gamma)

    def _later_states(self, lo: int, hi: int, end: Tensor, scratch: Tensor) -> Iterator[Tensor]:
        """For k = lo .. hi - 1 in order: the log decayed histogram of the keys from chunk
        k + 1 on (``end``: that of chunk ``hi``). Checkpointed: at most _FANOUT states per
        level of recursion are held, at the price of one more reverse pass per level."""
        if hi - lo <= _FANOUT:
            states = [end]
            for k in range(hi - 1, lo, -1):
                states.append(self._suffix_state(k, states[-1], scratch))
            yield from reversed(states)
            return
        step = -(-(hi - lo) // _FANOUT)
        parts = [*range(lo, hi, step), hi]
        kept = {hi: end}
        state = end
        for k in range(hi - 1, parts[1] - 1, -1):
            state = self._suffix_state(k, state, scratch)
            if k in parts:
                kept[k] = state
        for a, b in zip(parts[:-1], parts[1:], strict=True):
            yield from self._later_states(a, b, kept[b], scratch)

    # -- one chunk --------------------------------------------------------------------------

    def _fast(self, start, stop, s, carry, later, x, y, want_log_norm):
        """Linear-domain weights into ``s`` (raw scores on entry); None if the chunk must
        be recomputed exactly (see the class docstring)."""
        size = stop - start
        lg, scale, tiny = self.log_gamma, self.scores.scale, self.tiny
        screen = s.sum()  # finite unless some score is not (or the sum overflows)
        row_max = s.amax(2)  # (batch, B, C), raw scores
        if self.causal:  # E = exp(scale s - scale max_w s + i log gamma)
            neg_shift = torch.add(self.rowlog[:size], row_max, alpha=-scale)
        else:
            neg_shift = row_max.mul(-scale)
        torch.add(neg_shift.unsqueeze(2), s, alpha=scale, out=s).exp_()

        carried = torch.exp(carry + lg)  # gamma * H at the previous chunk's last row
        carried.masked_fill_(carried < tiny, 0.0)  # subnormal: kept exactly in the log state
        self.counts.into(start, stop, self.grow[:size], x)
        x[..., 0] += carried
        x.cumsum_(-1)  # X[i] = H[i] / gamma^i
        last = x[..., size - 1]
        lost = torch.where(carried > 0, -torch.inf, carry + size * lg)
        next_carry = torch.logaddexp(torch.log(last) + (size - 1) * lg, lost)
        if self.causal:
            bound = last.amax()  # X is non-decreasing along the chunk
        else:
            ahead = torch.exp(later + lg)
            ahead.masked_fill_(ahead < tiny, 0.0)
            y[..., 0] = ahead
            self.counts.into(start + 1, stop, self.grow[: size - 1], y[..., 1:], flip=True)
            y.cumsum_(-1)  # y[k] = (sum over keys after row size-1-k) / gamma^k
            x.mul_(self.shrink[:size])
            y.mul_(self.shrink[:size])
            x.add_(y.flip(-1))  # H
            bound = x.amax()
        s.mul_(x)
        norm = s.sum(2)  # (batch, B, C)
        ok = norm >= (bound + 3.0) * self.z_factor  # False for NaN
        empty = self._empty(start, stop)
        if empty is not None:
            ok = torch.where(empty, norm == 0, ok)
        if not bool(ok.all() & torch.isfinite(screen)):
            return None
        s.mul_(norm.clamp_min(tiny).reciprocal_().unsqueeze(2))
        log_norm = norm.log_().add_(row_max, alpha=scale) if want_log_norm else None
        return log_norm, next_carry

    def _exact(self, start, stop, s, carry, later, x, y, want_log_norm):
        """Log-domain weights into ``s`` (raw scores on entry): softmax_w(s + log H)."""
        size = stop - start
        if self.scores.scale != 1.0:
            s.mul_(self.scores.scale)
        self.counts.into(start, stop, self.grow[:size], x)
        x.cumsum_(-1)
        log_hist = torch.logaddexp(
            torch.log(x).add_(self.rowlog[:size]),  # the chunk's own keys
            carry.unsqueeze(-1) + self.rowlog[1 : size + 1],  # earlier keys
        )
        next_carry = log_hist[..., size - 1].clone()
        if not self.causal:
            y[..., 0] = 0.0
            self.counts.into(start + 1, stop, self.grow[: size - 1], y[..., 1:], flip=True)
            y.cumsum_(-1)
            within = torch.log(y).add_(self.rowlog[:size]).flip(-1)  # later keys in the chunk
            beyond = later.unsqueeze(-1) + self.rowlog[1 : size + 1].flip(0)  # later chunks
            log_hist = torch.logaddexp(log_hist, torch.logaddexp(within, beyond))
        empty = (log_hist == -torch.inf).all(2, keepdim=True)
        finite = torch.isfinite(s)
        if not bool(finite.all()):
            self.scores.check_inputs(start, stop)  # a NaN / Inf input, even in an empty row
            if not bool((finite | empty).all()):
                raise _scores_overflow(self.score_names, s.dtype)
        s.add_(log_hist)
        log_norm = torch.logsumexp(s, dim=2)  # subtracts the row maximum
        s.sub_(log_norm.unsqueeze(2)).exp_().masked_fill_(empty, 0.0)
        if not want_log_norm:
            return None, next_carry
        return log_norm.masked_fill_(empty.squeeze(2), -torch.inf), next_carry

    def run(
        self,
        weights_at: Callable[[int, int], Tensor],
        done: Callable[[int, int, Tensor, Tensor | None], None],
        want_log_norm: bool,
    ) -> None:
        """For each chunk: ``weights_at(start, stop)`` gives the (batch, B, W, C) tensor the
        weights are computed in, ``done(start, stop, weights, log_norm)`` consumes them
        (``log_norm`` = logsumexp_w(s + log H), (batch, B, C), when ``want_log_norm``)."""
        batch, books, length, words = self.shape
        row = batch * books * words
        x_flat = torch.empty(row * self.chunk, dtype=self.dtype, device=self.device)
        y_flat = None if self.causal else torch.empty_like(x_flat)
        carry = torch.full((batch, books, words), -torch.inf, dtype=self.dtype, device=self.device)
        laters = None
        if not self.causal:
            chunks = -(-length // self.chunk)
            laters = self._later_states(0, chunks, carry, x_flat)
        for start in range(0, length, self.chunk):
            stop = min(start + self.chunk, length)
            size = stop - start
            later = next(laters) if laters is not None else None
            x = x_flat[: row * size].view(batch, books, words, size)
            y = None if y_flat is None else y_flat[: row * size].view(batch, books, words, size)
            s = weights_at(start, stop)
            self.scores.into(start, stop, s)
            result = None
            if not _ALWAYS_EXACT:
                result = self._fast(start, stop, s, carry, later, x, y, want_log_norm)
            if result is None:
                self.scores.into(start, stop, s)
                result = self._exact(start, stop, s, carry, later, x, y, want_log_norm)
            log_norm, carry = result
            done(start, stop, s, log_norm)


def _scores_overflow(names: str, dtype: torch.dtype) -> FloatingPointError:
    return FloatingPointError(
        f"LISA: the scores scale * <{names}> are not finite in {dtype} although the inputs "
        "are: their magnitude overflows the dtype. Rescale query/codewords or use float64"
    )


def _check_output(out: Tensor, dtype: torch.dtype, compute: torch.dtype) -> Tensor:
    """``out`` cast to ``dtype``; FloatingPointError if it is not finite (the weights are a
    convex combination, so only value_codewords too large for ``dtype`` can cause it)."""
    # one fused, NaN-propagating reduction: no (L, dv)-sized temporaries, so the check adds
    # nothing to the call's peak memory (and it streams at memory speed, unlike
    # vector_norm(ord=inf))
    low, high = torch.aminmax(out.detach())
    limit = torch.finfo(dtype).max
    if not bool((low >= -limit) & (high <= limit)):
        where = f"{dtype}" if dtype == compute else f"{dtype} (computed in {compute})"
        raise FloatingPointError(
            f"LISA: the output overflows {where}: value_codewords (summed over B codebooks) "
            "are too large for this dtype"
        )
    return out.to(dtype)


def _decayed_sums(u: Tensor, *, gamma: float, causal: bool, chunk: int) -> Tensor:
    """The transpose of the decayed histogram along dim 2 of u (batch, B, L, W):
    R[j] = sum_{l >= j} gamma^(l - j) u[l] (causal) or sum_l gamma^|l - j| u[l]
    (bidirectional). ``u`` is signed, so this runs in the linear
    domain; the carried sums only ever shrink (times gamma^chunk per chunk)."""
    length = u.shape[2]
    decay = _ChunkDecay(chunk, math.log(gamma), u.dtype, u.device)
    starts = list(range(0, length, chunk))
    out = torch.empty_like(u)
    later = torch.zeros_like(u[:, :, 0])  # sum_{l >= stop} gamma^(l - stop) u[l]
    for start in reversed(starts):
        stop = min(start + chunk, length)
        size = stop - start
        suffix = decay.prefix(u[:, :, start:stop].flip(2)).flip(2)  # within the chunk, l >= j
        out[:, :, start:stop] = suffix + later[:, :, None] * decay.shrink[1 : size + 1].flip(0)
        later = suffix[:, :, 0] + later * decay.shrink[size]
    if not causal:
        earlier = torch.zeros_like(later)  # sum_{l < start} gamma^(start - 1 - l) u[l]
        for start in starts:
            stop = min(start + chunk, length)
            size = stop - start
            prefix = decay.prefix(u[:, :, start:stop])  # sum_{start <= l <= j} gamma^(j-l) u[l]
            out[:, :, start:stop] += earlier[:, :, None] * decay.shrink[1 : size + 1]
            out[:, :, start + 1 : stop] += prefix[:, :, :-1] * decay.shrink[1]
            earlier = prefix[:, :, -1] + earlier * decay.shrink[size]
    return out


class _HistogramAttention(torch.autograd.Function):
    """out = sum_b sum_w softmax_w(S + log H)[b, l, w] Vc[b, w], with H the decayed
    histogram of the codes; the queries (or the given scores), float codes and Vc may
    need gradients.

    Forward: the scan of :class:`_Scan` over the whole sequence, keeping the weights A
    (batch, B, W, L) (and, when the codes need a gradient, the scores and the row
    log-normaliser log Z = logsumexp_w(S + log H)). Backward, with g = dL/dout and
    G[b, l, w] = <g[l], Vc[b, w]>::

        dL/dVc[b, w] = sum_l A[b, l, w] g[l]
        dL/dS        = A * (G - sum_w A G)
        dL/dH        = exp(S - log Z) * (G - sum_w A G)      (= dL/dS / H, finite at H = 0)
        dL/dc[j]     = sum_{l visible from j} gamma^|l - j| dL/dH[l]

    and dL/dq, dL/dKc from dL/dS by two matrix products. ``exp(S - log Z)`` is bounded by
    exp(max_w S - min_w S) * W whenever row l sees its own key; only a query row whose own
    key is padded and whose nearest visible key is more than ~span / -log(gamma) positions
    away could overflow it; that raises instead of returning a non-finite gradient."""

    @staticmethod
    def forward(ctx, scan, query, key_codewords, scores, counts, value_codewords):
        batch, books, length, words = scan.shape
        dv = value_codewords.shape[-1]
        want_log_norm = counts is not None and ctx.needs_input_grad[4]
        weights = value_codewords.new_empty(batch, books, words, length)
        log_norm = value_codewords.new_empty(batch, books, length) if want_log_norm else None

        def done(start, stop, _weights, chunk_log_norm):
            if want_log_norm:
                log_norm[..., start:stop] = chunk_log_norm

        scan.run(lambda a, b: weights[..., a:b], done, want_log_norm)
        full_scores = None
        if want_log_norm:  # dL/dH needs exp(S - log Z)
            full_scores = value_codewords.new_empty(batch, books, words, length)
            scan.scores.into(0, length, full_scores)
            full_scores.mul_(scan.scores.scale)
        values = value_codewords.reshape(books * words, dv)
        out = value_codewords.new_empty(batch, length, dv)
        for n in range(batch):
            torch.mm(weights[n].view(books * words, length).t(), values, out=out[n])
        ctx.scan = scan
        ctx.save_for_backward(weights, log_norm, full_scores, value_codewords)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        weights, log_norm, scores, value_codewords = ctx.saved_tensors
        scan = ctx.scan
        batch, books, words, length = weights.shape
        dv = value_codewords.shape[-1]
        need_query, need_kc, need_scores, need_counts, need_values = ctx.needs_input_grad[1:]
        grad_query = grad_kc = grad_scores = grad_counts = grad_values = None
        flat = weights.view(batch, books * words, length)
        if need_values:
            grad_values = torch.bmm(flat, grad_out).sum(0).view(books, words, dv)
        if not (need_query or need_kc or need_scores or need_counts):
            return None, None, None, None, None, grad_values
        values = value_codewords.reshape(books * words, dv)
        g = weights.new_empty(batch, books * words, length)
        for n in range(batch):
            torch.mm(values, grad_out[n].t(), out=g[n])
        g = g.view(batch, books, words, length)  # G
        if need_counts:
            # exp(S - log Z); empty rows (log Z = -inf) do not depend on H: factor 0 (their
            # scores are never used and may be non-finite)
            empty = (log_norm == -torch.inf).unsqueeze(2)
            factor = torch.exp(scores - log_norm.unsqueeze(2)).masked_fill_(empty, 0)
            grad_h = g - (weights * g).sum(2, keepdim=True)
            grad_h.mul_(factor)
        d = g.mul_(weights)  # in place: A G
        d.addcmul_(weights, d.sum(2, keepdim=True), value=-1.0)  # dL/dS (scaled scores)
        if need_counts:
            if bool((log_norm == torch.inf).any()):
                raise FloatingPointError(
                    f"LISA backward: log-normaliser overflow in {scores.dtype} (scores too "
                    "large); rescale query/codewords or use float64"
                )
            grad_counts = _decayed_sums(
                grad_h.transpose(2, 3), gamma=scan.gamma, causal=scan.causal, chunk=scan.chunk
            )
            if scan.counts.mask is not None:
                grad_counts = grad_counts * (~scan.counts.mask).to(g.dtype)[:, None, :, None]
            # one reduction settles the common case (isfinite is 4 passes and 2 fresh
            # tensors of this size); the element-wise test only when the sum is not finite
            finite = bool(torch.isfinite(grad_counts.sum()))
            if not (finite or bool(torch.isfinite(grad_counts).all())):
                raise FloatingPointError(
                    "LISA backward: the gradient with respect to the codes overflowed; a "
                    "query row whose own key is padded sees only keys too far back for "
                    f"gamma={scan.gamma} in {scores.dtype} (use float64 or shorter padding runs)"
                )
        if need_scores:
            grad_scores = d.transpose(2, 3)
        source = scan.scores
        if need_query:  # dq[n, b] = scale * dS[n, b]^T Kc[b]
            grad_query = torch.matmul(d.transpose(2, 3), source.key_codewords * source.scale)
        if need_kc:  # dKc[b] = scale * sum_n dS[n, b] q[n, b]
            grad_kc = torch.matmul(d, source.query).sum(0).mul_(source.scale)
        return None, grad_query, grad_kc, grad_scores, grad_counts, grad_values


def _histogram_scan(
    scores: _VectorScores | _GivenScores,
    codes: Tensor,
    value_codewords: Tensor,
    *,
    shape: tuple[int, int, int, int],
    gamma: float,
    causal: bool,
    chunk_size: int,
    dtype: torch.dtype,
    grad: bool,
    key_padding_mask: Tensor | None,
    score_names: str,
    grad_inputs: tuple[Tensor | None, Tensor | None, Tensor | None] = (None, None, None),
    counts: Tensor | None = None,
) -> Tensor:
    """The shared scan, in ``dtype`` (the compute dtype). ``shape`` = (batch, B, L, W).
    Returns (batch, L, dv) in ``dtype``. ``codes``: hard or soft key codes; ``counts``: a
    float (batch, B, L, W) tensor of codes that takes a gradient (used instead of
    ``codes``). ``grad``: some input needs a gradient; then the scan runs inside
    :class:`_HistogramAttention` with ``grad_inputs`` = (query, key_codewords, scores),
    the tensors that ``scores`` reads (None where absent). ``score_names``: the arguments
    the scores are formed from, named by the overflow error."""
    batch, books, length, words = shape
    dv = value_codewords.shape[-1]
    chunk = _scan_chunk(chunk_size, gamma, dtype, shape=shape, dv=dv, grad=grad, causal=causal)
    scan = _Scan(
        scores,
        _Counts(codes if counts is None else counts, key_padding_mask, dtype),
        shape=shape,
        gamma=gamma,
        causal=causal,
        chunk=chunk,
        dtype=dtype,
        device=value_codewords.device,
        key_padding_mask=key_padding_mask,
        score_names=score_names,
    )
    if grad:
        return _HistogramAttention.apply(scan, *grad_inputs, counts, value_codewords)
    out = value_codewords.new_empty(batch, length, dv)
    values = value_codewords.reshape(books * words, dv)
    buffer = value_codewords.new_empty(batch * books * words * chunk)

    def weights_at(start: int, stop: int) -> Tensor:
        return buffer[: batch * books * words * (stop - start)].view(
            batch, books, words, stop - start
        )

    def done(start: int, stop: int, weights: Tensor, _log_norm) -> None:
        flat = weights.view(batch, books * words, stop - start)
        for n in range(batch):
            torch.mm(flat[n].t(), values, out=out[n, start:stop])

    scan.run(weights_at, done, want_log_norm=False)
    return out


def _triton_backend(query: object, backend: str):
    """The ``lisa_triton`` module when this call runs the Triton kernels, else None.

    ``backend``: "torch" never; "triton" always (CPU tensors through Triton's interpreter);
    "auto" for float32/float16/bfloat16 CUDA tensors when triton imports, unless the
    environment has LISA_BENCH_TRITON=0; LISA_BENCH_TRITON=interpret forces it like
    "triton" (tests on CPU)."""
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
    if backend == "torch" or not isinstance(query, Tensor):
        return None  # not a tensor: the torch path's checks name the error
    setting = os.environ.get("LISA_BENCH_TRITON", "").strip().lower()
    forced = backend == "triton" or setting == "interpret"
    if not forced and (setting in ("0", "false", "off") or not query.is_cuda):
        return None
    if not forced and query.dtype == torch.float64:
        return None  # float64 tl.dot is not exercised on GPUs yet: the torch path
    try:
        from impls.attention import lisa_triton
    except ImportError:
        if forced:
            raise
        return None
    return lisa_triton


def lisa_attention(
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
    backend: str = "auto",
) -> Tensor:
    """LISA attention with vector queries.

    Args:
        query: (batch, B, L, d) float — one query vector per codebook and position.
        key_codes: (batch, B, L) integer hard codes in [0, W), or (batch, B, L, W) soft
            codes (non-negative, summing to 1 over W).
        key_codewords: (B, W, d) key codewords Kc.
        value_codewords: (B, W, dv) value codewords Vc.
        gamma: decay in (0, 1]; the histogram weighs key j by gamma^|l - j|.
        causal: attend to j <= l only (True) or to every position (False).
        key_padding_mask: (batch, L) bool, True = padded key (contributes nothing).
        scale: score scale, default 1/sqrt(d).
        chunk_size: positions per scan step; a speed knob, the result does not depend on it.
        backend: "auto" (the Triton kernels of ``lisa_triton`` for CUDA tensors when
            triton imports; LISA_BENCH_TRITON=0 disables, =interpret forces them on CPU),
            "torch" or "triton" (see :func:`_triton_backend`).

    Returns:
        (batch, L, dv), in the dtype of ``query``, summed over the B codebooks; float16 and
        bfloat16 inputs are computed in float32 and the result rounded back (see the module
        docstring for the tolerance). Rows with an empty histogram are exactly 0.

    Raises:
        FloatingPointError: the scores scale * <query, key_codewords> overflow although the
            inputs are finite, or the output overflows its dtype (never a silent 0).
    """
    triton_impl = _triton_backend(query, backend)
    if triton_impl is not None:
        return triton_impl.lisa_attention_triton(
            query,
            key_codes,
            key_codewords,
            value_codewords,
            gamma=gamma,
            causal=causal,
            key_padding_mask=key_padding_mask,
            scale=scale,
            chunk_size=chunk_size,
        )
    batch, books, length, dim = check_query("query", query, finite=False)  # see _VectorScores
    words = check_codewords(key_codewords, value_codewords, books, dim, query)
    check_codes("key_codes", key_codes, (batch, books, length), words, query)
    check_padding_mask(key_padding_mask, batch, length, query.device)
    gamma = check_gamma(gamma)
    scale = check_options(causal, scale, chunk_size, dim)
    grad = _needs_grad(query, key_codes, key_codewords, value_codewords)
    work = compute_dtype(query.dtype)
    q, kc, vc = (t.to(work) for t in (query, key_codewords, value_codewords))
    codes = key_codes.to(work) if key_codes.is_floating_point() else key_codes

    out = _histogram_scan(
        _VectorScores(q, kc, scale),
        codes,
        vc,
        shape=(batch, books, length, words),
        gamma=gamma,
        causal=causal,
        chunk_size=chunk_size,
        dtype=work,
        grad=grad,
        key_padding_mask=key_padding_mask,
        score_names="query, key_codewords",
        grad_inputs=(q, kc, None),
        counts=codes if grad and codes.is_floating_point() and codes.requires_grad else None,
    )
    return _check_output(out, query.dtype, work)


def lisa_attention_cached(
    query_codes: Tensor,
    query_codewords: Tensor,
    key_codes: Tensor,
    key_codewords: Tensor,
    value_codewords: Tensor,
    *,
    gamma: float = 1.0,
    causal: bool = True,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
    chunk_size: int = 512,
    query_code_probs: Tensor | None = None,
    key_code_probs: Tensor | None = None,
) -> Tensor:
    """LISA attention with quantised queries (LISA-Base's cached-table path).

    The table T[b] = scale * Qc[b] Kc[b]^T, (B, W, W), is built once; the scores of a query
    with hard code u are the row T[b, u]; with soft (or straight-through one-hot) query
    codes p they are p @ T[b]. Equal to :func:`lisa_attention` with
    ``query[n, b, l] = Qc[b, query_codes[n, b, l]]``.

    Args:
        query_codes: (batch, B, L) integer codes in [0, W) or (batch, B, L, W) soft codes.
        query_codewords: (B, W, d) query codewords Qc.
        query_code_probs, key_code_probs: optional (batch, B, L, W) soft codes that take
            the straight-through gradient of integer ``query_codes`` / ``key_codes``: the
            values are those of the hard codes, the gradient that of the one-hots
            ``onehot + p - p.detach()`` (LISA-Base training). Query scores stay a gather
            of the table (see ``lisa_straight_through``). Ignored without autograd.
        Other arguments, the result and the errors: as in :func:`lisa_attention` (scores
        from an overflowing table Qc Kc^T raise FloatingPointError naming query_codewords
        and key_codewords).
    """
    if not isinstance(query_codewords, Tensor):
        raise TypeError(f"query_codewords must be a torch.Tensor, got {type(query_codewords)}")
    if query_codewords.dim() != 3:
        raise ValueError(
            f"query_codewords must have rank 3 (B, W, d), got shape {tuple(query_codewords.shape)}"
        )
    books, words_q, dim = query_codewords.shape
    words = check_codewords(key_codewords, value_codewords, books, dim, query_codewords)
    if words_q != words:
        raise ValueError(f"query_codewords has W={words_q}, key_codewords has W={words}")
    check_query("query_codewords", query_codewords.unsqueeze(0))
    if not isinstance(query_codes, Tensor) or query_codes.dim() not in (3, 4):
        raise ValueError("query_codes must be a tensor of shape (batch, B, L) or (batch, B, L, W)")
    batch, _, length = query_codes.shape[:3]
    check_codes("query_codes", query_codes, (batch, books, length), words, query_codewords)
    check_codes("key_codes", key_codes, (batch, books, length), words, query_codewords)
    for name, probs, codes in (
        ("query_code_probs", query_code_probs, query_codes),
        ("key_code_probs", key_code_probs, key_codes),
    ):
        if probs is None:
            continue
        if codes.is_floating_point():
            raise ValueError(
                f"{name} goes with integer {name[:-6]}s (hard codes); got soft {name[:-6]}s"
            )
        check_codes(name, probs, (batch, books, length), words, query_codewords)
    check_padding_mask(key_padding_mask, batch, length, query_codewords.device)
    gamma = check_gamma(gamma)
    scale = check_options(causal, scale, chunk_size, dim)

    work = compute_dtype(query_codewords.dtype)
    dtype = query_codewords.dtype
    if work != dtype:  # half precision: accumulate in float32
        query_codewords, key_codewords, value_codewords = (
            t.to(work) for t in (query_codewords, key_codewords, value_codewords)
        )
        query_codes, key_codes = (
            c.to(work) if c.is_floating_point() else c for c in (query_codes, key_codes)
        )
        query_code_probs, key_code_probs = (
            None if p is None else p.to(work) for p in (query_code_probs, key_code_probs)
        )
    table = torch.einsum("bud,bwd->buw", query_codewords, key_codewords) * scale  # (B, W, W)
    grad = _needs_grad(
        query_codes,
        query_codewords,
        key_codes,
        key_codewords,
        value_codewords,
        *(p for p in (query_code_probs, key_code_probs) if p is not None),
    )

    def scores(start: int, stop: int) -> Tensor:
        codes = query_codes[:, :, start:stop]
        if codes.is_floating_point():
            return torch.einsum("nbcu,buw->nbcw", codes, table)
        probs = None
        if grad and query_code_probs is not None:
            probs = query_code_probs[:, :, start:stop]
        return straight_through_rows(table, codes, probs)  # gather: (batch, B, C, W)

    full_scores = counts = None
    if grad:  # the scores of the whole sequence carry the gradient into table and probs
        full_scores = scores(0, length)
        if key_codes.is_floating_point() and key_codes.requires_grad:
            counts = key_codes
        elif key_code_probs is not None and key_code_probs.requires_grad:
            one_hot = torch.nn.functional.one_hot(key_codes.long(), words).to(work)
            counts = one_hot + (key_code_probs - key_code_probs.detach())
    out = _histogram_scan(
        _GivenScores(scores if full_scores is None else lambda a, b: full_scores[:, :, a:b]),
        key_codes,
        value_codewords,
        shape=(batch, books, length, words),
        gamma=gamma,
        causal=causal,
        chunk_size=chunk_size,
        dtype=work,
        grad=grad,
        key_padding_mask=key_padding_mask,
        score_names="query_codewords, key_codewords",
        grad_inputs=(None, None, full_scores),
        counts=counts,
    )
    return _check_output(out, dtype, work)


def operator_cost(
    length: int, books: int, words: int, dim: int, *, backward: bool, itemsize: int = 4
) -> Cost:
    """The LISA operator on a (1, B, L, d) query with hard key codes: scores 2 L B W d,
    merging the codeword values 2 L B W d; traffic: the query read, the codes read, the
    (L, d) output written (backward: the output gradient read and the query gradient
    written); working memory the output and its per-codebook partial sum plus a chunk's
    (B, C, W) score and state tensors (backward keeps the chunk activations and a query
    gradient)."""
    n = length
    chunk = min(512, n)
    flops = (3 if backward else 1) * 4.0 * n * books * words * dim
    traffic = itemsize * n * (books * dim + dim) + 8 * n * books
    if backward:
        traffic += itemsize * n * (dim + books * dim)
    forward = 2 * n * dim + 12 * books * chunk * words
    working = (
        forward if not backward else (3 * forward + 3 * books * n * dim + 4 * books * n * words)
    )
    return Cost(flops, float(traffic), int(itemsize * working))
