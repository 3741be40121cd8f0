"""The conformance suite from a pip-installed copy, far from the repository: the project
and the example plugin (tests/example_plugin) are installed into a temporary directory,
which is then the only entry of PYTHONPATH, and every command runs from another temporary
directory. The suite, its configuration and its broken self-check methods must all come
from the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs two packages (about 30 s)

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "example_plugin"
PEEK = "harness.conformance.broken:PEEK_AHEAD"


def _junit(path: Path) -> dict[str, str | None]:
    """{test name: None if it passed, else the first line of its failure message}."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        bad = case.findall("failure") + case.findall("error")
        skipped = case.findall("skipped")
        if skipped:
            continue
        message = (bad[0].get("message") or "").splitlines()[0] if bad else None
        out[case.get("name")] = message
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site directory, working directory, environment) of an installed copy."""
    tmp = tmp_path_factory.mktemp("installed")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("reference", "impls", "harness"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    plugin = shutil.copytree(PLUGIN, tmp / "plugin", ignore=ignore)
    site = tmp / "site"
    pip = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
        "--no-index", "--target", str(site), str(src), str(plugin),
    ]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot build the packages here: {done.stderr[-500:]}")
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_BENCH_")}
    env["PYTHONPATH"] = str(site)
    return site, work, env


def _run(args, installed, timeout=300, **env):
    site, work, base = installed
    return subprocess.run(
        [sys.executable, *args],
        cwd=work,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_everything_is_imported_from_the_installed_copy(installed):
    site = installed[0]
    code = (
        "import harness.conformance, impls, reference, lisa_bench_example;"
        "print(harness.conformance.__file__, impls.__file__, reference.__file__,"
        "lisa_bench_example.__file__)"
    )
    done = _run(["-c", code], installed)
    assert done.returncode == 0, done.stderr
    for path in done.stdout.split():
        assert Path(path).is_relative_to(site), path
    assert (site / "harness" / "conformance" / "pytest.ini").is_file()  # package data


def test_installed_command_passes_the_example_plugin(installed):
    """By its entry-point name: every test of the method runs and passes."""
    work = installed[1]
    done = _run(
        ["-m", "harness", "conformance", "--method", "example_softmax", "--junitxml", "ok.xml"],
        installed,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "conformance passed: example_softmax" in done.stderr
    results = _junit(work / "ok.xml")
    assert len(results) > 20 and all(m is None for m in results.values()), results
    assert all("[example_softmax" in name for name in results)  # no self-checks
    assert any(name.startswith("test_gradients_match_oracle_identity") for name in results)
    assert sorted(p.name for p in work.iterdir()) == ["ok.xml", "results"]  # no caches


def test_installed_command_fails_the_peek_ahead_method_naming_causality(installed):
    work = installed[1]
    done = _run(
        ["-m", "harness", "conformance", "--method", PEEK, "--junitxml", "bad.xml"], installed
    )
    assert done.returncode == 1, (done.stdout + done.stderr)[-3000:]
    results = _junit(work / "bad.xml")
    failed = {name: message for name, message in results.items() if message is not None}
    assert "test_causality[broken_peek_ahead]" in failed, failed
    assert failed["test_causality[broken_peek_ahead]"].startswith(
        "AssertionError: causality: changing inputs after position"
    )


def test_installed_suite_runs_under_pytest_pyargs(installed):
    """``pytest --pyargs harness.conformance``: the suite's self-checks, and a method
    given through LISA_BENCH_METHODS."""
    work = installed[1]
    done = _run(
        [
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "harness.conformance",
            "-q",
            "-k",
            "self_check or (example_softmax and (causality or entry))",
            "--junitxml",
            "pyargs.xml",
        ],  # fmt: skip
        installed,
        LISA_BENCH_METHODS="lisa_bench_example:SPEC",
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    results = _junit(work / "pyargs.xml")
    assert all(message is None for message in results.values()), results
    assert "test_causality[example_softmax]" in results
    assert "test_entry_meets_the_requirements[example_softmax]" in results
    assert "test_peek_ahead_is_caught_by_the_causality_check" in results
