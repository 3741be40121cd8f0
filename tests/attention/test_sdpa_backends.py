"""The pinned-kernel SDPA entries (impls/attention/sdpa_backends.py): the flash entry runs
on CPU tensors too (torch has a CPU flash kernel), so it is checked against the float64
oracle here, forward and gradient; the memory-efficient entry exists on CUDA only and must
say so, on the call and in the registry."""

from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.attention.sdpa_backends import (
    availability,
    sdpa_efficient_attention,
    sdpa_flash_attention,
)
from reference.attention import exact_attention


def _qkv(length=33, dim=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, length, dim, generator=g, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("causal", [True, False])
def test_flash_entry_matches_the_oracle_forward_and_backward(causal):
    q, k, v = (t.requires_grad_(True) for t in _qkv())
    out = sdpa_flash_attention(q, k, v, causal=causal)
    ref_inputs = [t.detach().double().requires_grad_(True) for t in (q, k, v)]
    ref = exact_attention(*ref_inputs, causal=causal)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weight).sum().backward()
    (ref * weight.double()).sum().backward()
    for got, want in zip((q, k, v), ref_inputs, strict=True):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-4)


def test_flash_entry_refuses_a_mask_naming_the_argument():
    q, k, v = _qkv()
    mask = torch.zeros(2, 33, dtype=torch.bool)
    with pytest.raises(ValueError, match="sdpa_flash: key_padding_mask"):
        sdpa_flash_attention(q, k, v, key_padding_mask=mask)


def test_efficient_entry_names_cuda_for_cpu_tensors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="sdpa_efficient: .*CUDA"):
        sdpa_efficient_attention(q, k, v, causal=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only reason is checked on CPU")
@pytest.mark.parametrize("name", ["sdpa_flash", "sdpa_efficient"])
def test_entries_are_registered_and_skipped_on_cpu_with_a_reason(name):
    ok, reason = availability(name)
    assert not ok and "needs CUDA" in reason
    spec = registry.get_method(name)
    assert registry.availability(spec) == (False, reason)
    with pytest.raises(ValueError, match="does not run on cpu"):
        registry.check_request(spec, causal=True, device="cpu")


def test_flash_entry_declares_half_dtypes_and_no_padding():
    spec = registry.get_method("sdpa_flash")
    with pytest.raises(ValueError, match="dtype"):
        registry.check_request(spec, causal=True, dtype=torch.float32)
    with pytest.raises(ValueError, match="key_padding_mask"):
        registry.check_request(spec, causal=True, key_padding=True)
