"""asv benchmarks over the attention workload of ``harness.workloads.attention`` (the one
definition shared with ``nox -s bench`` and the regression gate): every available registry
method and the LISA operator rows, batch 1, dim 128, forward and forward+backward, causal
and bidirectional, over sequence length L.

* ``AttentionScaling``: ``time_call`` (wall time of one call), ``peakmem_call`` (peak RSS
  of the benchmark process, asv's measure: it includes the inputs built in ``setup``) and
  ``track_analytic_bytes`` (expected working bytes).
* ``AttentionPeakMemory``: ``track_peak_over_analytic``, the peak heap of one call (memray
  on CPU, ``torch.cuda.max_memory_allocated`` on CUDA) over the analytic bytes. The bound
  is linear with generous constants, so a ratio of a few units is its constant; a ratio
  that grows with L (compare two lengths) flags super-linear memory such as a stray
  L x L tensor. On CPU it needs memray (installed in asv's environments by
  ``asv.conf.json`` through the project's ``bench`` extra); without it the benchmark is
  skipped from ``setup``.
* ``AttentionErrorVsSoftmax`` / ``AttentionErrorVsIdentity``: ``track_error``, the
  relative error of the forward output at small L against the float64 oracle: exact
  softmax attention on the same q, k, v (the approximation error), or the output the
  method's oracle identity predicts (the implementation error).

Lengths: the quick grid; ``LISA_BENCH_ASV_FULL=1`` in the environment selects the full
grid and ``LISA_BENCH_ASV_LENGTHS=256,1024`` a grid of your own. ``LISA_BENCH_DEVICE``
picks the device (default: CUDA when available). A parameter combination a method does
not support, one that does not fit in memory, or a benchmark whose optional dependency is
missing is skipped: ``NotImplementedError`` raised in ``setup`` (asv's documented way to
skip; raised in the benchmark body it would count as a failure), never in the body.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from harness.measure import peak_memory_bytes
from harness.workloads import attention as workload

DEVICE = os.environ.get("LISA_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
FULL = os.environ.get("LISA_BENCH_ASV_FULL", "") not in ("", "0")
LENGTHS = list(workload.FULL_LENGTHS if FULL else workload.QUICK_LENGTHS)
if os.environ.get("LISA_BENCH_ASV_LENGTHS"):  # e.g. "256" for a smoke run (nox -s asv)
    LENGTHS = [int(n) for n in os.environ["LISA_BENCH_ASV_LENGTHS"].split(",")]
ACCURACY_LENGTHS = [n for n in LENGTHS if n <= 1_024] or [min(LENGTHS)]  # builds (L, L)
_ROWS, SKIPPED = workload.variants(DEVICE)
VARIANTS = {v.label: v for v in _ROWS}
METHODS = list(VARIANTS)


def _setup_case(method: str, mode: str, pass_: str, length: int) -> tuple:
    variant = VARIANTS[method]
    why = variant.mode_error(mode, DEVICE)
    if why:
        raise NotImplementedError(why)
    case = workload.Case(method, length, mode, pass_, DEVICE)
    need = workload.analytic_bytes(variant, case)
    if need > 0.5 * workload.available_memory_bytes(DEVICE):
        raise NotImplementedError(f"{case.id} needs ~{need / 2**30:.2f} GiB, more than half free")
    return variant, case


class AttentionScaling:
    params = (METHODS, list(workload.MODES), list(workload.PASSES), LENGTHS)
    param_names = ["method", "mode", "pass", "L"]
    timeout = 600

    def setup(self, method: str, mode: str, pass_: str, length: int) -> None:
        self.variant, self.case = _setup_case(method, mode, pass_, length)
        self.fn = workload.prepare(self.variant, self.case)

    def time_call(self, method: str, mode: str, pass_: str, length: int) -> None:
        self.fn()

    def peakmem_call(self, method: str, mode: str, pass_: str, length: int) -> None:
        self.fn()

    def track_analytic_bytes(self, method: str, mode: str, pass_: str, length: int) -> int:
        return workload.analytic_bytes(self.variant, self.case)

    track_analytic_bytes.unit = "bytes"


def missing_peak_tracker(device: str) -> str | None:
    """Why peak heap bytes cannot be measured on ``device`` here, or None when they can
    (CUDA: torch's allocator statistics; CPU: memray)."""
    if device.startswith("cuda") or importlib.util.find_spec("memray") is not None:
        return None
    return (
        "memray is not installed: pip install memray (the project's bench extra; asv's "
        "environments get it from asv.conf.json)"
    )


class AttentionPeakMemory:
    """Peak heap of one call over the analytic bytes: skipped (from ``setup``) where it
    cannot be measured, so a missing memray never fails a benchmark."""

    params = AttentionScaling.params
    param_names = AttentionScaling.param_names
    timeout = 600

    def setup(self, method: str, mode: str, pass_: str, length: int) -> None:
        why = missing_peak_tracker(DEVICE)
        if why:
            raise NotImplementedError(why)
        self.variant, self.case = _setup_case(method, mode, pass_, length)
        self.fn = workload.prepare(self.variant, self.case)

    def track_peak_over_analytic(self, method: str, mode: str, pass_: str, length: int) -> float:
        peak = peak_memory_bytes(self.fn, self.case.device)
        if peak is None:  # memray vanished since setup: a real failure, not a skip
            raise RuntimeError("peak memory could not be measured")
        return peak / workload.analytic_bytes(self.variant, self.case)

    track_peak_over_analytic.unit = "ratio"


@functools.cache
def _errors(method: str, mode: str, length: int) -> dict:
    """Both errors of one case, computed once for the two accuracy classes."""
    variant, case = _setup_case(method, mode, "forward", length)
    return workload.errors_vs_oracle(variant, case)


class _AttentionError:
    """Relative error of one forward call against a float64 reference (small L)."""

    params = (METHODS, list(workload.MODES), ACCURACY_LENGTHS)
    param_names = ["method", "mode", "L"]
    timeout = 600
    reference = ""

    def setup(self, method: str, mode: str, length: int) -> None:
        self.error = _errors(method, mode, length)[self.reference]
        if self.error is None:
            raise NotImplementedError(f"{method} has no {self.reference} reference")

    def track_error(self, method: str, mode: str, length: int) -> float:
        return self.error

    track_error.unit = "relative error"


class AttentionErrorVsSoftmax(_AttentionError):
    """Approximation error against exact softmax attention on the same q, k, v."""

    reference = "softmax"


class AttentionErrorVsIdentity(_AttentionError):
    """Implementation error against the output the method's oracle identity predicts."""

    reference = "identity"
