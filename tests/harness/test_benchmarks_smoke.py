"""Every asv benchmark imports and runs its smallest case, so the suite never rots: every
parameter combination at the smallest L is set up, and every benchmark function runs for
every method and pass.

asv's convention is followed: ``NotImplementedError`` from ``setup`` or from a benchmark
means "this combination does not apply" (a mode the method refuses, a reference it does
not have); anything else is a failure.
"""

from __future__ import annotations

import inspect
import itertools
import math

import torch

from benchmarks import attention_scaling
from harness.workloads import attention as workload


def _benchmark_classes(module):
    return [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if c.__module__ == module.__name__
        and hasattr(c, "params")
        and not c.__name__.startswith("_")
    ]


def test_every_benchmark_runs_its_smallest_case():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared machine stalls 2-thread regions; results unaffected
    try:
        _run_every_benchmark()
    finally:
        torch.set_num_threads(threads)


def _run_every_benchmark():
    ran: dict[str, set[str]] = {}
    not_applicable: dict[str, set] = {}
    done: set[tuple] = set()
    for cls in _benchmark_classes(attention_scaling):
        names = dict(zip(cls.param_names, range(len(cls.param_names)), strict=True))
        for combo in itertools.product(*cls.params):
            if combo[-1] != min(cls.params[-1]):
                continue
            bench = cls()
            try:
                bench.setup(*combo)
            except NotImplementedError:
                key = (combo[names["method"]], combo[names["mode"]])
                not_applicable.setdefault(cls.__name__, set()).add(key)
                continue
            # every set-up runs; the benchmarks themselves once per (method, pass): the
            # other mode goes through the same code with another flag
            pass_ = combo[names["pass"]] if "pass" in names else ""
            if (cls.__name__, combo[names["method"]], pass_) in done:
                continue
            done.add((cls.__name__, combo[names["method"]], pass_))
            for name in dir(bench):
                if not name.startswith(("time_", "peakmem_", "track_")):
                    continue
                try:
                    result = getattr(bench, name)(*combo)
                except NotImplementedError:
                    continue
                if name.startswith("track_"):
                    assert result > 0 and math.isfinite(result), (name, combo, result)
                ran.setdefault(combo[names["method"]], set()).add(f"{cls.__name__}.{name}")
    methods = attention_scaling.METHODS
    assert len(methods) >= 4 and {"sdpa", "oracle", "lisa W=16", "lisa W=128"} <= set(methods)
    for method in methods:
        kinds = {n.split(".")[1].split("_")[0] for n in ran.get(method, ())}
        assert kinds == {"time", "peakmem", "track"}, (method, ran.get(method))
        assert "AttentionErrorVsIdentity.track_error" in ran[method], method
        assert "AttentionScaling.track_peak_over_analytic" in ran[method], method
    # only combinations the registry refuses are left out
    variants = attention_scaling.VARIANTS
    expected = {
        (m, mode)
        for m in methods
        for mode in workload.MODES
        if variants[m].mode_error(mode, attention_scaling.DEVICE)
    }
    assert not_applicable["AttentionScaling"] == expected
    assert not_applicable["AttentionErrorVsIdentity"] == expected
    no_keys = {
        (m, mode) for m in methods for mode in workload.MODES if variants[m].kind == "lisa_operator"
    }
    assert not_applicable["AttentionErrorVsSoftmax"] == expected | no_keys
