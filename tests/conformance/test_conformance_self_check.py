"""Tests of the suite itself: the installed suite's self-checks
(``harness.conformance.test_self_check``: broken methods fail the checks); end to end, that
a broken method injected as an author would add one fails the project's generated suite;
and that installed entry points stay out of the project's run. (The conformance command
on a pip-installed copy: ``test_conformance_installed.py``.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.conformance import test_self_check as _suite

globals().update({name: fn for name, fn in vars(_suite).items() if name.startswith("test_")})

HERE = Path(__file__).resolve().parent
PEEK = "harness.conformance.broken:PEEK_AHEAD"


def _env(tmp_path, **extra):
    env = dict(os.environ)
    env.pop("LISA_BENCH_METHODS", None)
    env["LISA_BENCH_RESULTS"] = str(tmp_path)
    env.update(extra)
    return env


def test_injected_broken_method_fails_the_generated_suite(tmp_path):
    """Run the project's registry-generated causality test on a method injected through
    LISA_BENCH_METHODS, in a subprocess: it is collected (no new test code) and fails."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "test_conformance_properties.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "broken_peek_ahead and causality",
        ],  # fmt: skip
        env=_env(tmp_path, LISA_BENCH_METHODS=PEEK),
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = proc.stdout + proc.stderr
    assert "test_causality[broken_peek_ahead]" in report, report[-2000:]
    assert proc.returncode == 1, f"the suite did not fail on a broken method:\n{report[-2000:]}"
    assert "1 failed" in report, report[-2000:]


def test_project_run_ignores_installed_entry_points(monkeypatch):
    """An installed plugin (entry point) is not parametrized into the project's own run;
    LISA_BENCH_METHODS, set explicitly, is."""
    import importlib.metadata

    from harness.conformance.broken import NAN_ON_EMPTY
    from harness.conformance.selection import default_methods

    class EntryPoint:
        name, value = "leak", "harness.conformance.broken:NAN_ON_EMPTY"

        def load(self):
            return NAN_ON_EMPTY

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda *, group: [EntryPoint()])
    monkeypatch.delenv("LISA_BENCH_METHODS", raising=False)
    names = [s.name for s in default_methods()]
    assert "broken_nan_on_empty" not in names and "oracle" in names
    monkeypatch.setenv("LISA_BENCH_METHODS", PEEK)
    assert [s.name for s in default_methods()][-1] == "broken_peek_ahead"
