"""Run the installed conformance suite on chosen methods (``python -m harness conformance``).

:func:`resolve_methods` turns names and ``module:attr`` references into registry entries;
:func:`run` runs ``pytest --pyargs harness.conformance`` in this process with those
methods selected, keeping only the tests parametrized by them (the suite's self-checks are
left out), and returns pytest's exit code. It runs under the package's own
``pytest.ini`` and root directory, with hypothesis's cache in a scratch directory: it
leaves nothing in the working directory but the results it is asked for, and no
configuration of a surrounding project applies. Nothing here needs the repository: the suite, its
configuration and the broken methods of its self-checks ship in the package.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from impls import registry
from impls.registry import MethodSpec

__all__ = ["resolve_methods", "run"]

SUITE = "harness.conformance"


def resolve_methods(methods: Sequence[str], plugins: Sequence[str] = ()) -> list[MethodSpec]:
    """Registry entries for ``methods``: each a ``module:attr`` reference (every method it
    defines), or a name among the built-ins, installed entry points, ``LISA_BENCH_METHODS``
    and the ``plugins`` references. Raises ``registry.PluginError`` for a bad reference and
    ValueError for an unknown name (naming the known ones)."""
    chosen: list[MethodSpec] = []
    everything: list[MethodSpec] | None = None
    for item in methods:
        if ":" in item:
            chosen += registry.resolve(item)
            continue
        if everything is None:
            everything = registry.all_methods(plugins)
        found = [s for s in everything if s.name == item]
        if not found:
            known = ", ".join(s.name for s in everything)
            raise ValueError(f"unknown method {item!r}; known: {known}")
        chosen += found
    unique: dict[str, MethodSpec] = {}
    for spec in chosen:
        unique.setdefault(spec.name, spec)
    return list(unique.values())


class _Selection:
    """pytest plugin: select ``specs`` and deselect every test not parametrized by one."""

    def __init__(self, specs: Sequence[MethodSpec], results_dir: str | None):
        self.specs = list(specs)
        self.results_dir = results_dir

    def pytest_configure(self, config) -> None:
        from harness.conformance.pytest_hooks import RESULTS_DIR
        from harness.conformance.selection import select

        select(config, self.specs)
        if self.results_dir:
            config.stash[RESULTS_DIR] = self.results_dir

    def pytest_collection_modifyitems(self, config, items) -> None:
        from harness.conformance.selection import spec_of

        wanted = {id(s) for s in self.specs}
        keep = [item for item in items if id(spec_of(item)) in wanted]
        drop = [item for item in items if id(spec_of(item)) not in wanted]
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep


def run(
    specs: Sequence[MethodSpec],
    *,
    junitxml: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    pytest_args: Sequence[str] = (),
) -> int:
    """Run the suite on ``specs`` (in this process); returns pytest's exit code (0: every
    test passed; 1: some failed; 5: none ran). ``results_dir``: where
    ``conformance/errors.json`` goes; ``pytest_args``: extra pytest arguments (``-k``,
    ``-x``, ``-v``, ...)."""
    import pytest

    here = Path(__file__).resolve().parent
    # the package's own configuration and root, whatever surrounds the working directory
    args = ["-c", str(here / "pytest.ini"), "--rootdir", str(here), "--pyargs", SUITE]
    args += list(pytest_args)
    if junitxml is not None:
        args.append(f"--junitxml={Path(junitxml)}")
    plugin = _Selection(specs, None if results_dir is None else str(results_dir))
    with tempfile.TemporaryDirectory(prefix="lisa-bench-conformance-") as scratch:
        # hypothesis keeps a cache directory; unless the caller chose one, a scratch one
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", scratch)
        try:
            return int(pytest.main(args, plugins=[plugin]))
        finally:
            if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") == scratch:
                del os.environ["HYPOTHESIS_STORAGE_DIRECTORY"]
