"""The documented outside peer ``docs/examples/performer_pytorch_peer.py``: its entry is
complete, it says why it cannot run without performer-pytorch, and (where that package is
installed) the causality leak docs/peers.md reports is real and caught by the harness's
own check, while the project's ``performer`` passes the same check."""

from __future__ import annotations

import pytest
import torch
from example_plugins import check_entry, import_example

from harness.conformance.checks import check_causality
from impls import registry


@pytest.fixture(scope="module")
def peer():
    return import_example("performer_pytorch_peer")


def test_the_entry_is_complete_and_says_when_it_cannot_run(peer):
    check_entry(peer.SPEC, "performer_pytorch", "performer-pytorch")


def test_its_causal_attention_leaks_and_the_harness_catches_it(peer):
    pytest.importorskip("performer_pytorch", reason="performer-pytorch is not installed")
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 24, 8, generator=gen) for _ in range(3))
    theirs = registry.build(peer.SPEC, 8, 2)
    with pytest.raises(AssertionError, match="causality"):
        check_causality(theirs, q, k, v, positions=(0, 5, 12), seed=2, backward=False)
    ours = registry.build(registry.get_method("performer"), 8, 2)
    check_causality(ours, q, k, v, positions=(0, 5, 12), seed=2, backward=False)
    # bidirectional, the leak does not matter: same closed form, finite, right shape
    out = theirs(q, k, v, causal=False)
    assert out.shape == v.shape and bool(torch.isfinite(out).all())
