"""A bad plugin reference (``LISA_BENCH_METHODS``, ``--method``) or a broken entry point
fails only the commands that use methods, with one line naming it (exit status 2); help
and the method-free commands keep working."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from impls import registry
from impls.registry import PluginError, PluginTypeError

ROOT = Path(__file__).resolve().parents[2]
BAD = "nosuch.mod:SPEC"
CONFORMANCE = ROOT / "tests" / "conformance"  # holds conformance_broken (a good reference)


def _harness(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, registry.ENV_VAR: BAD, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("args", [("--help",), ("fetch-data", "--help")])
def test_help_works_with_a_bad_plugin_in_the_environment(args):
    done = _harness(*args)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "Traceback" not in done.stderr


def test_methods_command_fails_with_one_line_naming_the_entry():
    done = _harness("methods")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith("error: ") and BAD in line and registry.ENV_VAR in line
    assert "No module named 'nosuch'" in line
    assert done.stdout == ""


def test_method_free_commands_run_with_a_bad_plugin(monkeypatch, capsys):
    monkeypatch.setenv(registry.ENV_VAR, BAD)
    code = main(["graph", "--edges", "1000", "--epochs", "1", "--dim", "8", "--no-progress"])
    assert code == 0
    assert "method plugin" not in capsys.readouterr().err


def test_a_command_that_uses_methods_reports_the_entry_in_one_line(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(CONFORMANCE))
    monkeypatch.setenv(registry.ENV_VAR, f"conformance_broken:PEEK_AHEAD, {BAD}")
    code = main(["seqrec", "--method", "sdpa", "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err == (
        f"error: method plugin '{BAD}' (from {registry.ENV_VAR}): cannot import module "
        "'nosuch.mod': ModuleNotFoundError: No module named 'nosuch'"
    )


def test_memray_validates_its_rows_when_it_runs(capsys):
    pytest.importorskip("memray")
    assert main(["memray", "--methods", "no-such-row", "--no-flamegraph"]) == 2
    err = capsys.readouterr().err
    assert "unknown 'no-such-row'" in err and "sdpa" in err


def test_plugin_error_carries_the_reference_and_origin(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "plugin_raises_at_import.py").write_text(
        "raise RuntimeError('first line\\nsecond line')\n"
    )
    (tmp_path / "plugin_exits_at_import.py").write_text("raise SystemExit(3)\n")
    with pytest.raises(PluginError) as info:
        registry.resolve("plugin_raises_at_import:SPEC", origin="--plugin")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.ref, err.origin) == ("plugin_raises_at_import:SPEC", "--plugin")
    assert "RuntimeError: first line second line" in str(err) and "\n" not in str(err)
    with pytest.raises(PluginError, match="SystemExit"):
        registry.resolve("plugin_exits_at_import:SPEC")
    with pytest.raises(PluginError, match="package.module:attr") as info:
        registry.resolve("no_colon_here")
    assert info.value.origin is None and info.value.ref == "no_colon_here"
    with pytest.raises(PluginTypeError) as info:  # still a TypeError, as before
        registry.resolve("impls.registry:ENV_VAR")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_duplicate_names_from_references_name_the_reference(monkeypatch):
    monkeypatch.syspath_prepend(str(CONFORMANCE))
    monkeypatch.setenv(registry.ENV_VAR, "conformance_broken:PEEK_AHEAD")
    with pytest.raises(PluginError, match="two methods are named") as info:
        registry.all_methods(["conformance_broken:PEEK_AHEAD"])
    assert info.value.origin == registry.ENV_VAR


class _EntryPoint:
    def __init__(self, name, value, load):
        self.name, self.value, self._load = name, value, load

    def load(self):
        return self._load()


def _broken_entry_points(*, group):
    def import_error():
        raise ImportError("no module named missing")

    def exits():
        raise SystemExit(1)

    sdpa = registry.builtin_methods()[1]
    assert sdpa.name == "sdpa"
    return [
        _EntryPoint("missing", "missing:thing", import_error),
        _EntryPoint("exits", "exits:thing", exits),
        _EntryPoint("shadow", "shadow:SDPA", lambda: sdpa),  # a name already taken
        _EntryPoint("not_a_spec", "x:y", lambda: 42),
    ]


def test_broken_entry_points_are_skipped_and_reported(monkeypatch, capsys):
    monkeypatch.setattr(importlib.metadata, "entry_points", _broken_entry_points)
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    names = [s.name for s in registry.all_methods()]
    assert names == [s.name for s in registry.builtin_methods()]
    assert registry.get_method("sdpa").source == "builtin"
    _, failures = registry.entry_point_methods(reserved=["sdpa"])
    assert [name for name, _ in failures] == ["missing", "exits", "shadow", "not_a_spec"]
    assert "already defined" in dict(failures)["shadow"]
    assert main(["methods"]) == 0
    captured = capsys.readouterr()
    assert "sdpa" in captured.out
    assert sum("could not be loaded" in line for line in captured.err.splitlines()) == 4
