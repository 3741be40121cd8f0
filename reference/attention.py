"""Exact softmax attention, the oracle every attention method is checked against.

Equation, for each batch n, head h, query position i and key position j::

    s[i, j] = scale * <q[i], k[j]> + bias[i, j]        (scale defaults to 1/sqrt(d))
    s[i, j] = -inf  if causal and j > i, or if key j is padded
    a[i, j] = exp(s[i, j] - max_j s[i, j]) / sum_j exp(s[i, j] - max_j s[i, j])
    out[i]  = sum_j a[i, j] * v[j]

A query row with no visible key (every entry -inf) returns zeros, never NaN.

Layouts (stated loudly because mixing them up is the most common user error):
    q: (batch, heads, Lq, d)    k: (batch, heads, Lk, d)    v: (batch, heads, Lk, dv)
    key_padding_mask: (batch, Lk), bool, True = padded (ignored key)
    bias: additive, broadcastable to (batch, heads, Lq, Lk); -inf entries mask a key
    returns (batch, heads, Lq, dv) in the dtype of q

The code is written to be checked by eye, not to be fast: it materialises the full
(Lq, Lk) score matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["exact_attention", "check_finite"]


def check_finite(name: str, tensor: Tensor) -> None:
    """Raise ValueError naming ``name`` if ``tensor`` holds NaN or +-Inf.

    A NaN or Inf entry makes the sum non-finite, so one reduction settles the common case;
    the element-wise test runs only when the sum is not finite (it may overflow)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return
    tensor = tensor.detach()
    if bool(torch.isfinite(tensor.sum())):
        return
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or Inf; expected finite values")


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must have rank 4 (batch, heads, length, dim), got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        check_finite(name, t)
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(
            "q, k, v must agree in (batch, heads), got "
            f"{tuple(q.shape[:2])}, {tuple(k.shape[:2])}, {tuple(v.shape[:2])}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the head dim, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"k and v must share the key length, got {k.shape[2]} and {v.shape[2]}")
    if q.shape[0] == 0:
        raise ValueError("q has an empty batch; expected batch >= 1")
    if causal and q.shape[2] != k.shape[2]:
        raise ValueError(
            f"causal attention needs Lq == Lk, got Lq={q.shape[2]} and Lk={k.shape[2]}"
        )


def exact_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    bias: Tensor | None = None,
    scale: float | None = None,
) -> Tensor:
    """Exact softmax attention (see the module docstring for shapes and the equation)."""
    _check_inputs(q, k, v, causal)
    batch, heads, lq, d = q.shape
    lk = k.shape[2]
    if scale is None:
        scale = 1.0 / math.sqrt(d)

    scores = torch.einsum("nhid,nhjd->nhij", q, k) * scale  # (batch, heads, Lq, Lk)

    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"bias must be a torch.Tensor, got {type(bias).__name__}")
        if bool(torch.isnan(bias).any()) or bool(torch.isposinf(bias).any()):
            raise ValueError("bias contains NaN or +Inf; expected finite values or -inf (mask)")
        try:
            torch.broadcast_shapes(bias.shape, scores.shape)
        except RuntimeError:
            raise ValueError(
                f"bias of shape {tuple(bias.shape)} does not broadcast to "
                f"(batch, heads, Lq, Lk) = {tuple(scores.shape)}"
            ) from None
        scores = scores + bias.to(scores.dtype)

    visible = torch.ones(lq, lk, dtype=torch.bool, device=q.device)
    if causal:
        visible = torch.tril(visible)
    visible = visible.expand(batch, heads, lq, lk)
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, Tensor) or key_padding_mask.dtype != torch.bool:
            raise TypeError("key_padding_mask must be a bool tensor (True = padded)")
        if tuple(key_padding_mask.shape) != (batch, lk):
            raise ValueError(
                f"key_padding_mask must have shape (batch, Lk) = {(batch, lk)}, "
                f"got {tuple(key_padding_mask.shape)}"
            )
        visible = visible & ~key_padding_mask[:, None, None, :]
    scores = scores.masked_fill(~visible, float("-inf"))

    # Stable softmax: subtract the row maximum; rows with no visible key give zeros.
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(scores - row_max)
    total = weights.sum(dim=-1, keepdim=True)
    weights = weights / torch.where(total > 0, total, torch.ones_like(total))
    return torch.einsum("nhij,nhjd->nhid", weights, v)
