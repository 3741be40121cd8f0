"""LISA (Wu et al., WWW 2021), written out from its definition: the oracle for the operator.

Per batch element n, codebook b, query position l and codeword w (W codewords)::

    p[n, b, j, :]  = one-hot of key j's hard code, or its soft code (a probability vector);
                     0 for a padded key j
    H[n, b, l, w]  = sum_{j visible from l} gamma^|l - j| * p[n, b, j, w]   (decayed histogram)
    s[n, b, l, w]  = scale * <q[n, b, l], Kc[b, w]>          (scale defaults to 1/sqrt(d))
    a[n, b, l, w]  = H[n, b, l, w] exp(s[n, b, l, w] - m) / sum_w' H[n, b, l, w'] exp(s[.., w'] - m)
    out[n, l]      = sum_b sum_w a[n, b, l, w] * Vc[b, w]                 (summed over codebooks)

"Visible" means j <= l when causal, every j otherwise; m = max_w s[n, b, l, w] is the row
maximum, subtracted before exp (it cancels between numerator and denominator). A row whose
histogram is empty (nothing visible, or every visible key padded) gives 0 for that codebook.

Shapes:
    query            (batch, B, L, d)
    key_codes        (batch, B, L) integers in [0, W) (hard), or (batch, B, L, W) soft codes
    key_codewords    (B, W, d)      Kc
    value_codewords  (B, W, dv)     Vc
    key_padding_mask (batch, L) bool, True = padded key
    result           (batch, L, dv), or (batch, B, L, dv) with ``sum_codebooks=False``

Two forms of the same definition:

* :func:`lisa_reference` evaluates the equations above directly, with an (L, L) decay
  matrix and (L, W) histograms. It is linear in the codes, so autograd through it gives the
  true gradient with respect to soft codes too, also where H = 0 (one-hot codes).
* :func:`lisa_via_exact_attention` is the identity the paper states: LISA is exact softmax
  attention (``reference.attention.exact_attention``) over L * W virtual tokens, token
  (j, w) having key Kc[b, w], value Vc[b, w] and additive bias
  ``log(gamma) * |l - j| + log p_j(w)``; future (causal) and padded tokens get bias -inf.
  For hard codes every virtual token but (j, code_j) has bias -inf, so it is attention
  over L tokens with keys Kc[b, code_j] and values Vc[b, code_j] and bias
  ``log(gamma) * |l - j|``, which is how it is evaluated for them.

Both are written to be checked by eye, not to be fast: they build (L, L) and (L, W) (soft:
(L, L * W)) tensors. Use float64. Nothing here imports from ``impls`` or ``harness``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from reference.attention import exact_attention

__all__ = ["decay_bias", "decayed_histogram", "lisa_reference", "lisa_via_exact_attention"]


def _code_probabilities(key_codes: Tensor, words: int, dtype: torch.dtype) -> Tensor:
    """p (batch, B, L, W): soft codes as given, hard codes as one-hot vectors."""
    if key_codes.is_floating_point():
        return key_codes.to(dtype)
    return torch.nn.functional.one_hot(key_codes.long(), words).to(dtype)


def _check(query: Tensor, key_codes: Tensor, key_codewords: Tensor, gamma: float) -> None:
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if query.dim() != 4 or key_codewords.dim() != 3:
        raise ValueError(
            f"query must be (batch, B, L, d) and key_codewords (B, W, d), got "
            f"{tuple(query.shape)} and {tuple(key_codewords.shape)}"
        )
    expected = tuple(query.shape[:3])
    got = tuple(key_codes.shape[:3])
    if got != expected:
        raise ValueError(f"key_codes must start with (batch, B, L) = {expected}, got {got}")


def decay_bias(length: int, gamma: float, *, dtype=torch.float64, device=None) -> Tensor:
    """(L, L) additive bias ``log(gamma) * |l - j|`` (all zeros when gamma = 1)."""
    pos = torch.arange(length, dtype=dtype, device=device)
    return math.log(gamma) * (pos[:, None] - pos[None, :]).abs()


def decayed_histogram(
    key_codes: Tensor,
    words: int,
    *,
    gamma: float,
    causal: bool,
    key_padding_mask: Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """H (batch, B, L, W): ``H[n, b, l, w] = sum_{j visible from l, not padded}
    gamma^|l - j| p[n, b, j, w]``, as one (L, L) decay matrix times the codes."""
    p = _code_probabilities(key_codes, words, dtype)  # (batch, B, L, W)
    length = p.shape[2]
    pos = torch.arange(length, device=p.device)
    distance = (pos[:, None] - pos[None, :]).abs().to(dtype)  # |l - j|
    decay = torch.tensor(gamma, dtype=dtype, device=p.device) ** distance  # (L, L)
    if causal:
        decay = decay * (pos[None, :] <= pos[:, None]).to(dtype)  # keys j <= l only
    if key_padding_mask is not None:
        p = p * (~key_padding_mask).to(dtype)[:, None, :, None]  # padded keys count 0
    return torch.einsum("lj,nbjw->nblw", decay, p)


def lisa_reference(
    query: Tensor,
    key_codes: Tensor,
    key_codewords: Tensor,
    value_codewords: Tensor,
    *,
    gamma: float = 1.0,
    causal: bool = True,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
    sum_codebooks: bool = True,
) -> Tensor:
    """LISA by its definition (module docstring): histogram times exp(score - row max),
    normalised over the W codewords. Returns (batch, L, dv), or (batch, B, L, dv) when
    ``sum_codebooks`` is False.

    Raises FloatingPointError when a row that sees a key has every H * exp(s - m)
    underflow to 0 (its visible codewords score ~700 below the row's best codeword in
    float64): the definition is evaluated in the linear domain, and such a row would
    otherwise be mistaken for an empty one."""
    _check(query, key_codes, key_codewords, gamma)
    words = key_codewords.shape[1]
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    hist = decayed_histogram(
        key_codes,
        words,
        gamma=gamma,
        causal=causal,
        key_padding_mask=key_padding_mask,
        dtype=query.dtype,
    )  # (batch, B, L, W)
    scores = scale * torch.einsum("nbld,bwd->nblw", query, key_codewords)  # (batch, B, L, W)
    row_max = scores.amax(dim=-1, keepdim=True).detach()  # a constant: it cancels below
    unnormalised = hist * torch.exp(scores - row_max)
    total = unnormalised.sum(dim=-1, keepdim=True)
    sees_a_key = (hist > 0).any(dim=-1, keepdim=True)
    if bool((sees_a_key & (total == 0)).any()):
        raise FloatingPointError(
            "lisa_reference: H * exp(s - max s) underflows to 0 in a row that sees a key; "
            "the scores of its visible codewords are too far below the row maximum"
        )
    weights = unnormalised / torch.where(total > 0, total, torch.ones_like(total))  # empty -> 0
    per_book = torch.einsum("nblw,bwe->nble", weights, value_codewords)  # (batch, B, L, dv)
    return per_book.sum(dim=1) if sum_codebooks else per_book


def lisa_via_exact_attention(
    query: Tensor,
    key_codes: Tensor,
    key_codewords: Tensor,
    value_codewords: Tensor,
    *,
    gamma: float = 1.0,
    causal: bool = True,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
    sum_codebooks: bool = True,
) -> Tensor:
    """LISA as exact attention (module docstring, the identity form); per codebook b::

        hard codes: exact_attention(q, Kc[b, code_j], Vc[b, code_j],
                                    bias = log(gamma) |l - j|)                 (L tokens)
        soft codes: exact_attention(q, Kc[b, w], Vc[b, w] for every (j, w),
                                    bias = log(gamma) |l - j| + log p_j(w))   (L * W tokens)

    with causality and key padding as in ``exact_attention`` (as -inf in the bias for the
    virtual tokens). Returns (batch, L, dv), or (batch, B, L, dv) when ``sum_codebooks`` is
    False. Gradients: exact for query and codewords; for soft codes only where every
    p_j(w) > 0 (d log p / dp is infinite at 0)."""
    _check(query, key_codes, key_codewords, gamma)
    batch, books, length, dim = query.shape
    words = key_codewords.shape[1]
    decay = decay_bias(length, gamma, dtype=query.dtype, device=query.device)  # (L, L)
    if not key_codes.is_floating_point():  # hard codes: gather the chosen codewords
        book = torch.arange(books, device=query.device)[None, :, None]
        per_book = exact_attention(
            query,
            key_codewords[book, key_codes],  # (batch, B, L, d)
            value_codewords[book, key_codes],  # (batch, B, L, dv)
            causal=causal,
            key_padding_mask=key_padding_mask,
            bias=decay,
            scale=scale,
        )
        return per_book.sum(dim=1) if sum_codebooks else per_book
    # soft codes: virtual token (j, w) at index j * W + w
    keys = key_codewords[None, :, None].expand(batch, books, length, words, dim)
    values = value_codewords[None, :, None].expand(batch, books, length, words, -1)
    bias = decay[None, None, :, :, None] + torch.log(key_codes.to(query.dtype))[:, :, None]
    hidden = torch.zeros(batch, 1, length, length, 1, dtype=torch.bool, device=query.device)
    if causal:
        future = torch.ones(length, length, dtype=torch.bool, device=query.device).triu(1)
        hidden = hidden | future[:, :, None]
    if key_padding_mask is not None:
        hidden = hidden | key_padding_mask[:, None, None, :, None]
    bias = bias.masked_fill(hidden, -math.inf)  # (batch, B, Lq, Lk, W)
    per_book = exact_attention(
        query,
        keys.reshape(batch, books, length * words, dim),
        values.reshape(batch, books, length * words, -1),
        bias=bias.reshape(batch, books, length, length * words),
        scale=scale,
    )
    return per_book.sum(dim=1) if sum_codebooks else per_book
