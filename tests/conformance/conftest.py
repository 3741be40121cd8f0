"""Conformance suite set-up. The tests are parametrized over the method registry (see
``conformance_params.py``). Measured errors are collected by the ``error_log`` fixture and
written to ``results/conformance/errors.json`` (or ``$LISA_BENCH_RESULTS/conformance/``)
at the end of the session."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest
import torch

from harness.results import write_json_atomic


class ErrorLog:
    def __init__(self):
        self.records: list[dict] = []

    def record(self, **fields):
        self.records.append(fields)


@pytest.fixture(scope="session")
def error_log():
    log = ErrorLog()
    yield log
    root = Path(os.environ.get("LISA_BENCH_RESULTS", "results")) / "conformance"
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
        write_json_atomic(root / "errors.json", json.loads(json.dumps(payload, default=str)))
    except OSError:  # a read-only checkout must not fail the suite
        pass
