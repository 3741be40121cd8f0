"""Benchmark workloads, one module per family, each the single definition of its grid.

A family module exposes ``cases(...) -> Plan`` (the grid, with the methods and modes it
skips and why), ``run_case(case, ...) -> row`` (time, peak memory, analytic bytes of one
case), ``BASELINE`` (the exact method every other row is compared with, measured in the
same run) and ``QUICK_LENGTHS`` / ``FULL_LENGTHS``. ``nox -s bench`` (through
``python -m harness bench``), asv (``benchmarks/``) and the regression gate
(``harness.regress.gate_workload.build_case``) all read these definitions.

Families: ``attention`` (:mod:`harness.workloads.attention`) and ``graph``
(:mod:`harness.workloads.graph_sampling`: one sampled aggregation step of every sampler x estimator
and of exhaustive aggregation over synthetic graph sizes; run by ``harness.bench.graph_family``,
which keeps its own table and results file since its axis is graph size, not L).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["FAMILIES", "family_module"]

FAMILIES = {"attention": "harness.workloads.attention", "graph": "harness.workloads.graph_sampling"}


def family_module(name: str) -> tuple[ModuleType | None, str]:
    """(module, "") for a family whose workload exists here, else (None, reason)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown workload family {name!r}; known: {sorted(FAMILIES)}")
    if importlib.util.find_spec(FAMILIES[name]) is None:
        return None, f"no workload module {FAMILIES[name]} yet"
    return importlib.import_module(FAMILIES[name]), ""
