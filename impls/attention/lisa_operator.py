"""The LISA codeword-histogram attention operator (Wu et al., WWW 2021), as a chunked scan.

Per codebook b, query position l and codeword w (W codewords)::

    H[b, l, w] = sum_{j visible from l} gamma^|l - j| * c[b, j, w]       (decayed histogram)
    s[b, l, w] = scale * <q[b, l], Kc[b, w]>                               (scores)
    a[b, l, w] = H[b, l, w] exp(s[b, l, w]) / sum_w' H[b, l, w'] exp(s[b, l, w'])
    out[l]     = sum_b sum_w a[b, l, w] * Vc[b, w]                         (summed over b)

``c[b, j, :]`` is the one-hot of key j's hard code, or its soft code (a probability vector);
padded keys have ``c = 0``. "Visible" means ``j <= l`` when causal, every j otherwise.
A row with an empty histogram (e.g. only padded keys so far) returns zeros.

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
No (L, L) or (L, B, W) tensor is ever formed in the forward pass; peak memory is
O(L * dv + chunk * B * W). (Autograd keeps each chunk's activations for the backward pass.)

Two entry points share the scan:
* :func:`lisa_attention` — queries are vectors, scores are q . Kc.
* :func:`lisa_attention_cached` — queries are codes too (LISA-Base); scores are rows of the
  W x W table T[b] = scale * Qc[b] Kc[b]^T built once, gathered per position.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from impls.attention.lisa_validation import (
    check_codes,
    check_codewords,
    check_gamma,
    check_options,
    check_padding_mask,
    check_query,
)

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


# The three log-domain primitives. With ``grad`` they are built from masked operations so
# that gradients stay finite where log(0) = -inf (an empty histogram entry, a one-hot soft
# code); without it torch's fused operations give the same values faster.


def _safe_log(x: Tensor, grad: bool) -> Tensor:
    """log(x) for x >= 0, with log(0) = -inf."""
    if not grad:
        return torch.log(x)
    positive = x > 0
    return torch.where(
        positive, torch.log(torch.where(positive, x, torch.ones_like(x))), -torch.inf
    )


def _log_add(a: Tensor, b: Tensor, grad: bool) -> Tensor:
    """log(exp(a) + exp(b)), accepting -inf in both arguments (never +inf or NaN)."""
    if not grad:
        return torch.logaddexp(a, b)
    m = torch.maximum(a, b).detach()
    finite = m > -torch.inf
    m = torch.where(finite, m, torch.zeros_like(m))
    total = torch.exp(a - m) + torch.exp(b - m)
    return torch.where(finite, m + torch.log(torch.where(finite, total, torch.ones_like(total))), a)


def _masked_softmax(logits: Tensor, grad: bool) -> Tensor:
    """softmax over the last dim with the row maximum subtracted; all -inf rows give 0."""
    if not grad:
        return torch.softmax(logits, dim=-1).nan_to_num_(nan=0.0)  # NaN only in empty rows
    row_max = logits.amax(dim=-1, keepdim=True).detach()
    row_max = torch.where(row_max > -torch.inf, row_max, torch.zeros_like(row_max))
    weights = torch.exp(logits - row_max)
    total = weights.sum(dim=-1, keepdim=True)
    return weights / torch.where(total > 0, total, torch.ones_like(total))


class _ChunkDecay:
    """Decay factors for positions 0..chunk-1 of a chunk, computed once per scan."""

    def __init__(self, chunk: int, log_gamma: float, dtype: torch.dtype, device: torch.device):
        self.log_gamma = log_gamma
        pos = torch.arange(chunk, device=device, dtype=dtype)[:, None]
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
    key_codes: Tensor, num_codewords: int, key_padding_mask: Tensor | None, dtype: torch.dtype
) -> Callable[[int, int], Tensor]:
    """Returns counts(start, stop) -> (batch, B, stop - start, W) codeword counts."""

    def counts(start: int, stop: int) -> Tensor:
        codes = key_codes[:, :, start:stop]
        if codes.is_floating_point():
            c = codes
        else:
            c = torch.zeros(*codes.shape, num_codewords, dtype=dtype, device=codes.device)
            c.scatter_(-1, codes.unsqueeze(-1), 1.0)
        if key_padding_mask is not None:
            keep = (~key_padding_mask[:, start:stop]).to(dtype)
            c = c * keep[:, None, :, None]
        return c

    return counts


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
) -> Tensor:
    """The shared scan. ``shape`` = (batch, B, L, W). Returns (batch, L, dv). ``grad``:
    some input needs a gradient (selects the gradient-safe log-domain primitives)."""
    batch, books, length, words = shape
    device = value_codewords.device
    log_gamma = math.log(gamma)
    chunk = effective_chunk_size(chunk_size, gamma, dtype)
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
            c = counts(start, stop)
            suffix0 = decay.prefix(c.flip(2))[:, :, -1]  # sum_j gamma^(j - start) c_j
            state = _log_add(_safe_log(suffix0, grad), state + (stop - start) * log_gamma, grad)
            later_states.append(state)
        later_states.reverse()  # later_states[k] belongs to starts[k]; last = empty

    outputs = []
    carry = empty_state  # log H at the last position of the previous chunk
    for k, start in enumerate(starts):
        stop = min(start + chunk, length)
        size = stop - start
        c = counts(start, stop)
        log_hist = _log_add(
            carry[:, :, None, :] + decay.after[:size], _safe_log(decay.prefix(c), grad), grad
        )
        carry = log_hist[:, :, -1]
        if not causal:
            # keys after the chunk are gamma^(stop - i) = gamma^(size - i) away from i
            ahead = _log_add(
                _safe_log(decay.strictly_later(c), grad),
                later_states[k + 1][:, :, None, :] + decay.after[:size].flip(0),
                grad,
            )
            log_hist = _log_add(log_hist, ahead, grad)
        weights = _masked_softmax(scores(start, stop) + log_hist, grad)  # (batch, B, C, W)
        outputs.append(torch.einsum("nbcw,bwe->nce", weights, value_codewords))
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
        (batch, L, dv), in the dtype of ``query``, summed over the B codebooks.
    """
    batch, books, length, dim = check_query("query", query)
    words = check_codewords(key_codewords, value_codewords, books, dim, query)
    check_codes("key_codes", key_codes, (batch, books, length), words, query)
    check_padding_mask(key_padding_mask, batch, length, query.device)
    gamma = check_gamma(gamma)
    scale = check_options(causal, scale, chunk_size, dim)

    def scores(start: int, stop: int) -> Tensor:
        return torch.einsum("nbcd,bwd->nbcw", query[:, :, start:stop], key_codewords) * scale

    return _histogram_scan(
        scores,
        _counts_fn(key_codes, words, key_padding_mask, query.dtype),
        value_codewords,
        shape=(batch, books, length, words),
        gamma=gamma,
        causal=causal,
        chunk_size=chunk_size,
        dtype=query.dtype,
        grad=_needs_grad(query, key_codes, key_codewords, value_codewords),
    )


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
) -> Tensor:
    """LISA attention with quantised queries (LISA-Base's cached-table path).

    The table T[b] = scale * Qc[b] Kc[b]^T, (B, W, W), is built once; the scores of a query
    with hard code u are the row T[b, u]; with soft (or straight-through one-hot) query
    codes p they are p @ T[b]. Equal to :func:`lisa_attention` with
    ``query[n, b, l] = Qc[b, query_codes[n, b, l]]``.

    Args:
        query_codes: (batch, B, L) integer codes in [0, W) or (batch, B, L, W) soft codes.
        query_codewords: (B, W, d) query codewords Qc.
        Other arguments and the result: as in :func:`lisa_attention`.
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
    check_padding_mask(key_padding_mask, batch, length, query_codewords.device)
    gamma = check_gamma(gamma)
    scale = check_options(causal, scale, chunk_size, dim)

    table = torch.einsum("bud,bwd->buw", query_codewords, key_codewords) * scale  # (B, W, W)
    book_index = torch.arange(books, device=table.device)[None, :, None]

    def scores(start: int, stop: int) -> Tensor:
        codes = query_codes[:, :, start:stop]
        if codes.is_floating_point():
            return torch.einsum("nbcu,buw->nbcw", codes, table)
        return table[book_index, codes]  # gather: (batch, B, C, W)

    return _histogram_scan(
        scores,
        _counts_fn(key_codes, words, key_padding_mask, query_codewords.dtype),
        value_codewords,
        shape=(batch, books, length, words),
        gamma=gamma,
        causal=causal,
        chunk_size=chunk_size,
        dtype=query_codewords.dtype,
        grad=_needs_grad(query_codes, query_codewords, key_codes, key_codewords, value_codewords),
    )
