"""Properties every selected method is tested for (see ``selection``): the shape/dtype
contract, causality, key padding, batch and head independence, head and permutation
equivariance, determinism, large inputs and bad-input errors.

Adding a registry entry adds it to every test here; nothing else needs writing.
"""

from __future__ import annotations

import pytest
import torch

from harness.conformance.checks import (
    check_bad_inputs,
    check_batch_independence,
    check_causality,
    check_head_equivariance,
    check_head_independence,
    check_key_padding,
    check_large_magnitude,
    check_permutation_equivariance,
    check_shape_dtype,
    require,
)
from harness.conformance.selection import per_method, per_method_mode
from harness.conformance.workload import MODES, make, padding_mask, qkv
from impls import registry

B, H, L, D, DV = 3, 2, 24, 8, 6  # odd sizes; dv != d so a q/v mix-up cannot pass


@per_method_mode()
def test_shape_and_dtype_contract(spec, mode):
    attn = make(spec, D, H, DV)
    for dtype in spec.capabilities.dtypes:
        q, k, v = qkv(B, H, L, D, DV, seed=1, dtype=dtype)
        mask = padding_mask(B, L, seed=1) if spec.capabilities.key_padding else None
        check_shape_dtype(attn, q, k, v, causal=MODES[mode], key_padding_mask=mask)
    for length in (1, 2, 17):  # tiny and odd lengths
        q, k, v = qkv(1, H, length, D, DV, seed=length)
        check_shape_dtype(attn, q, k, v, causal=MODES[mode])


@per_method(lambda s: s.capabilities.causal)
def test_causality(spec):
    attn = make(spec, D, H, DV)
    q, k, v = qkv(B, H, L, D, DV, seed=2)
    grad = spec.supports_backward
    check_causality(attn, q, k, v, positions=(0, 5, L // 2, L - 2), seed=2, backward=grad)
    if spec.capabilities.key_padding:  # a method without padding refuses a mask outright
        mask = padding_mask(B, L, seed=2)
        check_causality(
            attn, q, k, v, positions=(L // 3,), seed=3, key_padding_mask=mask, backward=grad
        )


@per_method(lambda s: not s.capabilities.causal)
def test_bidirectional_only_methods_refuse_causal(spec):
    attn = make(spec, D, H, DV)
    q, k, v = qkv(B, H, L, D, DV, seed=2)
    with pytest.raises(ValueError, match="causal"):
        attn(q, k, v, causal=True)
    with pytest.raises(ValueError, match="causal"):
        registry.check_request(spec, causal=True)


@per_method_mode(lambda s, m: s.capabilities.key_padding)
def test_key_padding(spec, mode):
    attn = make(spec, D, H, DV)
    q, k, v = qkv(B, H, L, D, DV, seed=4)
    mask = padding_mask(B, L, seed=4)
    grad = spec.supports_backward
    check_key_padding(attn, q, k, v, mask, causal=MODES[mode], seed=4, backward=grad)


@per_method_mode()
def test_batch_independence(spec, mode):
    attn = make(spec, D, H, DV)
    q, k, v = qkv(B, H, L, D, DV, seed=5)
    mask = padding_mask(B, L, seed=5) if spec.capabilities.key_padding else None
    check_batch_independence(attn, q, k, v, causal=MODES[mode], key_padding_mask=mask)


@per_method_mode()
def test_head_independence(spec, mode):
    attn = make(spec, D, 3, DV)
    q, k, v = qkv(2, 3, L, D, DV, seed=6)
    check_head_independence(attn, q, k, v, causal=MODES[mode], seed=6)


@per_method_mode(lambda s, m: s.head_equivariant)
def test_head_equivariance(spec, mode):
    attn = make(spec, D, 4, DV)
    q, k, v = qkv(2, 4, L, D, DV, seed=6)
    check_head_equivariance(attn, q, k, v, causal=MODES[mode], seed=6)


@per_method(lambda s: s.exact and s.permutation_equivariant and s.capabilities.bidirectional)
def test_permutation_equivariance(spec):
    attn = make(spec, D, H, DV)
    q, k, v = qkv(B, H, L, D, DV, seed=7)
    check_permutation_equivariance(attn, q, k, v, key_padding_mask=padding_mask(B, L, seed=7))


@per_method_mode()
def test_seed_determinism(spec, mode):
    q, k, v = qkv(B, H, L, D, DV, seed=8)
    first = make(spec, D, H, DV)(q, k, v, causal=MODES[mode])
    again = make(spec, D, H, DV)
    require(torch.equal(first, again(q, k, v, causal=MODES[mode])), "determinism: rebuilt differs")
    require(torch.equal(first, again(q, k, v, causal=MODES[mode])), "determinism: 2nd call differs")


@per_method_mode()
def test_finite_for_large_inputs(spec, mode):
    attn = make(spec, D, H, DV)
    dtype = torch.float32 if torch.float32 in spec.capabilities.dtypes else None
    if dtype is None:
        pytest.skip("method has no float32 support")
    q, k, v = qkv(B, H, L, D, DV, seed=9, dtype=dtype, scale=1e3)
    check_large_magnitude(attn, q, k, v, causal=MODES[mode])


@per_method_mode()
def test_bad_inputs_raise_clear_errors(spec, mode):
    attn = make(spec, D, H, DV)
    q, k, v = qkv(B, H, L, D, DV, seed=10)
    check_bad_inputs(attn, q, k, v, padding_mask(B, L, seed=10), causal=MODES[mode])
