"""Seeded inputs and method construction shared by the conformance tests.

q, k (batch, heads, L, d) and v (batch, heads, L, dv), float64 unless a dtype is given;
key_padding_mask (batch, L) bool, True = padded. Methods with learned state are fitted on a
separate seeded calibration batch of the same distribution, never on the tested inputs."""

from __future__ import annotations

import torch

from harness.workloads.attention import draw_inputs
from impls import registry
from impls.registry import MethodSpec

MODES = {"causal": True, "bidirectional": False}
CAL_BATCH, CAL_LENGTH = 4, 64  # calibration batch for methods with learned state


def qkv(batch, heads, length, dim, value_dim=None, *, seed=0, dtype=torch.float64, scale=1.0):
    """Standard-normal q, k, v (the workload's ``gaussian`` inputs), times ``scale``."""
    drawn = draw_inputs("gaussian", (batch, heads, length, dim), seed, value_dim=value_dim)
    return [(t * scale).to(dtype) for t in drawn]


def vocabulary_qkv(batch, heads, length, dim, value_dim=None, *, seed=0):
    """A recommendation-like workload (the workload's ``vocabulary`` inputs): every token
    is one of 16 items with fixed per-head (q, k, v) embeddings plus small noise. Two
    seeds give two samples of one distribution (used for calibration vs measurement)."""
    return draw_inputs("vocabulary", (batch, heads, length, dim), seed, value_dim=value_dim)


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
