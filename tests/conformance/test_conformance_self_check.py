"""Tests of the suite itself: deliberately broken methods must fail the property checks,
both when the checks are called directly and when a broken method is injected into the
registry-generated suite through ``LISA_BENCH_METHODS`` (as an author would add one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conformance_broken import IGNORES_PADDING, NAN_ON_EMPTY, PEEK_AHEAD
from conformance_checks import check_causality, check_key_padding
from conformance_workload import make, padding_mask, qkv

HERE = Path(__file__).resolve().parent


def test_peek_ahead_is_caught_by_the_causality_check():
    attn = make(PEEK_AHEAD, 8, 2)
    q, k, v = qkv(2, 2, 16, 8, seed=0)
    with pytest.raises(AssertionError, match="after position"):
        check_causality(attn, q, k, v, positions=(0, 7), seed=0)


def test_ignoring_padding_is_caught():
    attn = make(IGNORES_PADDING, 8, 2)
    q, k, v = qkv(2, 2, 16, 8, seed=0)
    with pytest.raises(AssertionError, match="padded"):
        check_key_padding(attn, q, k, v, padding_mask(2, 16, seed=0), causal=False)


def test_nan_on_all_padded_rows_is_caught():
    attn = make(NAN_ON_EMPTY, 8, 2)
    q, k, v = qkv(2, 2, 16, 8, seed=0)
    with pytest.raises(AssertionError, match="NaN"):
        check_key_padding(attn, q, k, v, padding_mask(2, 16, seed=0), causal=True)


def test_injected_broken_method_fails_the_generated_suite(tmp_path):
    """Run the registry-generated causality test on the injected method in a subprocess:
    it must be collected (no new test code) and it must fail."""
    env = dict(os.environ)
    env["LISA_BENCH_METHODS"] = "conformance_broken:PEEK_AHEAD"
    env["LISA_BENCH_RESULTS"] = str(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
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
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = proc.stdout + proc.stderr
    assert "test_causality[broken_peek_ahead]" in report, report[-2000:]
    assert proc.returncode == 1, f"the suite did not fail on a broken method:\n{report[-2000:]}"
    assert "1 failed" in report, report[-2000:]
