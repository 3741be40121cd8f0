"""Which methods the suite runs on, and how its tests are parametrized over them.

A suite test is marked with :func:`per_method` (one test per method, parameter ``spec``,
id ``NAME``) or :func:`per_method_mode` (one per method and supported mode, parameters
``spec`` and ``mode``, id ``NAME-causal`` / ``NAME-bidirectional``), with an optional
predicate choosing the methods (and modes) it applies to. :func:`generate`, called from
``pytest_generate_tests``, expands them at collection time over:

* the methods a caller selected, when it set them in the run's configuration (what
  ``python -m harness conformance --method ...`` does, through :func:`select`);
* otherwise the built-in methods plus the ``module:attr`` references in
  ``LISA_BENCH_METHODS`` when that variable is set. Entry points of installed packages are
  never picked up implicitly: installing a plugin does not change the project's test run.

A method that cannot run here is still a parameter, skipped with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from harness.conformance.workload import runs_here, supported_modes
from impls import registry
from impls.registry import MethodSpec

__all__ = ["default_methods", "generate", "per_method", "per_method_mode", "select"]

_MARK = "_lisa_conformance"
SELECTED = pytest.StashKey[list]()  # list[MethodSpec] chosen by the caller
_RESOLVED = pytest.StashKey[list]()  # the list generate() uses (resolved once per run)


def default_methods() -> list[MethodSpec]:
    """The built-ins, plus ``LISA_BENCH_METHODS`` references when set (no entry points)."""
    return registry.all_methods(entry_points=False, env=True)


def select(config: pytest.Config, specs: Sequence[MethodSpec]) -> None:
    """Run the suite on ``specs`` only (call from a plugin's ``pytest_configure``)."""
    config.stash[SELECTED] = list(specs)


def selected_methods(config: pytest.Config) -> list[MethodSpec]:
    if _RESOLVED not in config.stash:
        chosen = config.stash.get(SELECTED, None)
        config.stash[_RESOLVED] = default_methods() if chosen is None else list(chosen)
    return config.stash[_RESOLVED]


def per_method(predicate: Callable[[MethodSpec], bool] | None = None, *, runs: bool = True):
    """Decorator: parametrize the test over the selected methods satisfying ``predicate``.
    ``runs=False``: the test only reads the entry, so it is not skipped for a method that
    cannot run here."""

    def mark(fn):
        setattr(fn, _MARK, ("method", predicate or (lambda spec: True), runs))
        return fn

    return mark


def per_method_mode(predicate: Callable[[MethodSpec, str], bool] | None = None):
    """Decorator: parametrize over (method, mode) for each supported mode of each selected
    method satisfying ``predicate(spec, mode)``."""

    def mark(fn):
        setattr(fn, _MARK, ("mode", predicate or (lambda spec, mode: True), True))
        return fn

    return mark


def generate(metafunc: pytest.Metafunc) -> None:
    """Expand a :func:`per_method` / :func:`per_method_mode` test (a no-op for others)."""
    found = getattr(metafunc.function, _MARK, None)
    if found is None:
        return
    kind, predicate, runs = found
    params = []
    for spec in selected_methods(metafunc.config):
        ok, reason = runs_here(spec) if runs else (True, "")
        marks = [] if ok else [pytest.mark.skip(reason=f"{spec.name}: {reason}")]
        if kind == "method":
            if predicate(spec):
                params.append(pytest.param(spec, id=spec.name, marks=marks))
            continue
        for mode in supported_modes(spec):
            if predicate(spec, mode):
                params.append(pytest.param(spec, mode, id=f"{spec.name}-{mode}", marks=marks))
    metafunc.parametrize("spec" if kind == "method" else "spec,mode", params)


def spec_of(item: pytest.Item) -> MethodSpec | None:
    """The method a collected test runs on (None for tests not parametrized by method)."""
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("spec")
