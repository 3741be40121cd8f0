"""The LISA scan never materialises an (L, B, W) or (L, L) tensor: its peak heap during a
forward call stays within the analytic bound (output + a few chunk-sized tensors)."""

from __future__ import annotations

import pytest
import torch

from harness.measure import peak_memory_bytes
from impls.attention.lisa import lisa_attention

pytest.importorskip("memray", reason="memray measures the heap peak; not installed")


@pytest.mark.parametrize("causal", [True, False])
def test_peak_memory_is_within_the_chunked_bound(causal):
    length, books, words, dim, dv, chunk = 65_536, 8, 16, 16, 16, 512
    g = torch.Generator().manual_seed(0)
    query = torch.randn(1, books, length, dim, generator=g)
    codes = torch.randint(0, words, (1, books, length), generator=g)
    kc, vc = torch.randn(books, words, dim, generator=g), torch.randn(books, words, dv, generator=g)

    def call():
        with torch.no_grad():
            return lisa_attention(query, codes, kc, vc, gamma=0.95, causal=causal, chunk_size=chunk)

    call()  # warm-up: one-time allocations of the torch runtime are not the operator's
    peak = peak_memory_bytes(call)
    f32 = 4
    output = length * dv * f32  # the result, plus the chunk outputs it is concatenated from
    chunk_state = books * chunk * words * f32
    boundary_states = (length // chunk + 1) * books * words * f32  # bidirectional pass
    bound = 2 * output + 32 * chunk_state + boundary_states
    forbidden = length * books * words * f32  # one (L, B, W) tensor
    assert bound < forbidden  # the test can tell the two apart
    assert peak <= bound, f"peak {peak / 2**20:.1f} MiB > bound {bound / 2**20:.1f} MiB"
