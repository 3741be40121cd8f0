"""Argument checks for the LISA operator: each failure names the argument and what was
expected, so a layout mix-up fails loudly instead of returning a silent wrong answer."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from reference.attention import check_finite

# Soft codes must sum to one within this tolerance (per dtype).
_SUM_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 2e-2, torch.float32: 1e-4}


def check_query(name: str, query: Tensor, *, finite: bool = True) -> tuple[int, int, int, int]:
    """query: (batch, B, L, d) floating, non-empty and (``finite``) finite. Returns its
    shape. ``finite=False`` leaves the finiteness test to a caller that screens every
    entry anyway (the operator's scan: a NaN or Inf query makes its scores non-finite,
    and the scan then names the query, see ``lisa_operator._VectorScores``)."""
    if not isinstance(query, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(query).__name__}")
    if query.dim() != 4:
        raise ValueError(
            f"{name} must have rank 4 (batch, B, L, d), got shape {tuple(query.shape)}"
        )
    if not query.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {query.dtype}")
    if query.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(query.shape)}); expected every dim >= 1")
    if finite:
        check_finite(name, query)
    return tuple(query.shape)  # type: ignore[return-value]


def check_codewords(
    key_codewords: Tensor, value_codewords: Tensor, books: int, dim: int, like: Tensor
) -> int:
    """key_codewords (B, W, d) and value_codewords (B, W, dv); returns W."""
    for name, t in (("key_codewords", key_codewords), ("value_codewords", value_codewords)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 3:
            raise ValueError(f"{name} must have rank 3 (B, W, dim), got shape {tuple(t.shape)}")
        if t.dtype != like.dtype:
            raise TypeError(f"{name} has dtype {t.dtype}; expected {like.dtype} like the query")
        if t.device != like.device:
            raise ValueError(f"{name} is on {t.device}; expected {like.device} like the query")
        if t.shape[0] != books:
            raise ValueError(f"{name} has B={t.shape[0]} codebooks; the query has B={books}")
        if t.shape[1] == 0:
            raise ValueError(f"{name} has W=0 codewords; expected W >= 1")
        check_finite(name, t)
    if key_codewords.shape[2] != dim:
        raise ValueError(f"key_codewords has dim {key_codewords.shape[2]}; the query has d={dim}")
    if value_codewords.shape[1] != key_codewords.shape[1]:
        raise ValueError(
            f"value_codewords has W={value_codewords.shape[1]}, key_codewords has "
            f"W={key_codewords.shape[1]}; expected the same number of codewords"
        )
    return int(key_codewords.shape[1])


def check_codes(
    name: str, codes: Tensor, shape: tuple[int, int, int], words: int, like: Tensor
) -> None:
    """Hard codes (batch, B, L) integers in [0, W), or soft codes (batch, B, L, W) that are
    non-negative and sum to 1 over W."""
    if not isinstance(codes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(codes).__name__}")
    if codes.device != like.device:
        raise ValueError(f"{name} is on {codes.device}; expected {like.device}")
    if codes.dim() == 3 and not codes.is_floating_point():
        if codes.dtype == torch.bool or codes.is_complex():
            raise TypeError(f"{name} (hard codes) must be an integer tensor, got {codes.dtype}")
        if tuple(codes.shape) != shape:
            raise ValueError(
                f"{name} must have shape (batch, B, L) = {shape}, got {tuple(codes.shape)}"
            )
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= words):
            raise ValueError(
                f"{name} has codes in [{int(codes.min())}, {int(codes.max())}]; "
                f"expected integers in [0, W) = [0, {words})"
            )
        return
    if codes.dim() == 4 and codes.is_floating_point():
        if tuple(codes.shape) != (*shape, words):
            raise ValueError(
                f"{name} (soft codes) must have shape (batch, B, L, W) = {(*shape, words)}, "
                f"got {tuple(codes.shape)}"
            )
        if codes.dtype != like.dtype:
            raise TypeError(f"{name} has dtype {codes.dtype}; expected {like.dtype}")
        codes = codes.detach()
        check_finite(name, codes)
        if bool((codes < 0).any()):
            raise ValueError(f"{name} (soft codes) has negative entries; expected probabilities")
        tol = _SUM_TOLERANCE.get(codes.dtype, 1e-5)
        err = (codes.sum(dim=-1) - 1).abs().max() if codes.numel() else torch.tensor(0.0)
        if float(err) > tol:
            raise ValueError(
                f"{name} (soft codes) must sum to 1 over W; the largest deviation is "
                f"{float(err):.3g} (tolerance {tol:g})"
            )
        return
    raise ValueError(
        f"{name} must be integer hard codes of shape (batch, B, L) or floating soft codes of "
        f"shape (batch, B, L, W); got dtype {codes.dtype} and shape {tuple(codes.shape)}"
    )


def check_padding_mask(mask: Tensor | None, batch: int, length: int, device: torch.device) -> None:
    """key_padding_mask: None or bool (batch, L), True = padded."""
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise TypeError("key_padding_mask must be a bool tensor of shape (batch, L), True = padded")
    if tuple(mask.shape) != (batch, length):
        raise ValueError(
            f"key_padding_mask must have shape (batch, L) = {(batch, length)}, "
            f"got {tuple(mask.shape)}"
        )
    if mask.device != device:
        raise ValueError(f"key_padding_mask is on {mask.device}; expected {device}")


def check_gamma(gamma: float) -> float:
    """gamma: a real number in (0, 1]."""
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"gamma must be a real number in (0, 1], got {gamma!r}")
    gamma = float(gamma)
    if not (0.0 < gamma <= 1.0):  # also rejects NaN
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return gamma


def check_options(causal: bool, scale: float | None, chunk_size: int, dim: int) -> float:
    """causal: bool; scale: positive finite or None (-> 1/sqrt(d)); chunk_size: int >= 1."""
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if scale is None:
        return 1.0 / math.sqrt(dim)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a positive real number or None, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    return float(scale)
