"""Bidirectional Performer and linear attention keep their feature tensors to the minimum;
the causal scan with a backward keeps no (L/C, m, dv) chunk-state tensor.

Performer: without a backward ahead the keys are reduced to their (m, dv) state before
any query feature exists (one (L, m) tensor alive at a time); with a backward, the two
feature tensors are saved and the written-out backward holds one more (L, m) gradient at
a time. Linear attention, forward: the query features and the output only. Peaks are
heap bytes measured with memray, deterministic for a given shape."""

from __future__ import annotations

import pytest
import torch

from harness.measure import peak_memory_bytes
from impls.attention.linear import kernel_attention, linear_attention
from impls.attention.performer import PerformerAttention

pytest.importorskip("memray", reason="memray measures the heap peak; not installed")


@pytest.mark.parametrize("backward", [False, True])
def test_bidirectional_performer_peak_is_within_the_feature_bound(backward):
    length, dim, features = 4096, 16, 256
    attn = PerformerAttention(dim, 1, nb_features=features)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, length, dim, generator=g).requires_grad_() for _ in range(3))

    def call():
        if not backward:
            with torch.no_grad():
                return attn(q, k, v)
        out = attn(q, k, v)
        out.backward(torch.ones_like(out))
        return None

    call()  # warm-up: one-time allocations of the torch runtime are not the operator's
    peak = peak_memory_bytes(call)
    f32 = 4
    feature = length * features * f32  # one (L, m) tensor
    rows = length * (dim + dim) * f32  # one (L, d) and one (L, dv) tensor
    # forward: one feature tensor and row-sized temporaries (output, logits' norm term);
    # forward+backward: the two saved features, one feature gradient, row temporaries
    bound = (3 * feature + 6 * rows) if backward else (feature + 2 * rows)
    assert 6 * rows < feature  # so the bound cannot admit one more (L, m) tensor
    assert peak <= bound, f"peak {peak / 2**20:.2f} MiB > bound {bound / 2**20:.2f} MiB"


def test_bidirectional_linear_forward_holds_one_feature_tensor_and_the_output():
    """Linear attention, no backward ahead: the key features are freed once reduced to
    the (d, dv) state, the division is in place; the query features and the output are
    the only (L, d)-sized tensors alive at the peak."""
    length, dim = 16_384, 32
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, length, dim, generator=g) for _ in range(3))

    def call():
        with torch.no_grad():
            return linear_attention(q, k, v, causal=False)

    call()
    peak = peak_memory_bytes(call)
    row = length * dim * 4  # one (L, d) float32 tensor
    assert peak <= 2.25 * row, f"peak {peak / row:.2f} (L, d) tensors > 2.25"


@pytest.mark.parametrize("gamma", [None, 0.99])
def test_causal_scan_with_backward_keeps_no_chunk_state_tensor(gamma):
    """Forward+backward of the causal chunk-parallel scan with many chunks (L / C = 1,024,
    more than one segment): the (L/C, m, dv) states are neither saved nor formed whole;
    both passes form them one segment at a time. The peak is a few (L, m)-sized tensors
    (the saved output, the three input gradients and their temporaries), where one
    state tensor alone would be 16 of them (the code that saved the states peaked at 39)."""
    length, features, chunk = 4096, 64, 4
    g = torch.Generator().manual_seed(0)
    phi_q, phi_k = (
        torch.rand(1, 1, length, features, generator=g).requires_grad_() for _ in range(2)
    )
    v = torch.randn(1, 1, length, features, generator=g).requires_grad_()

    def call():
        out = kernel_attention(phi_q, phi_k, v, causal=True, chunk_size=chunk, gamma=gamma)
        out.backward(torch.ones_like(out))

    call()
    peak = peak_memory_bytes(call)
    row = length * features * 4  # one (L, m) float32 tensor
    states = (length // chunk) * features * features * 4
    assert states >= 16 * row
    assert peak <= 10 * row, f"peak {peak / row:.2f} (L, m) tensors > 10"
