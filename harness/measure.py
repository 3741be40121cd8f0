"""Timing and memory measurement of one callable.

* Time: one warm-up call, then repeated calls until ``repeats`` are done or ``budget_s``
  seconds are spent (at least one timed call); report the median and the quartiles.
* Host memory: the peak heap bytes allocated *during* one call, recorded with memray's
  Tracker (inputs allocated before the call are not counted). When memray is missing the
  peak is reported as None, never guessed.
* On CUDA, time comes from CUDA events after synchronisation and memory from
  ``torch.cuda.max_memory_allocated`` after a reset, minus what was allocated before.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Timing", "available_memory_bytes", "time_call", "time_once", "peak_memory_bytes"]


@dataclass
class Timing:
    median_s: float
    q1_s: float
    q3_s: float
    runs: int

    def as_dict(self) -> dict:
        return {"median_s": self.median_s, "q1_s": self.q1_s, "q3_s": self.q3_s, "runs": self.runs}


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``fn()``: CUDA events after synchronisation on CUDA, the
    wall clock elsewhere."""
    if device.type == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(stop) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def time_call(
    fn: Callable[[], object],
    *,
    repeats: int = 5,
    budget_s: float = 20.0,
    device: torch.device | str = "cpu",
) -> Timing:
    """Median wall time of ``fn()`` over up to ``repeats`` calls after one warm-up."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    warm = time_once(fn, device)
    samples: list[float] = []
    spent = warm
    while len(samples) < repeats and (not samples or spent < budget_s):
        samples.append(time_once(fn, device))
        spent += samples[-1]
    if len(samples) >= 4:
        q1, _, q3 = statistics.quantiles(samples, n=4)
    else:
        q1, q3 = min(samples), max(samples)
    return Timing(statistics.median(samples), q1, q3, len(samples))


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int | None:
    """Peak bytes allocated while ``fn()`` runs, beyond what was allocated before it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    try:
        import memray
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "call.bin")
        with memray.Tracker(path, native_traces=False):
            fn()
        return int(memray.FileReader(path).metadata.peak_memory)


def available_memory_bytes(device: str | torch.device = "cpu") -> int:
    """Free memory of ``device`` now (CUDA: free device memory; CPU: available pages)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30
