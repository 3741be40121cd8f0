"""This machine's roofline: peak FLOP/s and memory bandwidth measured in the process that
times the methods, and where a measured call sits under them.

* Peak FLOP/s: a square matmul ``C = A @ B`` of side n in the measured dtype, counted as
  2 n^3 FLOPs (a multiply-add is 2). After an untimed warm-up, n starts at 1,024 and
  doubles while the next size (8x the work) would still take under ``MAX_CALL_S`` (up to
  4,096 on the CPU, 8,192 on CUDA): large enough for the BLAS to run at its best with
  every thread busy, small enough for many calls in a fraction of a second. The fastest
  of at least ``MIN_CALLS`` and at most ``MAX_CALLS`` calls within ``BUDGET_S`` is the
  peak.
* Peak bandwidth: ``dst.copy_(src)`` of a buffer far larger than the last-level cache
  (8x the cache reported by the OS, at least 256 MiB, at most 2 GiB, and never more than
  an eighth of the free memory), counted as read + write = 2x the buffer (the STREAM
  "copy" convention); the fastest call after a warm-up, by the same rule, is the peak.

The fastest call, not the median: on a machine shared with other work, a call that ran
undisturbed is the machine's capability, and the slower calls measure the other work.

Both use the thread count the rows use (``threads``, or torch's current setting) and are
timed like the rows (:func:`harness.measure.time_once`: CUDA events on CUDA). A result is
cached per (device, threads, dtype) in the process.

A row of analytic cost (``impls.costs.Cost``: FLOPs F and compulsory traffic T) measured
at median time t (:func:`roofline_fields`):

* achieved GFLOP/s = F / t / 1e9 and achieved GB/s = T / t / 1e9;
* arithmetic intensity I = F / T (FLOP per byte), ridge point = peak FLOP/s / peak B/s;
  ``bound`` is "compute" when I >= ridge, else "memory";
* roofline time = max(F / peak FLOP/s, T / peak B/s), the least time the call could take
  on this machine, and ``roofline_fraction`` = roofline time / t (1.0 = at the limit,
  0.1 = ten times slower than the limit).

See docs/roofline.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from harness.measure import available_memory_bytes, time_once

__all__ = [
    "ROOFLINE_FIELDS",
    "Peaks",
    "clear_cache",
    "measure_peaks",
    "roofline_fields",
    "with_roofline",
]

MAX_CALL_S = 0.1  # the matmul side doubles while the next size would stay under this
MATMUL_SIDES = {"cpu": (1_024, 4_096), "cuda": (1_024, 8_192)}  # (first, largest)
MIN_CALLS, MAX_CALLS, BUDGET_S = 3, 20, 0.4  # timed calls of each kind: the fastest counts
COPY_MIN_BYTES, COPY_MAX_BYTES = 256 * 2**20, 2 * 2**30
CACHE_MULTIPLE = 8  # the copied buffer is at least this many times the last-level cache
FALLBACK_CACHE_BYTES = 32 * 2**20

# what roofline_fields adds to a row; with_roofline drops stale ones first
ROOFLINE_FIELDS = (
    "achieved_gflops",
    "achieved_gbps",
    "arithmetic_intensity",
    "roofline_s",
    "roofline_fraction",
    "bound",
)


@dataclass(frozen=True)
class Peaks:
    """This machine's measured peaks for one (device, threads, dtype) (see the module)."""

    flops_per_s: float
    bytes_per_s: float
    method: str  # how they were measured, in words
    matmul_n: int  # side of the square matmul
    copy_bytes: int  # size of the copied buffer (bytes moved per copy: twice this)
    seconds: float  # wall time the measurement took
    device: str = "cpu"
    threads: int | None = None
    dtype: str = "float32"

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity at which the two roofs meet."""
        return self.flops_per_s / self.bytes_per_s

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "gflops": self.flops_per_s / 1e9,
            "gbps": self.bytes_per_s / 1e9,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Peaks:
        """The inverse of :meth:`as_dict` (derived keys are ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self) -> str:
        """One line for a report."""
        return (
            f"{self.flops_per_s / 1e9:,.1f} GFLOP/s, {self.bytes_per_s / 1e9:,.1f} GB/s "
            f"(ridge {self.ridge_flops_per_byte:.1f} FLOP/byte; {self.method}; "
            f"{self.seconds:.1f} s)"
        )


_CACHE: dict[tuple, Peaks] = {}


def clear_cache() -> None:
    """Forget the measured peaks of this process (the next call measures again)."""
    _CACHE.clear()


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return value


def _last_level_cache_bytes() -> int:
    """The largest cache the OS reports for CPU 0 (sysfs), or 32 MiB when unknown."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = entry.read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=FALLBACK_CACHE_BYTES)


def _copy_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        wanted = 4 * COPY_MIN_BYTES  # far beyond any GPU L2
    else:
        wanted = CACHE_MULTIPLE * _last_level_cache_bytes()
    wanted = min(max(wanted, COPY_MIN_BYTES), COPY_MAX_BYTES)
    return int(min(wanted, available_memory_bytes(device) // 8)) // 4096 * 4096


def _fastest(fn, device: torch.device, first: float | None = None) -> tuple[float, int]:
    """(fastest seconds, calls) of ``fn()``: at least MIN_CALLS and at most MAX_CALLS
    timed calls, and no new one once BUDGET_S is spent (``first``: a call already timed)."""
    samples = [] if first is None else [first]
    while len(samples) < MAX_CALLS and (len(samples) < MIN_CALLS or sum(samples) < BUDGET_S):
        samples.append(time_once(fn, device))
    return min(samples), len(samples)


def _matmul_peak(device: torch.device, dtype: torch.dtype) -> tuple[float, int, int]:
    """(best FLOP/s, side n, timed calls) of square matmuls (see the module)."""
    first, largest = MATMUL_SIDES.get(device.type, MATMUL_SIDES["cpu"])
    n = first

    def operands(n):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        return a, b, torch.empty(n, n, device=device, dtype=dtype)

    a, b, c = operands(n)
    torch.mm(a, b, out=c)  # warm-up: the BLAS's threads and buffers
    while True:
        seconds = time_once(lambda: torch.mm(a, b, out=c), device)  # noqa: B023
        if n >= largest or 8 * seconds >= MAX_CALL_S:
            break
        n *= 2
        a, b, c = operands(n)
    best, calls = _fastest(lambda: torch.mm(a, b, out=c), device, seconds)
    return 2.0 * n**3 / best, n, calls


def _copy_peak(device: torch.device) -> tuple[float, int, int]:
    """(best bytes/s, buffer bytes, timed calls) of a streaming copy, read + write counted."""
    size = _copy_bytes(device)
    if size < 4096:
        raise MemoryError(f"too little free memory on {device} for a bandwidth measurement")
    src = torch.ones(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: pages of both buffers touched
    best, calls = _fastest(lambda: dst.copy_(src), device)
    return 2.0 * size / best, size, calls


def measure_peaks(
    device: str | torch.device = "cpu",
    threads: int | None = None,
    dtype: torch.dtype | str = torch.float32,
) -> Peaks:
    """Peak FLOP/s (matmul) and bandwidth (copy) of ``device`` with ``threads`` torch
    threads (None: the current setting) for ``dtype``; cached per (device, threads, dtype)
    in this process. About a second on a CPU core."""
    device = torch.device(device)
    dtype = _dtype(dtype)
    dtype_name = str(dtype).removeprefix("torch.")
    before = torch.get_num_threads()
    used = threads if threads is not None else before
    key = (str(device), used, dtype_name)
    if key in _CACHE:
        return _CACHE[key]
    started = time.perf_counter()
    try:
        if used != before:
            torch.set_num_threads(used)
        with torch.inference_mode():
            flops, n, mm_calls = _matmul_peak(device, dtype)
            bandwidth, size, copy_calls = _copy_peak(device)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    who = f"{used} thread{'s' if used != 1 else ''}" if device.type == "cpu" else str(device)
    method = (
        f"matmul {n}x{n} {dtype_name}, 2n^3 FLOPs, fastest of {mm_calls}; "
        f"copy of {size / 2**20:,.0f} MiB, read + write counted, fastest of {copy_calls}; "
        f"{who}"
    )
    peaks = Peaks(
        flops_per_s=flops,
        bytes_per_s=bandwidth,
        method=method,
        matmul_n=n,
        copy_bytes=size,
        seconds=time.perf_counter() - started,
        device=str(device),
        threads=used if device.type == "cpu" else None,
        dtype=dtype_name,
    )
    if not (math.isfinite(flops) and flops > 0 and math.isfinite(bandwidth) and bandwidth > 0):
        raise RuntimeError(f"implausible peaks measured: {peaks}")
    _CACHE[key] = peaks
    return peaks


def roofline_fields(cost, median_s: float | None, peaks: Peaks | None) -> dict:
    """Where one call of analytic ``cost`` (``impls.costs.Cost``: ``flops``,
    ``traffic_bytes``) measured at ``median_s`` seconds sits (see the module):
    ``achieved_gflops``, ``achieved_gbps``, ``arithmetic_intensity`` (FLOP/byte; None
    without traffic), and with ``peaks`` also ``roofline_s``, ``roofline_fraction`` and
    ``bound``. Empty without a positive time."""
    if not median_s or median_s <= 0 or not math.isfinite(median_s):
        return {}
    flops, traffic = float(cost.flops), float(cost.traffic_bytes)
    out = {
        "achieved_gflops": flops / median_s / 1e9,
        "achieved_gbps": traffic / median_s / 1e9,
        "arithmetic_intensity": flops / traffic if traffic > 0 else None,
    }
    if peaks is None:
        return out
    roofline_s = max(flops / peaks.flops_per_s, traffic / peaks.bytes_per_s)
    compute = traffic <= 0 or flops / traffic >= peaks.ridge_flops_per_byte
    out["roofline_s"] = roofline_s
    out["roofline_fraction"] = roofline_s / median_s
    out["bound"] = "compute" if compute else "memory"
    return out


class _RowCost:
    """A row's analytic cost, read back from its ``analytic_*`` fields."""

    def __init__(self, row: dict):
        self.flops = row["analytic_flops"]
        self.traffic_bytes = row["analytic_traffic_bytes"]


def with_roofline(row: dict, peaks: Peaks | None) -> dict:
    """``row`` (a result row with ``analytic_flops``, ``analytic_traffic_bytes`` and
    ``median_s``) with its roofline fields recomputed against ``peaks`` (None: the
    achieved rates only); rows that were not measured, or carry no analytic cost, are
    returned as they are, less any stale roofline fields."""
    out = {k: v for k, v in row.items() if k not in ROOFLINE_FIELDS}
    if row.get("status") != "ok" or row.get("analytic_flops") is None:
        return out
    if row.get("analytic_traffic_bytes") is None:
        return out
    out.update(roofline_fields(_RowCost(row), row.get("median_s"), peaks))
    return out
