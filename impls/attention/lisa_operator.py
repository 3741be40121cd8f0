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

__all__ = ["lisa_attention", "lisa_attention_cached", "effective_chunk_size"]

ScoreFn = Callable[[int, int], Tensor]


def effective_chunk_size(chunk_size: int, gamma: float, dtype: torch.dtype) -> int:
    """Chunk length actually used: ``chunk_size`` shortened so that gamma^(-chunk) stays
    inside the range of ``dtype`` (45% of its exponent range), so that neither
    gamma^(-i) nor gamma^(+i) over a chunk can overflow or leave the normal range."""
    log_gamma = math.log(gamma)
    if log_gamma == 0.0:
        return chunk_size
    span = 0.45 * -math.log(torch.finfo(dtype).tiny)  # ~39 for float32, ~318 for float64
    return max(1, min(chunk_size, int(span / -log_gamma)))


class _ChunkDecay:
    """Decay factors for offsets 0..chunk within a chunk, computed once per scan."""

    def __init__(self, chunk: int, log_gamma: float, dtype: torch.dtype, device: torch.device):
        self.log_gamma = log_gamma
        pos = torch.arange(chunk + 1, device=device, dtype=dtype)[:, None]
        self.grow = torch.exp(-log_gamma * pos)  # gamma^(-i), at most e^span
        self.shrink = torch.exp(log_gamma * pos)  # gamma^(+i)
        self.after = (pos + 1) * log_gamma  # log gamma^(i + 1): decay of the carried state

    def prefix(self, counts: Tensor) -> Tensor:
        """P[i] = sum_{j <= i} gamma^(i - j) counts[j] along dim 2 (chunk positions).

        Computed as gamma^i * cumsum(gamma^(-j) counts[j]); the chunk is short enough that
        gamma^(-j) cannot overflow, and all terms are non-negative, so the relative error
        of each entry is that of a plain cumulative sum."""
        if self.log_gamma == 0.0:
            return torch.cumsum(counts, dim=2)
        size = counts.shape[2]
        return torch.cumsum(counts * self.grow[:size], dim=2) * self.shrink[:size]

    def strictly_later(self, counts: Tensor) -> Tensor:
        """Q[i] = sum_{j > i, j in chunk} gamma^(j - i) counts[j] along dim 2."""
        suffix = self.prefix(counts.flip(2)).flip(2)  # sum_{j >= i} gamma^(j - i) c_j
        shifted = torch.zeros_like(suffix)
        shifted[:, :, :-1] = suffix[:, :, 1:]
        return shifted * math.exp(self.log_gamma)


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _counts_fn(
    key_codes: Tensor,
    num_codewords: int,
    key_padding_mask: Tensor | None,
    dtype: torch.dtype,
    key_code_probs: Tensor | None = None,
) -> Callable[[int, int], Tensor]:
    """Returns counts(start, stop) -> (batch, B, stop - start, W) codeword counts; with
    ``key_code_probs`` the one-hots are straight-through (gradient into the probs)."""

    def counts(start: int, stop: int) -> Tensor:
        codes = key_codes[:, :, start:stop]
        if codes.is_floating_point():
            c = codes
        else:
            c = torch.zeros(*codes.shape, num_codewords, dtype=dtype, device=codes.device)
            c.scatter_(-1, codes.unsqueeze(-1), 1.0)
            if key_code_probs is not None and key_code_probs.requires_grad:
                probs = key_code_probs[:, :, start:stop]
                c = c + (probs - probs.detach())
        if key_padding_mask is not None:
            keep = (~key_padding_mask[:, start:stop]).to(dtype)
            c = c * keep[:, None, :, None]
        return c

    return counts


def _log_histograms(
    counts: Callable[[int, int], Tensor],
    *,
    shape: tuple[int, int, int, int],
    gamma: float,
    causal: bool,
    chunk: int,
    dtype: torch.dtype,
    device: torch.device,
) -> Iterator[tuple[int, int, Tensor]]:
    """Yields ``(start, stop, log H[:, :, start:stop])`` chunk by chunk, log H of shape
    (batch, B, stop - start, W) with -inf for empty entries. ``shape`` = (batch, B, L, W).
    Runs without autograd (the gradient is :class:`_HistogramAttention`'s backward)."""
    batch, books, length, words = shape
    log_gamma = math.log(gamma)
    starts = list(range(0, length, chunk))
    decay = _ChunkDecay(chunk, log_gamma, dtype, device)
    empty_state = torch.full((batch, books, words), -torch.inf, dtype=dtype, device=device)

    # Bidirectional: log of sum_{j >= start_k} gamma^(j - start_k) c_j at every chunk start.
    later_states: list[Tensor] = []
    if not causal:
        state = empty_state
        later_states = [state]
        for start in reversed(starts):
            stop = min(start + chunk, length)
            suffix0 = decay.prefix(counts(start, stop).flip(2))[:, :, -1]
            state = torch.logaddexp(torch.log(suffix0), state + (stop - start) * log_gamma)
            later_states.append(state)
        later_states.reverse()  # later_states[k] belongs to starts[k]; last = empty

    carry = empty_state  # log H at the last position of the previous chunk
    for k, start in enumerate(starts):
        stop = min(start + chunk, length)
        c = counts(start, stop)
        log_hist = torch.logaddexp(
            carry[:, :, None, :] + decay.after[: stop - start], torch.log(decay.prefix(c))
        )
        carry = log_hist[:, :, -1]
        if not causal:
            # keys after the chunk are gamma^(stop - i) = gamma^(size - i) away from i
            ahead = torch.logaddexp(
                torch.log(decay.strictly_later(c)),
                later_states[k + 1][:, :, None, :] + decay.after[: stop - start].flip(0),
            )
            log_hist = torch.logaddexp(log_hist, ahead)
        yield start, stop, log_hist


def _empty_rows(log_hist: Tensor) -> Tensor:
    """(..., 1) bool: True where the histogram row is empty, i.e. log H = -inf for every w
    (nothing visible, or every visible key padded)."""
    return (log_hist == -torch.inf).all(dim=-1, keepdim=True)


def _weights(logits: Tensor, empty: Tensor) -> Tensor:
    """softmax over W of ``logits`` = s + log H (..., W), row maximum subtracted; rows
    marked ``empty`` (log H = -inf throughout) give weights exactly 0. The scores of the
    other rows are checked finite (:func:`_rows_finite`), so such a row has a finite
    maximum and a well-defined softmax."""
    return torch.softmax(logits, dim=-1).masked_fill_(empty, 0.0)


def _rows_finite(scores: Tensor, empty: Tensor) -> Tensor:
    """0-dim bool: every score of every non-empty row is finite (no synchronisation)."""
    return (torch.isfinite(scores) | empty).all()


def _weights_and_log_norm(logits: Tensor, empty: Tensor) -> tuple[Tensor, Tensor]:
    """(softmax, logsumexp) over W with one exponential pass: weights = exp(logits - log Z).
    Rows marked ``empty``: weights 0, log Z = -inf."""
    log_norm = torch.logsumexp(logits, dim=-1)  # subtracts the row maximum
    weights = torch.exp(logits - log_norm[..., None]).masked_fill_(empty, 0.0)
    return weights, log_norm.masked_fill_(empty[..., 0], -torch.inf)


def _scores_overflow(names: str, dtype: torch.dtype) -> FloatingPointError:
    return FloatingPointError(
        f"LISA: the scores scale * <{names}> are not finite in {dtype} although the inputs "
        "are: their magnitude overflows the dtype. Rescale query/codewords or use float64"
    )


def _check_output(out: Tensor, dtype: torch.dtype, compute: torch.dtype) -> Tensor:
    """``out`` cast to ``dtype``; FloatingPointError if it is not finite (the weights are a
    convex combination, so only value_codewords too large for ``dtype`` can cause it)."""
    # one fused reduction (max |out|, NaN-propagating): no (L, dv)-sized temporaries, so
    # the check adds nothing to the call's peak memory
    peak = torch.linalg.vector_norm(out.detach(), ord=float("inf"))
    if not bool(peak <= torch.finfo(dtype).max):
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
    histogram of ``counts``; all of S, counts and Vc may need gradients.

    Forward: the log-domain scan (no autograd graph; keeps the weights A and the row
    log-normaliser log Z = logsumexp_w(S + log H)). Backward, with g = dL/dout and
    G[b, l, w] = <g[l], Vc[b, w]>::

        dL/dVc[b, w] = sum_l A[b, l, w] g[l]
        dL/dS        = A * (G - sum_w A G)
        dL/dH        = exp(S - log Z) * (G - sum_w A G)      (= dL/dS / H, finite at H = 0)
        dL/dc[j]     = sum_{l visible from j} gamma^|l - j| dL/dH[l]

    ``exp(S - log Z)`` is bounded by exp(max_w S - min_w S) * W whenever row l sees its own
    key; only a query row whose own key is padded and whose nearest visible key is more
    than ~span / -log(gamma) positions away could overflow it; that raises instead of
    returning a non-finite gradient."""

    @staticmethod
    def forward(ctx, scores, counts, value_codewords, gamma, causal, chunk, score_names):
        batch, books, length, words = scores.shape
        weights = torch.empty_like(scores)
        log_norm = scores.new_empty(batch, books, length)
        finite = torch.ones((), dtype=torch.bool, device=scores.device)
        for start, stop, log_hist in _log_histograms(
            lambda a, b: counts[:, :, a:b],
            shape=(batch, books, length, words),
            gamma=gamma,
            causal=causal,
            chunk=chunk,
            dtype=scores.dtype,
            device=scores.device,
        ):
            empty = _empty_rows(log_hist)
            finite &= _rows_finite(scores[:, :, start:stop], empty)
            weights[:, :, start:stop], log_norm[:, :, start:stop] = _weights_and_log_norm(
                scores[:, :, start:stop] + log_hist, empty
            )
        if not bool(finite):
            raise _scores_overflow(score_names, scores.dtype)
        ctx.save_for_backward(scores, weights, log_norm, value_codewords)
        ctx.options = (gamma, causal, chunk)
        return torch.einsum("nblw,bwe->nle", weights, value_codewords)

    @staticmethod
    def backward(ctx, grad_out):
        scores, weights, log_norm, value_codewords = ctx.saved_tensors
        gamma, causal, chunk = ctx.options
        grad_scores = grad_counts = grad_values = None
        if ctx.needs_input_grad[2]:
            grad_values = torch.einsum("nblw,nle->bwe", weights, grad_out)
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            return grad_scores, grad_counts, grad_values, None, None, None, None
        g = torch.einsum("nle,bwe->nblw", grad_out, value_codewords)
        g -= (weights * g).sum(-1, keepdim=True)  # G - sum_w A G
        if ctx.needs_input_grad[0]:
            grad_scores = weights * g
        if ctx.needs_input_grad[1]:
            # exp(S - log Z); empty rows (log Z = -inf) do not depend on H: factor 0 (their
            # scores are never used and may be non-finite)
            empty = (log_norm == -torch.inf)[..., None]
            g *= torch.exp(scores - log_norm[..., None]).masked_fill_(empty, 0.0)
            grad_counts = _decayed_sums(g, gamma=gamma, causal=causal, chunk=chunk)
            if bool((log_norm == torch.inf).any()):
                raise FloatingPointError(
                    f"LISA backward: log-normaliser overflow in {scores.dtype} (scores too "
                    "large); rescale query/codewords or use float64"
                )
            if not torch.isfinite(grad_counts).all():
                raise FloatingPointError(
                    "LISA backward: the gradient with respect to the codes overflowed; a "
                    "query row whose own key is padded sees only keys too far back for "
                    f"gamma={gamma} in {scores.dtype} (use float64 or shorter padding runs)"
                )
        return grad_scores, grad_counts, grad_values, None, None, None, None


def _histogram_scan(
    scores: ScoreFn,
    counts: Callable[[int, int], Tensor],
    value_codewords: Tensor,
    *,
    shape: tuple[int, int, int, int],
    gamma: float,
    causal: bool,
    chunk_size: int,
    dtype: torch.dtype,
    grad: bool,
    score_names: str,
) -> Tensor:
    """The shared scan, in ``dtype`` (the compute dtype). ``shape`` = (batch, B, L, W).
    Returns (batch, L, dv) in ``dtype``. ``grad``: some input needs a gradient; then scores
    and counts are formed for the whole sequence, (batch, B, L, W) each, and go through
    :class:`_HistogramAttention`. ``score_names``: the arguments the scores are formed
    from, named by the overflow error."""
    length = shape[2]
    chunk = effective_chunk_size(chunk_size, gamma, dtype)
    if grad:
        full_scores, full_counts = scores(0, length), counts(0, length)
        return _HistogramAttention.apply(
            full_scores, full_counts, value_codewords, gamma, causal, chunk, score_names
        )
    finite = torch.ones((), dtype=torch.bool, device=value_codewords.device)
    outputs = []
    for start, stop, log_hist in _log_histograms(
        counts,
        shape=shape,
        gamma=gamma,
        causal=causal,
        chunk=chunk,
        dtype=dtype,
        device=value_codewords.device,
    ):
        s = scores(start, stop)  # (batch, B, C, W)
        empty = _empty_rows(log_hist)
        finite &= _rows_finite(s, empty)  # one synchronisation, after the loop
        weights = _weights(s + log_hist, empty)
        outputs.append(torch.einsum("nbcw,bwe->nce", weights, value_codewords))
    if not bool(finite):
        raise _scores_overflow(score_names, dtype)
    return torch.cat(outputs, dim=1)


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

    Returns:
        (batch, L, dv), in the dtype of ``query``, summed over the B codebooks; float16 and
        bfloat16 inputs are computed in float32 and the result rounded back (see the module
        docstring for the tolerance). Rows with an empty histogram are exactly 0.

    Raises:
        FloatingPointError: the scores scale * <query, key_codewords> overflow although the
            inputs are finite, or the output overflows its dtype (never a silent 0).
    """
    batch, books, length, dim = check_query("query", query)
    words = check_codewords(key_codewords, value_codewords, books, dim, query)
    check_codes("key_codes", key_codes, (batch, books, length), words, query)
    check_padding_mask(key_padding_mask, batch, length, query.device)
    gamma = check_gamma(gamma)
    scale = check_options(causal, scale, chunk_size, dim)
    grad = _needs_grad(query, key_codes, key_codewords, value_codewords)
    work = compute_dtype(query.dtype)
    q, kc, vc = (t.to(work) for t in (query, key_codewords, value_codewords))
    codes = key_codes.to(work) if key_codes.is_floating_point() else key_codes

    def scores(start: int, stop: int) -> Tensor:
        return torch.einsum("nbcd,bwd->nbcw", q[:, :, start:stop], kc) * scale

    out = _histogram_scan(
        scores,
        _counts_fn(codes, words, key_padding_mask, work),
        vc,
        shape=(batch, books, length, words),
        gamma=gamma,
        causal=causal,
        chunk_size=chunk_size,
        dtype=work,
        grad=grad,
        score_names="query, key_codewords",
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

    out = _histogram_scan(
        scores,
        _counts_fn(key_codes, words, key_padding_mask, work, key_code_probs),
        value_codewords,
        shape=(batch, books, length, words),
        gamma=gamma,
        causal=causal,
        chunk_size=chunk_size,
        dtype=work,
        grad=grad,
        score_names="query_codewords, key_codewords",
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
