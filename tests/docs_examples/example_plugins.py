"""Shared by the tests of the plugin examples in docs/examples: importing an example
module the way ``PYTHONPATH=docs/examples`` would, and the checks every example's entry
must pass whether or not its outside package is installed."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from harness.conformance.requirements import entry_problems

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def import_example(name: str):
    """The module docs/examples/<name>.py (docs/examples on sys.path only while importing)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def check_entry(spec, package: str, pip_name: str) -> None:
    """The entry is complete, available exactly when ``package`` is importable, and says
    how to install it when it is not."""
    assert entry_problems(spec) == []
    ok, reason = spec.availability()
    installed = importlib.util.find_spec(package) is not None
    assert ok is installed
    assert installed or f"pip install {pip_name}" in reason
