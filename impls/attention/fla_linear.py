"""Causal linear attention through flash-linear-attention's kernels (CUDA only).

The maintained implementation of the peer ``linear`` (``impls.attention.linear``): the
same function, elu+1 features and the normalised causal read-out::

    out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i),
    S_i = sum_{j <= i} phi(k_j) v_j^T,   z_i = sum_{j <= i} phi(k_j),   phi = elu + 1,

computed by ``fla.ops.linear_attn.chunk_linear_attn`` of the ``fla-core`` package
(Yang et al. 2024, "Gated Linear Attention Transformers with Hardware-Efficient
Training"): Triton kernels for the chunk-parallel scan (chunks of 64, chunk states in
on-chip memory) and its backward. fla applies no feature map itself, so this wrapper
maps q and k first; with ``normalize=True`` fla divides the scan by
(s q_i) . cumsum(k)_i + 1e-10, where s is its score scale, which cancels. The 1e-10 is
fla's; with phi > 0 the denominator is at least phi(q_i) . phi(k_i) > 0, so it changes
the output by a relative 1e-10 / denominator at most.

A gated variant, ``fla_decay_linear``, weighs key j for query i by gamma^(i - j) as
well (a fixed decay, as in LISA's decayed histogram and RetNet's retention)::

    out_i = sum_{j <= i} w_ij v_j / sum_{j <= i} w_ij,   w_ij = gamma^(i-j) phi(q_i).phi(k_j)

through ``fla.ops.simple_gla.chunk_simple_gla`` with the head-wise log decay
``g_gamma = log gamma``. fla does not normalise this one, so the values get a column of
ones (dv + 1 wide): its output is the denominator, which is at least
phi(q_i).phi(k_i) > 0 (the j = i term, gamma^0 = 1), whatever gamma^(i - j) does far
back. Its oracle identity: the oracle with scale 0 and bias
log(phi(q_i).phi(k_j)) + (i - j) log gamma.

Layout: the project's (batch, heads, L, d) becomes fla's (batch, L, heads, d) and back.
fla refuses L < heads (it takes that shape for a head-first layout mistake); such inputs
are padded with zero rows at the end up to L = heads, which changes no causal output
(a later position never reaches an earlier one), and the padding is cut off again.

What it does not do, and says so (see ``Capabilities`` in the registry): bidirectional
attention and key padding (fla has variable-length batches through ``cu_seqlens``, not
masks), float64, and CPU tensors. The kernels use Triton block pointers, which Triton's
CPU interpreter no longer runs, so there is no CPU path to check; ``availability()`` says
why, and the registry lists the method as skipped. The CPU tests check this wrapper
against a stand-in that follows fla's documented contract.
"""

from __future__ import annotations

import importlib.util
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from impls.attention._validation import check_attention_inputs
from impls.attention.linear import elu_feature_map

__all__ = [
    "FlaDecayedLinearAttention",
    "FlaLinearAttention",
    "availability",
    "fla_decayed_linear_attention",
    "fla_linear_attention",
]


def availability() -> tuple[bool, str]:
    """(True, "") when fla's kernels can run here, else (False, reason)."""
    if importlib.util.find_spec("fla") is None:
        return False, "fla-core is not installed (pip install 'lisa-bench[gpu]')"
    if not torch.cuda.is_available():
        return False, (
            "needs CUDA: fla-core's Triton kernels use block pointers, which Triton's CPU "
            "interpreter does not run"
        )
    try:
        x = torch.ones(1, 64, 1, 16, device="cuda")
        _chunk_linear_attn()(x, x, x, normalize=True)
        _chunk_simple_gla()(x, x, x, g_gamma=torch.full((1,), -0.1, device="cuda"))
    except Exception as exc:  # any failure means "cannot run here", never a crash
        return False, f"fla-core kernels unusable: {type(exc).__name__}: {exc}"[:200]
    return True, ""


def _chunk_linear_attn():
    from fla.ops.linear_attn import chunk_linear_attn

    return chunk_linear_attn


def _chunk_simple_gla():
    from fla.ops.simple_gla import chunk_simple_gla

    return chunk_simple_gla


def _check_device(q: Tensor, method: str) -> None:
    if q.device.type != "cuda":
        raise ValueError(
            f"{method}: q, k, v must be CUDA tensors (fla-core has no CPU path), got {q.device}"
        )


def _to_fla(
    method: str, q: Tensor, k: Tensor, v: Tensor, causal: bool, key_padding_mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Checked, feature-mapped, padded to L >= heads, in fla's (batch, L', heads, d)."""
    check_attention_inputs(
        q,
        k,
        v,
        causal=causal,
        key_padding_mask=key_padding_mask,
        same_length=True,
        method=method,
    )
    if not causal:
        raise ValueError(f"{method}: causal must be True (fla's linear attention is causal)")
    if key_padding_mask is not None:
        raise ValueError(
            f"{method}: key_padding_mask must be None (fla takes variable lengths through "
            "cu_seqlens, not masks)"
        )
    _check_device(q, method)
    pad = max(0, q.shape[1] - q.shape[2])
    qf, kf = elu_feature_map(q), elu_feature_map(k)
    qx, kx, vx = (F.pad(t, (0, 0, 0, pad)).transpose(1, 2) for t in (qf, kf, v))
    return qx, kx, vx


def fla_linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = True,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Causal elu+1 linear attention through fla (see the module docstring).

    q, k: (batch, heads, L, d); v: (batch, heads, L, dv) -> (batch, heads, L, dv), CUDA
    tensors of float16, bfloat16 or float32."""
    qx, kx, vx = _to_fla("fla_linear", q, k, v, causal, key_padding_mask)
    out, _ = _chunk_linear_attn()(qx, kx, vx, normalize=True)
    return out.transpose(1, 2)[:, :, : q.shape[2]]


def fla_decayed_linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    gamma: float,
    causal: bool = True,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Causal elu+1 linear attention with decay gamma^(i - j) through fla's simple GLA
    kernels (see the module docstring). Shapes and dtypes as :func:`fla_linear_attention`;
    ``gamma`` in (0, 1]."""
    _check_gamma(gamma)
    qx, kx, vx = _to_fla("fla_decay_linear", q, k, v, causal, key_padding_mask)
    heads = q.shape[1]
    ones = vx.new_ones(*vx.shape[:-1], 1)
    g_gamma = torch.full((heads,), math.log(gamma), device=q.device, dtype=torch.float32)
    out, _ = _chunk_simple_gla()(qx, kx, torch.cat([vx, ones], -1), g_gamma=g_gamma)
    out = out[..., :-1] / out[..., -1:]
    return out.transpose(1, 2)[:, :, : q.shape[2]]


def _check_gamma(gamma: float) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"fla_decay_linear: gamma must be a number in (0, 1], got {gamma!r}")


class FlaLinearAttention(nn.Module):
    """Module form: ``FlaLinearAttention(dim, heads)(q, k, v, causal=True)``."""

    def __init__(self, dim: int | None = None, heads: int | None = None):
        super().__init__()

    def forward(self, q, k, v, *, causal: bool = True, key_padding_mask=None) -> Tensor:
        return fla_linear_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


class FlaDecayedLinearAttention(nn.Module):
    """Module form: ``FlaDecayedLinearAttention(dim, heads, gamma=...)(q, k, v)``."""

    def __init__(self, dim: int | None = None, heads: int | None = None, *, gamma: float):
        super().__init__()
        _check_gamma(gamma)
        self.gamma = float(gamma)

    def forward(self, q, k, v, *, causal: bool = True, key_padding_mask=None) -> Tensor:
        return fla_decayed_linear_attention(
            q, k, v, gamma=self.gamma, causal=causal, key_padding_mask=key_padding_mask
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"
