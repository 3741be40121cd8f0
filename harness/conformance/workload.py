"""Seeded inputs and method construction shared by the conformance tests.

q, k (batch, heads, L, d) and v (batch, heads, L, dv), float64 unless a dtype is given;
key_padding_mask (batch, L) bool, True = padded. Methods with learned state are fitted on a
separate seeded calibration batch of the same distribution, never on the tested inputs."""

from __future__ import annotations

import torch

from impls import registry
from impls.registry import MethodSpec

MODES = {"causal": True, "bidirectional": False}
CAL_BATCH, CAL_LENGTH = 4, 64  # calibration batch for methods with learned state


def qkv(batch, heads, length, dim, value_dim=None, *, seed=0, dtype=torch.float64, scale=1.0):
    """Standard-normal q, k, v (the conformance workload), times ``scale``."""
    gen = torch.Generator().manual_seed(seed)
    value_dim = dim if value_dim is None else value_dim
    shapes = [(batch, heads, length, dim)] * 2 + [(batch, heads, length, value_dim)]
    return [(torch.randn(*s, generator=gen, dtype=torch.float64) * scale).to(dtype) for s in shapes]


def vocabulary_qkv(
    batch, heads, length, dim, value_dim=None, *, seed=0, vocab=16, vocab_seed=7, noise=0.05
):
    """A recommendation-like workload: every token is one of ``vocab`` items, and an item
    has fixed per-head (q, k, v) embeddings (drawn from ``vocab_seed``) plus small noise.
    Sequences (the item ids and the noise) are drawn from ``seed``; two seeds give two
    samples of one distribution (used for calibration vs measurement)."""
    value_dim = dim if value_dim is None else value_dim
    items = torch.Generator().manual_seed(vocab_seed)
    table = [
        torch.randn(heads, vocab, width, generator=items, dtype=torch.float64)
        for width in (dim, dim, value_dim)
    ]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    out = []
    for t in table:
        x = t[:, ids].permute(1, 0, 2, 3)  # (batch, heads, length, width)
        out.append(x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64))
    return out


def padding_mask(batch, length, *, seed=0, fraction=0.3, all_padded_row=None):
    gen = torch.Generator().manual_seed(seed + 10_000)
    mask = torch.rand(batch, length, generator=gen) < fraction
    if all_padded_row is not None:
        mask[all_padded_row] = True
    return mask


def make(
    spec: MethodSpec, dim: int, heads: int, value_dim: int | None = None, *, workload=qkv, **hp
):
    """Build a method; learned state is fitted on a seeded calibration batch drawn from the
    same ``workload`` distribution as the test inputs (seed 12345, never the inputs
    themselves)."""
    calibration = None
    if spec.calibrate:
        calibration = workload(CAL_BATCH, heads, CAL_LENGTH, dim, value_dim, seed=12345)
    return registry.build(spec, dim, heads, calibration=calibration, **hp)


def supported_modes(spec: MethodSpec) -> list[str]:
    cap = spec.capabilities
    return [m for m, c in MODES.items() if (cap.causal if c else cap.bidirectional)]


def runs_here(spec: MethodSpec) -> tuple[bool, str]:
    ok, reason = registry.availability(spec)
    if ok and "cpu" not in spec.capabilities.devices:
        return False, "runs on CUDA only and the suite runs on CPU"
    return ok, reason
