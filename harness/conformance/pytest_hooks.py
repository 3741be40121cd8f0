"""What a conftest needs to run the suite's tests: the parametrization hook and the
``error_log`` fixture. The package's own ``conftest.py`` imports both, and so does any
directory that re-exports the suite's tests (the project's ``tests/conformance``)::

    from harness.conformance.pytest_hooks import error_log, pytest_generate_tests  # noqa: F401

Measured errors are collected by ``error_log`` and written, at the end of the session, to
``<results>/conformance/errors.json``: ``<results>`` is the directory the conformance
command was given (``--results-dir``), else ``$LISA_BENCH_RESULTS``, else ``results`` in
the working directory. A directory that cannot be written is skipped silently.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest
import torch

from harness.conformance.selection import generate

__all__ = ["RESULTS_DIR", "error_log", "pytest_generate_tests"]

RESULTS_DIR = pytest.StashKey[str]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    generate(metafunc)


class ErrorLog:
    def __init__(self):
        self.records: list[dict] = []

    def record(self, **fields):
        self.records.append(fields)


@pytest.fixture(scope="session")
def error_log(request):
    from harness.results import write_json_atomic

    log = ErrorLog()
    yield log
    base = request.config.stash.get(RESULTS_DIR, None)
    base = base or os.environ.get("LISA_BENCH_RESULTS", "results")
    try:
        payload = {
            "machine": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "processor": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
            },
            "records": log.records,
        }
        path = Path(base) / "conformance" / "errors.json"
        write_json_atomic(path, json.loads(json.dumps(payload, default=str)))
    except OSError:  # a read-only directory must not fail the suite
        pass
