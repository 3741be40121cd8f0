"""Hand-made leaderboard rows for the store and report tests."""

from __future__ import annotations

from harness.leaderboard.store import new_document, rank_rows


def row(
    method, machine="m1", *, ndcg=None, speedup=None, status="passed", at="2026-01-01T00:00:00"
):
    speed = None
    if speedup is not None:
        speed = {
            "lengths": [64, 128],
            "time_s": [1e-3, 2e-3 / speedup],
            "memory_bytes": [1000, 2000],
            "time_ratio": [1.0, 1.0 / speedup],
            "memory_ratio": [1.0, 0.5],
            "time_exponent": [1.0, 0.9, 1.1],
            "memory_exponent": [1.0, 1.0, 1.0],
            "crossover": {"kind": "at", "length": 90.0},
        }
    return {
        "method": method,
        "machine": machine,
        "config_hash": "c1",
        "measured_at": at,
        "conformance": {"status": status},
        "error": {"gaussian": 0.01, "vocabulary": 0.02},
        "speed": speed,
        "downstream": None if ndcg is None else {"NDCG@10": ndcg, "HR@10": 2 * ndcg},
    }


def document(rows, machine="m1", checksum="abc"):
    doc = new_document()
    doc["machines"][machine] = {"processor": "cpu", "cpu_count": 2, "torch": "2.x"}
    doc["configs"]["c1"] = {"quick": True}
    doc["data_checksums"]["synthetic"] = checksum
    doc["rows"] = rank_rows(rows)
    return doc
