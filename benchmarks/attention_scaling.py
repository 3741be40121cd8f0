"""asv benchmarks over the attention scaling workload of ``harness.attention_scaling``
(one definition shared with ``nox -s bench``): forward time and peak memory of exact
attention, SDPA and LISA against sequence length."""

from __future__ import annotations

import torch

from harness.attention_scaling import METHODS, available_memory_bytes

LENGTHS = [1_024, 4_096, 16_384]


class AttentionForward:
    params = (list(METHODS), LENGTHS)
    param_names = ["method", "L"]
    timeout = 600

    def setup(self, method: str, length: int) -> None:
        spec = METHODS[method]
        if spec.bytes_needed(length) > 0.5 * available_memory_bytes():
            raise NotImplementedError(f"{method} at L={length} does not fit in memory here")
        self.fn = spec.build(length, torch.device("cpu"), torch.Generator().manual_seed(0))

    def time_forward(self, method: str, length: int) -> None:
        with torch.inference_mode():
            self.fn()

    def peakmem_forward(self, method: str, length: int) -> None:
        with torch.inference_mode():
            self.fn()

    def track_analytic_bytes(self, method: str, length: int) -> int:
        return METHODS[method].bytes_needed(length)

    track_analytic_bytes.unit = "bytes"
