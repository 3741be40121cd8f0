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


def test_source_revision_names_the_checkout_commit(tmp_path, monkeypatch):
    import subprocess
    from pathlib import Path

    from harness.results import source_revision

    found = source_revision()
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True)
    if head.returncode == 0:  # a git checkout: the commit is HEAD's
        assert found["commit"] == head.stdout.decode().strip()
        assert isinstance(found["dirty"], bool)
    else:
        assert found["commit"] is None and found["dirty"] is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all: None, not an error
    assert source_revision()["commit"] is None
