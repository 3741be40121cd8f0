"""Every result records the machine and the environment variables that change timings."""

from __future__ import annotations

from harness.results import TIMING_ENVIRONMENT, machine_fingerprint


def test_fingerprint_records_the_timing_environment_that_is_set(monkeypatch):
    for name in TIMING_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    info = machine_fingerprint()
    assert info["environment"] == {"THP_MEM_ALLOC_ENABLE": "1", "OMP_NUM_THREADS": "1"}
    assert info["torch_threads"] >= 1 and info["cpu_count"] >= 1


def test_fingerprint_environment_is_empty_when_nothing_is_set(monkeypatch):
    for name in TIMING_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert machine_fingerprint()["environment"] == {}
