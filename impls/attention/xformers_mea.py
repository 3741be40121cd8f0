"""xformers ``memory_efficient_attention`` behind the project's contract (CUDA only).

Equation: out = softmax(q k^T / sqrt(d) + bias) v, computed blockwise with an online
softmax (Rabe & Staats 2021) so memory is O(L d). xformers uses the BMHK layout
(batch, length, heads, dim); this wrapper takes and returns the project's BHMK layout
(batch, heads, length, dim) and transposes. Causal uses ``LowerTriangularMask``; key
padding becomes an additive -inf bias (allocated with its last dim rounded up to a
multiple of 8, as xformers requires aligned bias storage). Rows with no visible key return
zeros, as in the oracle.

xformers has no CPU kernels: the method stays registered and ``availability()`` says why
it cannot run. The availability check never imports xformers without CUDA (importing a
wheel built for another torch prints warnings and may fail).
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from impls.attention._validation import check_attention_inputs

__all__ = ["availability", "xformers_attention"]


def availability() -> tuple[bool, str]:
    """(True, "") when the kernel can run here, else (False, reason)."""
    if importlib.util.find_spec("xformers") is None:
        return False, "xformers is not installed (pip install 'lisa-bench[gpu]')"
    if not torch.cuda.is_available():
        return False, "needs CUDA: xformers memory_efficient_attention has no CPU kernels"
    try:
        import xformers.ops as xops

        x = torch.zeros(1, 8, 1, 8, device="cuda", dtype=torch.float16)
        xops.memory_efficient_attention(x, x, x)
    except Exception as exc:  # any failure means "cannot run here", never a crash
        return False, f"xformers kernels unusable: {type(exc).__name__}: {exc}"[:200]
    return True, ""


def xformers_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Exact attention through xformers (see the module docstring)."""
    check_attention_inputs(
        q, k, v, causal=causal, key_padding_mask=key_padding_mask, method="xformers_mea"
    )
    if q.device.type != "cuda":
        raise ValueError(
            "xformers_mea: q, k, v must be CUDA tensors (xformers has no CPU kernels), "
            f"got {q.device}"
        )
    import xformers.ops as xops
    from xformers.ops.fmha.attn_bias import LowerTriangularMask

    batch, heads, lq, _ = q.shape
    lk = k.shape[2]
    qx, kx, vx = (t.transpose(1, 2) for t in (q, k, v))  # BHMK -> BMHK
    if key_padding_mask is None:
        bias = LowerTriangularMask() if causal else None
        out = xops.memory_efficient_attention(qx, kx, vx, attn_bias=bias)
        return out.transpose(1, 2)
    visible = (~key_padding_mask)[:, None, None, :].expand(batch, heads, lq, lk)
    if causal:
        visible = visible & torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril()
    empty = ~visible.any(dim=-1, keepdim=True)
    visible = visible | empty
    aligned = (lk + 7) // 8 * 8
    storage = torch.zeros(batch, heads, lq, aligned, dtype=q.dtype, device=q.device)
    bias = storage[..., :lk]
    bias.masked_fill_(~visible, float("-inf"))
    out = xops.memory_efficient_attention(qx, kx, vx, attn_bias=bias).transpose(1, 2)
    return out.masked_fill(empty, 0.0)
