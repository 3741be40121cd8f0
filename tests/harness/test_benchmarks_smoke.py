"""Every asv benchmark imports and runs its smallest case, so the suite never rots: every
parameter combination at the smallest L is set up, and every benchmark function runs for
every method and pass.

asv's convention is followed: ``NotImplementedError`` from ``setup`` means "this
combination does not apply" (a mode the method refuses, a reference it does not have, an
optional dependency that is missing); raised from a benchmark body asv counts it as a
failure, and so does this test, as anything else a benchmark raises.
"""

from __future__ import annotations

import builtins
import importlib.util
import inspect
import itertools
import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from benchmarks import attention_scaling, graph_sampling
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
                result = getattr(bench, name)(*combo)  # never NotImplementedError here
                if name.startswith("track_"):
                    assert result > 0 and math.isfinite(result), (name, combo, result)
                ran.setdefault(combo[names["method"]], set()).add(f"{cls.__name__}.{name}")
    methods = attention_scaling.METHODS
    assert len(methods) >= 4 and {"sdpa", "oracle", "lisa W=16", "lisa W=128"} <= set(methods)
    for method in methods:
        kinds = {n.split(".")[1].split("_")[0] for n in ran.get(method, ())}
        assert kinds == {"time", "peakmem", "track"}, (method, ran.get(method))
        assert "AttentionErrorVsIdentity.track_error" in ran[method], method
        assert "AttentionPeakMemory.track_peak_over_analytic" in ran[method], method
    # only combinations the registry refuses are left out
    variants = attention_scaling.VARIANTS
    expected = {
        (m, mode)
        for m in methods
        for mode in workload.MODES
        if variants[m].mode_error(mode, attention_scaling.DEVICE)
    }
    assert not_applicable["AttentionScaling"] == expected
    assert not_applicable["AttentionPeakMemory"] == expected
    assert not_applicable["AttentionErrorVsIdentity"] == expected
    no_keys = {
        (m, mode) for m in methods for mode in workload.MODES if variants[m].kind == "lisa_operator"
    }
    assert not_applicable["AttentionErrorVsSoftmax"] == expected | no_keys


def _without_memray(monkeypatch):
    """Make ``import memray`` and its ``find_spec`` fail, as where it is not installed."""
    real_import, real_find_spec = builtins.__import__, importlib.util.find_spec

    def no_import(name, *args, **kwargs):
        if name.split(".")[0] == "memray":
            raise ImportError("No module named 'memray'")
        return real_import(name, *args, **kwargs)

    def no_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == "memray" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_import)
    monkeypatch.setattr(importlib.util, "find_spec", no_spec)


def test_missing_memray_skips_the_peak_benchmark_from_setup(monkeypatch):
    """Without memray (CPU) the peak benchmark is skipped in ``setup`` with the install
    hint — asv's skip — instead of failing in its body; the other benchmarks still run."""
    if attention_scaling.DEVICE != "cpu":
        pytest.skip("on CUDA the peak comes from torch, memray is not needed")
    _without_memray(monkeypatch)
    length = min(attention_scaling.LENGTHS)
    combo = ("sdpa", "causal", "forward", length)
    with pytest.raises(NotImplementedError, match="memray is not installed.*pip install"):
        attention_scaling.AttentionPeakMemory().setup(*combo)
    bench = attention_scaling.AttentionScaling()
    bench.setup(*combo)  # time_, peakmem_ and track_analytic_bytes do not need memray
    assert bench.track_analytic_bytes(*combo) > 0


def test_no_benchmark_body_raises_not_implemented():
    """asv records NotImplementedError from a benchmark body as a failure: skips belong in
    ``setup``. Checked on the source of every benchmark method."""
    for module in (attention_scaling, graph_sampling):
        for cls in _benchmark_classes(module):
            for name, fn in inspect.getmembers(cls, inspect.isfunction):
                if name.startswith(("time_", "peakmem_", "track_")):
                    assert "NotImplementedError" not in inspect.getsource(fn), (cls, name)


def test_asv_environments_install_what_the_benchmarks_need():
    """asv.conf.json installs torch first (the pinned CPU build, so no CUDA build is
    pulled), then the project wheel with an extra that provides memray."""
    root = Path(__file__).resolve().parents[2]
    conf = json.loads((root / "asv.conf.json").read_text())
    commands = [shlex.split(c) for c in conf["install_command"]]
    assert commands[0][-1] == "torch==2.13.0", commands
    wheel = [c[-1] for c in commands if c[-1].startswith("{wheel_file}")]
    assert len(wheel) == 1 and wheel[0].startswith("{wheel_file}["), commands
    extras = wheel[0].removeprefix("{wheel_file}[").removesuffix("]").split(",")
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    needs = " ".join(req for extra in extras for req in project["optional-dependencies"][extra])
    assert "memray" in needs, (extras, needs)
