"""The attention scaling workload: exact attention (the oracle), torch's
scaled_dot_product_attention and the LISA operator, batch 1, over sequence length L.

Settings (issue "Foundation"): causal; exact methods use 1 head of dim 128; LISA uses
B = 8 codebooks of dim 128, W = 16 or 128 codewords, gamma = exp(-0.1), hard key codes.
Inputs are seeded. A case whose analytic memory need exceeds the memory available is
skipped and reported as such; an out-of-memory error is caught and reported too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from harness.measure import peak_memory_bytes, time_call
from impls.attention.lisa import lisa_attention
from reference.attention import exact_attention

__all__ = ["Method", "METHODS", "run_case", "DEFAULT_LENGTHS", "QUICK_LENGTHS"]

DEFAULT_LENGTHS = (1_024, 4_096, 16_384, 65_536)
QUICK_LENGTHS = (256, 1_024, 4_096)
DIM = 128
BOOKS = 8
GAMMA = math.exp(-0.1)


@dataclass(frozen=True)
class Method:
    name: str
    build: Callable[[int, torch.device, torch.Generator], Callable[[], torch.Tensor]]
    bytes_needed: Callable[[int], int]  # analytic working memory at length L (float32)
    params: dict = field(default_factory=dict)


def _qkv(length: int, device: torch.device, g: torch.Generator):
    shape = (1, 1, length, DIM)
    return [torch.randn(shape, generator=g).to(device) for _ in range(3)]


def _build_oracle(length, device, g):
    q, k, v = _qkv(length, device, g)
    return lambda: exact_attention(q, k, v, causal=True)


def _build_sdpa(length, device, g):
    q, k, v = _qkv(length, device, g)
    return lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def _lisa_builder(words: int):
    def build(length, device, g):
        query = torch.randn(1, BOOKS, length, DIM, generator=g).to(device)
        codes = torch.randint(0, words, (1, BOOKS, length), generator=g).to(device)
        kc = torch.randn(BOOKS, words, DIM, generator=g).to(device)
        vc = torch.randn(BOOKS, words, DIM, generator=g).to(device)
        return lambda: lisa_attention(query, codes, kc, vc, gamma=GAMMA, causal=True)

    return build


def _lisa_bytes(words: int) -> Callable[[int], int]:
    # output (L, dv) + per-chunk state: a handful of (B, chunk, W) tensors
    return lambda length: 4 * (length * DIM + 12 * BOOKS * 512 * words)


METHODS: dict[str, Method] = {
    "exact (oracle)": Method("exact (oracle)", _build_oracle, lambda n: 4 * 6 * n * n),
    "sdpa": Method("sdpa", _build_sdpa, lambda n: 4 * 4 * n * DIM),
    "lisa W=16": Method(
        "lisa W=16", _lisa_builder(16), _lisa_bytes(16), {"B": BOOKS, "W": 16, "gamma": GAMMA}
    ),
    "lisa W=128": Method(
        "lisa W=128", _lisa_builder(128), _lisa_bytes(128), {"B": BOOKS, "W": 128, "gamma": GAMMA}
    ),
}


def available_memory_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def run_case(
    method: Method,
    length: int,
    *,
    repeats: int,
    budget_s: float,
    device: torch.device,
    seed: int = 0,
    memory_fraction: float = 0.5,
) -> dict:
    """Measure one (method, L) case. Returns a result row (JSON-serialisable)."""
    row = {"method": method.name, "L": length, "params": method.params}
    need = method.bytes_needed(length)
    row["analytic_bytes"] = need
    if device.type == "cpu" and need > memory_fraction * available_memory_bytes():
        row["status"] = f"skipped (needs ~{need / 2**30:.1f} GiB)"
        return row
    g = torch.Generator().manual_seed(seed)
    try:
        fn = method.build(length, device, g)
        with torch.inference_mode():
            timing = time_call(fn, repeats=repeats, budget_s=budget_s, device=device)
            row["peak_bytes"] = peak_memory_bytes(fn, device)
    except (RuntimeError, MemoryError) as error:  # torch reports CPU OOM as RuntimeError
        if "memory" not in str(error).lower():
            raise
        row["status"] = "skipped (out of memory)"
        return row
    row.update(status="ok", **timing.as_dict())
    return row


# Cases the regression gate times by default: "<method>@<L>", small enough for a
# pull-request run (each sample is repeated to last >= 20 ms).
GATE_CASES = (
    "exact (oracle)@1024",
    "sdpa@1024",
    "sdpa@4096",
    "lisa W=16@1024",
    "lisa W=16@4096",
    "lisa W=128@4096",
)


def build_case(case_id: str) -> Callable[[], torch.Tensor]:
    """The regression gate's entry point: "<method>@<L>" -> a no-argument forward call."""
    name, _, length = case_id.rpartition("@")
    if name not in METHODS or not length.isdigit():
        raise ValueError(
            f"unknown case {case_id!r}; expected '<method>@<L>' with method in {sorted(METHODS)}"
        )
    fn = METHODS[name].build(int(length), torch.device("cpu"), torch.Generator().manual_seed(0))

    def call():
        with torch.inference_mode():
            return fn()

    return call
