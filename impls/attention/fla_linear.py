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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from impls.attention._validation import check_attention_inputs
from impls.attention.linear import elu_feature_map

__all__ = ["FlaLinearAttention", "availability", "fla_linear_attention"]


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
    except Exception as exc:  # any failure means "cannot run here", never a crash
        return False, f"fla-core kernels unusable: {type(exc).__name__}: {exc}"[:200]
    return True, ""


def _chunk_linear_attn():
    from fla.ops.linear_attn import chunk_linear_attn

    return chunk_linear_attn


def _check_device(q: Tensor) -> None:
    if q.device.type != "cuda":
        raise ValueError(
            f"fla_linear: q, k, v must be CUDA tensors (fla-core has no CPU path), got {q.device}"
        )


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
    check_attention_inputs(
        q,
        k,
        v,
        causal=causal,
        key_padding_mask=key_padding_mask,
        same_length=True,
        method="fla_linear",
    )
    if not causal:
        raise ValueError("fla_linear: causal must be True (fla's linear attention is causal)")
    if key_padding_mask is not None:
        raise ValueError(
            "fla_linear: key_padding_mask must be None (fla takes variable lengths through "
            "cu_seqlens, not masks)"
        )
    _check_device(q)
    heads, length = q.shape[1], q.shape[2]
    pad = max(0, heads - length)
    qf, kf = elu_feature_map(q), elu_feature_map(k)
    qx, kx, vx = (F.pad(t, (0, 0, 0, pad)).transpose(1, 2) for t in (qf, kf, v))
    out, _ = _chunk_linear_attn()(qx, kx, vx, normalize=True)
    return out.transpose(1, 2)[:, :, :length]


class FlaLinearAttention(nn.Module):
    """Module form: ``FlaLinearAttention(dim, heads)(q, k, v, causal=True)``."""

    def __init__(self, dim: int | None = None, heads: int | None = None):
        super().__init__()

    def forward(self, q, k, v, *, causal: bool = True, key_padding_mask=None) -> Tensor:
        return fla_linear_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
