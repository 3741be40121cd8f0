"""Registry-driven pytest parameters: one per method (or per method and mode).

Methods come from ``impls.registry.all_methods()``: the built-ins, the
``lisa_bench.attention`` entry points, and ``module:attr`` references in the
``LISA_BENCH_METHODS`` environment variable. A method that cannot run here is still a
parameter, skipped with its reason.
"""

from __future__ import annotations

import pytest
from conformance_workload import runs_here, supported_modes

from impls import registry

METHODS = registry.all_methods()


def method_params(predicate=lambda spec: True):
    """pytest params (one per method) for methods satisfying ``predicate``."""
    params = []
    for spec in METHODS:
        if not predicate(spec):
            continue
        ok, reason = runs_here(spec)
        marks = [] if ok else [pytest.mark.skip(reason=f"{spec.name}: {reason}")]
        params.append(pytest.param(spec, id=spec.name, marks=marks))
    return params


def method_mode_params(predicate=lambda spec, mode: True):
    """pytest params for each (method, mode) with mode in the method's supported modes."""
    params = []
    for spec in METHODS:
        ok, reason = runs_here(spec)
        marks = [] if ok else [pytest.mark.skip(reason=f"{spec.name}: {reason}")]
        for mode in supported_modes(spec):
            if predicate(spec, mode):
                params.append(pytest.param(spec, mode, id=f"{spec.name}-{mode}", marks=marks))
    return params
