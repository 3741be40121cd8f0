"""The direction of imports (reference <- impls <- harness) is a lint contract checked by
import-linter from pyproject.toml: it holds for the project, and it catches a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))

pytestmark = pytest.mark.skipif(
    not Path(LINT).exists(), reason="import-linter is not installed (the dev extra has it)"
)


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [LINT, "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_project_keeps_its_import_contracts():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 kept, 0 broken" in done.stdout


def test_a_method_importing_the_harness_breaks_the_contract(tmp_path):
    for package in ("reference", "impls", "harness"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "harness" / "runner.py").write_text("import impls\n")
    (tmp_path / "impls" / "method.py").write_text("from harness import runner\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert "impls/ never imports harness/ BROKEN" in done.stdout
