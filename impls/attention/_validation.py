"""Input validation shared by every attention method in ``impls.attention``.

It mirrors ``reference.attention`` (same checks, same wording) so that a method and the
oracle reject the same bad inputs with errors that name the offending argument.

Layout: q (batch, heads, Lq, d), k (batch, heads, Lk, d), v (batch, heads, Lk, dv),
key_padding_mask (batch, Lk) bool, True = padded.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reference.attention import check_finite

__all__ = ["check_attention_inputs", "check_finite", "compute_dtype", "expand_keep"]


def check_attention_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    key_padding_mask: Tensor | None,
    same_length: bool = False,
    method: str = "attention",
) -> None:
    """Raise TypeError/ValueError naming the bad argument; return None when inputs are valid.

    ``same_length`` additionally requires Lq == Lk (methods that index positions, such as
    windowed or bucketed attention, need it even when not causal).
    """
    if not isinstance(causal, bool):
        raise TypeError(f"{method}: causal must be a bool, got {type(causal).__name__}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{method}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{method}: {name} must have rank 4 (batch, heads, length, dim), "
                f"got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{method}: {name} must be a floating-point tensor, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(
            f"{method}: q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}"
        )
    if not (q.device == k.device == v.device):
        raise ValueError(
            f"{method}: q, k, v must be on one device, got {q.device}, {k.device}, {v.device}"
        )
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(
            f"{method}: q, k, v must agree in (batch, heads), got "
            f"{tuple(q.shape[:2])}, {tuple(k.shape[:2])}, {tuple(v.shape[:2])}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{method}: q and k must share the head dim, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[2] != v.shape[2]:
        raise ValueError(
            f"{method}: k and v must share the key length, got {k.shape[2]} and {v.shape[2]}"
        )
    if q.shape[0] == 0:
        raise ValueError(f"{method}: q has an empty batch; expected batch >= 1")
    if q.shape[1] == 0 or q.shape[-1] == 0 or v.shape[-1] == 0:
        raise ValueError(f"{method}: q, k, v need heads >= 1 and dims >= 1, got {tuple(q.shape)}")
    if (causal or same_length) and q.shape[2] != k.shape[2]:
        why = "causal attention" if causal else "this method"
        raise ValueError(f"{method}: {why} needs Lq == Lk, got Lq={q.shape[2]} and Lk={k.shape[2]}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_finite(name, t)
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, Tensor) or key_padding_mask.dtype != torch.bool:
            raise TypeError(f"{method}: key_padding_mask must be a bool tensor (True = padded)")
        expected = (q.shape[0], k.shape[2])
        if tuple(key_padding_mask.shape) != expected:
            raise ValueError(
                f"{method}: key_padding_mask must have shape (batch, Lk) = {expected}, "
                f"got {tuple(key_padding_mask.shape)}"
            )
        if key_padding_mask.device != k.device:
            raise ValueError(
                f"{method}: key_padding_mask is on {key_padding_mask.device} but k is on {k.device}"
            )


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype used for internal arithmetic: float32 for half types, else the input dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def expand_keep(
    key_padding_mask: Tensor | None, batch: int, heads: int, length: int, device
) -> Tensor:
    """Bool (batch, heads, length): True where a key is kept (not padded)."""
    if key_padding_mask is None:
        return torch.ones(batch, heads, length, dtype=torch.bool, device=device)
    return (~key_padding_mask)[:, None, :].expand(batch, heads, length)
