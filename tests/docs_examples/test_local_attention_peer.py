"""The documented outside peer ``docs/examples/local_attention_peer.py``: its entry is
complete, it says why it cannot run without local-attention, and (where that package is
installed) the configuration docs/peers.md describes makes their ``LocalAttention``
compute the project's ``local_window`` function, outputs and gradients, at lengths that
are and are not multiples of their block."""

from __future__ import annotations

import pytest
import torch
from example_plugins import check_entry, import_example

from impls import registry


@pytest.fixture(scope="module")
def peer():
    return import_example("local_attention_peer")


def test_the_entry_is_complete_and_says_when_it_cannot_run(peer):
    check_entry(peer.SPEC, "local_attention", "local-attention")


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length", [1, 7, 63, 64, 150])
def test_it_computes_the_local_window_function(peer, causal, length):
    pytest.importorskip("local_attention", reason="local-attention is not installed")
    gen = torch.Generator().manual_seed(length)
    q, k, v = (
        torch.randn(2, 3, length, 8, generator=gen, dtype=torch.float64).requires_grad_()
        for _ in range(3)
    )
    theirs = registry.build(peer.SPEC, 8, 3, window=5)
    ours = registry.build(registry.get_method("local_window"), 8, 3, window=5)
    got, want = theirs(q, k, v, causal=causal), ours(q, k, v, causal=causal)
    assert (got - want).abs().max().item() < 1e-12
    cotangent = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    for g, w in zip(
        torch.autograd.grad(got, (q, k, v), cotangent),
        torch.autograd.grad(want, (q, k, v), cotangent),
        strict=True,
    ):
        assert (g - w).abs().max().item() < 1e-12


def test_it_refuses_a_key_padding_mask(peer):
    pytest.importorskip("local_attention", reason="local-attention is not installed")
    q = torch.randn(1, 1, 10, 8)
    attn = registry.build(peer.SPEC, 8, 1)
    with pytest.raises(ValueError, match="key_padding_mask"):
        attn(q, q, q, key_padding_mask=torch.zeros(1, 10, dtype=torch.bool))
