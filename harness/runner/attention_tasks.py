"""What an isolated worker does for the attention workload (module-level functions, so
they pickle), and the parent-side planning that uses them.

The parent process never imports an outside method: every ``module:attr`` reference,
``LISA_BENCH_METHODS`` entry and entry point of the ``lisa_bench.attention`` group is
first loaded alone in the worker (:func:`probe_source`); one that raises, crashes the
interpreter or hangs becomes a skipped method with that status, and the plan is made in
the worker from the sources that loaded. The plan comes back as plain data
(:meth:`Variant.stripped`); the worker keeps the method objects, built and calibrated
once, across cases.

A case in the worker (:func:`measure_case`): the row's output is validated once per mode
(``harness.runner.validation``); an invalid row is never timed. A valid one is timed
(one warm-up call, then between 3 and ``repeats`` calls within ``budget_s``; the samples
come back in the row as ``samples_s``) and its peak memory measured
(``harness.workloads.attention.run_case``); given the run's peaks, the row is placed on
the roofline (``harness.measure_peaks``). The peaks themselves are measured once per run
in the same worker (:func:`measure_run_peaks`), with the thread count the cases use.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence

import torch

from harness.measure import time_once
from harness.measure_peaks import Peaks, measure_peaks
from harness.runner.isolation import IsolatedRunner
from harness.runner.validation import check_attention_row
from harness.workloads import attention as workload
from impls import registry

__all__ = [
    "external_sources",
    "load_plan",
    "load_sources",
    "measure_case",
    "measure_peaks_in",
    "measure_run_peaks",
    "probe_source",
]

MIN_ROUNDS = 3

_VARIANTS: dict[tuple, dict[str, workload.Variant]] = {}
_CHECKED: dict[tuple, str | None] = {}


def external_sources(extra: Sequence[str] = ()) -> list[str]:
    """Every outside method reference, unresolved: ``extra``, then the
    ``LISA_BENCH_METHODS`` entries, then the entry points' ``module:attr`` values (listing
    entry points reads package metadata only; nothing is imported)."""
    refs = list(extra)
    env = os.environ.get(registry.ENV_VAR, "")
    refs += [r.strip() for r in env.split(",") if r.strip()]
    for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP):
        refs.append(ep.value)
    seen: set[str] = set()
    return [r for r in refs if not (r in seen or seen.add(r))]


def probe_source(ref: str) -> list[str]:
    """(worker) Load one outside reference; the method names it defines."""
    return [s.name for s in registry.resolve(ref)]


def load_sources(runner: IsolatedRunner, extra: Sequence[str] = ()) -> tuple[list, dict]:
    """(parent) Load every outside source (:func:`external_sources`) alone in the worker:
    ([references that loaded], {reference: "cannot load REF: status: first line"})."""
    good: list[str] = []
    failed: dict[str, str] = {}
    for ref in external_sources(extra):
        outcome = runner.call(probe_source, ref)
        if outcome.ok:
            good.append(ref)
        else:
            failed[ref] = f"cannot load {ref}: {outcome.describe().splitlines()[0][:300]}"
    return good, failed


def _plan(lengths, methods, modes, passes, device, sources, lenient) -> workload.Plan:
    """(worker) The plan from the built-ins and ``sources`` only, rows stripped. With
    ``lenient`` (some source failed to load) a requested name nobody defines is listed as
    skipped instead of being an error: the failed source may have defined it."""
    dropped: list[dict] = []
    if lenient and methods is not None:
        rows, skipped = workload.variants(device, extra=sources, discover=False)
        known = {v.label for v in rows} | {s["method"] for s in skipped}
        dropped = [
            {"method": m, "reason": "not defined by any source that loaded"}
            for m in methods
            if m not in known
        ]
        methods = [m for m in methods if m in known]
    plan = workload.make_plan(
        lengths,
        methods=methods,
        modes=modes,
        passes=passes,
        device=device,
        extra=sources,
        discover=False,
    )
    return workload.Plan(
        [v.stripped() for v in plan.variants],
        plan.cases,
        plan.skipped_methods + dropped,
        plan.skipped_modes,
        list(sources),
    )


def load_plan(
    runner: IsolatedRunner,
    lengths: Sequence[int],
    *,
    methods: Sequence[str] | None,
    modes: Sequence[str],
    passes: Sequence[str],
    device: str,
    extra: Sequence[str] = (),
) -> workload.Plan:
    """(parent) Probe every outside source in the worker, then plan there (see the module
    docstring). Sources that failed to load are added to ``plan.skipped_methods`` with
    their status; a name in ``methods`` that only a failed source could have defined is
    not "unknown": its source's failure is the reason. Raises ValueError for a bad
    request (unknown method, mode or pass) or a planning failure."""
    good, failures = load_sources(runner, extra)
    failed = [{"method": ref, "reason": reason} for ref, reason in failures.items()]
    wanted = None if methods is None else list(methods)
    outcome = runner.call(
        _plan, list(lengths), wanted, list(modes), list(passes), device, good, bool(failed)
    )
    if not outcome.ok:
        first = outcome.message.splitlines()[0] if outcome.message else outcome.status
        if outcome.status == "error" and first.startswith("ValueError: "):
            raise ValueError(first.removeprefix("ValueError: "))
        raise ValueError(f"planning failed ({outcome.status}): {first}")
    plan = outcome.value
    plan.skipped_methods = failed + plan.skipped_methods
    return plan


def _variant(label: str, device: str, sources: tuple[str, ...]) -> workload.Variant:
    key = (device, sources)
    if key not in _VARIANTS:
        rows, _ = workload.variants(device, extra=list(sources), discover=False)
        _VARIANTS[key] = {v.label: v for v in rows}
    return _VARIANTS[key][label]


def sampling_timer(repeats: int, budget_s: float, device: torch.device):
    def timer(fn) -> list[float]:
        warm = time_once(fn, device)
        fit = int(budget_s / max(warm, 1e-9))
        rounds = max(1, min(repeats, max(MIN_ROUNDS, fit)))
        return [time_once(fn, device) for _ in range(rounds)]

    return timer


def measure_case(
    label: str,
    case: workload.Case,
    sources: tuple[str, ...],
    *,
    seed: int,
    memory_fraction: float,
    repeats: int,
    budget_s: float,
    validate: bool = True,
    peaks: dict[str, Peaks] | None = None,
) -> dict:
    """(worker) Validate (once per row and mode), then time and measure one case;
    ``peaks`` maps a dtype name to this machine's peaks for it (the row's dtype is looked
    up; a dtype without peaks gets the achieved rates only)."""
    variant = _variant(label, case.device, tuple(sources))
    if validate:
        key = (label, case.mode, case.device, tuple(sources), seed)
        if key not in _CHECKED:
            _CHECKED[key] = check_attention_row(variant, case.mode, case.device, seed)
        problem = _CHECKED[key]
        if problem is not None:
            row = {**case.as_dict(), "params": variant.params, "dtype": variant.dtype}
            row["analytic_bytes"] = workload.analytic_bytes(variant, case)
            row["status"] = f"invalid: {problem}"
            return row
    samples: list[float] = []
    base = sampling_timer(repeats, budget_s, torch.device(case.device))

    def timer(fn):
        samples.extend(base(fn))
        return list(samples)

    row = workload.run_case(
        variant,
        case,
        seed=seed,
        memory_fraction=memory_fraction,
        timer=timer,
        peaks=(peaks or {}).get(variant.dtype),
    )
    if row["status"] == "ok":
        row["samples_s"] = samples
    return row


def measure_run_peaks(device: str, dtypes: Sequence[str]) -> dict[str, Peaks]:
    """(worker) This machine's peaks for each dtype the plan's rows use, with the worker's
    thread count (the one every case runs with): {dtype name: Peaks}."""
    return {name: measure_peaks(device, None, name) for name in dict.fromkeys(dtypes)}


PEAKS_TIMEOUT_S = 120.0  # the peaks take about a second; a machine this slow gets none


def measure_peaks_in(runner, device: str, dtypes) -> tuple[dict[str, Peaks], str | None]:
    """(parent) ({dtype: Peaks}, None) measured by :func:`measure_run_peaks` in the
    worker, or ({}, why) when that failed: the run goes on without roofline fractions."""
    limit = runner.limits.timeout_s
    limit = PEAKS_TIMEOUT_S if limit is None else min(limit, PEAKS_TIMEOUT_S)
    outcome = runner.call(measure_run_peaks, device, list(dict.fromkeys(dtypes)), timeout_s=limit)
    if not outcome.ok:
        first = outcome.message.splitlines()[0] if outcome.message else ""
        return {}, f"{outcome.status}: {first}"[:300]
    return dict(outcome.value), None
