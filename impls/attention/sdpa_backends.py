"""SDPA pinned to one CUDA kernel: FlashAttention-2 (``sdpa_flash``) or the
memory-efficient kernel (``sdpa_efficient``), as separate registry peers.

Equation: out = softmax(q k^T / sqrt(d) + mask) v, mask = -inf above the diagonal (causal)
and on padded keys. Shapes: q (batch, heads, Lq, d), k (batch, heads, Lk, d),
v (batch, heads, Lk, dv) -> (batch, heads, Lq, dv); key_padding_mask (batch, Lk), True =
padded.

Plain ``sdpa`` lets torch choose a kernel per call, so a table row may silently change
kernel between lengths or dtypes. These two entries pin the backend with
``torch.nn.attention.sdpa_kernel``; when the pinned kernel cannot serve a call (wrong
dtype, head dim, a mask the CUDA flash kernel does not take) torch raises instead of
falling back, and the harness reports the case with that error.

Both entries declare CUDA only. ``sdpa_flash`` on CUDA needs fp16/bf16 and takes no mask,
so it declares those dtypes and no key padding (the bench's ``sdpa flash bf16`` row calls
it). torch also has a CPU flash kernel, which plain ``sdpa`` already selects on a CPU, so
the entry adds no CPU row; the function itself runs on CPU tensors, which is how the tests
check it against the oracle. The memory-efficient kernel exists on CUDA only
(``sdpa_efficient`` raises a clear error for CPU tensors); it takes the boolean mask, and
rows that see no key return zeros (as the oracle does): they are given every key, then
zeroed (:func:`impls.attention.sdpa.masked_sdpa`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from impls.attention._validation import check_attention_inputs
from impls.attention.sdpa import masked_sdpa

__all__ = ["BACKENDS", "availability", "sdpa_efficient_attention", "sdpa_flash_attention"]

BACKENDS = {"sdpa_flash": "FLASH_ATTENTION", "sdpa_efficient": "EFFICIENT_ATTENTION"}


def availability(name: str) -> tuple[bool, str]:
    """(True, "") when the pinned kernel of entry ``name`` can run here, else the reason."""
    if torch.cuda.is_available():
        return True, ""
    if name == "sdpa_flash":
        return False, (
            "needs CUDA: pins SDPA's CUDA flash kernel (on a CPU, plain sdpa already runs "
            "torch's CPU flash kernel)"
        )
    return False, "needs CUDA: torch has no CPU memory-efficient kernel for SDPA"


def _pinned(name: str):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, BACKENDS[name])])


def _check_cuda(q: Tensor, name: str) -> None:
    if q.device.type != "cuda":
        raise ValueError(f"{name}: q, k, v must be CUDA tensors (CUDA-only kernel), got {q.device}")


def sdpa_flash_attention(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, key_padding_mask: Tensor | None = None
) -> Tensor:
    """Exact attention through SDPA's flash kernel only (see the module docstring)."""
    name = "sdpa_flash"
    check_attention_inputs(q, k, v, causal=causal, key_padding_mask=key_padding_mask, method=name)
    if key_padding_mask is not None:
        raise ValueError(f"{name}: key_padding_mask is not supported (the kernel takes no mask)")
    with _pinned(name):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def sdpa_efficient_attention(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, key_padding_mask: Tensor | None = None
) -> Tensor:
    """Exact attention through SDPA's memory-efficient kernel only (module docstring)."""
    name = "sdpa_efficient"
    check_attention_inputs(q, k, v, causal=causal, key_padding_mask=key_padding_mask, method=name)
    _check_cuda(q, name)
    with _pinned(name):
        return masked_sdpa(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
