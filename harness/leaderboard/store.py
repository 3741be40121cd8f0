"""The leaderboard document: schema, ranking, Pareto front and merging across machines.

Document (``results/leaderboard.json``)::

    {
      "schema_version": 1,
      "machines": {machine_hash: machine_fingerprint, ...},
      "configs":  {config_hash: config, ...},
      "data_checksums": {dataset name: SHA-256 of the data file / generated sequences},
      "rows": [row, ...]
    }

A row is one method measured on one machine, keyed by ``(method, machine)`` where
``machine`` is ``machine_hash(fingerprint)``. It holds ``config_hash``, ``measured_at``
(UTC ISO time), ``conformance``, ``error``, ``speed`` (ratios against SDPA measured in the
same run, so rows from different machines compare), ``downstream``, and the derived
``rank``, ``pareto`` and ``speedup`` (SDPA time / method time at the largest common L).

Ranking: methods that passed conformance first, ordered by downstream NDCG@10 (then
HR@10, then speed-up), all others after them by the same key. Pareto: a row with both a
quality (NDCG@10) and a speed-up is on the front if no other row is at least as good in
both and better in one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from harness.results import config_hash

__all__ = [
    "SCHEMA_VERSION",
    "machine_hash",
    "merge_documents",
    "new_document",
    "rank_rows",
    "row_key",
]

SCHEMA_VERSION = 1


def machine_hash(fingerprint: dict) -> str:
    return config_hash(fingerprint)


def new_document() -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "machines": {},
        "configs": {},
        "data_checksums": {},
        "rows": [],
    }


def row_key(row: dict) -> tuple[str, str]:
    return row["method"], row["machine"]


def _quality(row: dict) -> float | None:
    down = row.get("downstream") or {}
    value = down.get("NDCG@10")
    return None if value is None or math.isnan(value) else float(value)


def _speedup(row: dict) -> float | None:
    speed = row.get("speed") or {}
    ratios = [r for r in speed.get("time_ratio") or [] if r is not None]
    return 1.0 / ratios[-1] if ratios and ratios[-1] > 0 else None


def _passed(row: dict) -> bool:
    conf = row.get("conformance") or {}
    return conf.get("status") in ("passed", "n/a")


def rank_rows(rows: Iterable[dict]) -> list[dict]:
    """Rows sorted by the ranking rule, with ``rank``, ``speedup`` and ``pareto`` set."""
    rows = [dict(r) for r in rows]
    for r in rows:
        r["speedup"] = _speedup(r)

    def key(r):
        q = _quality(r)
        hr = ((r.get("downstream") or {}).get("HR@10")) or -1.0
        return (
            0 if _passed(r) else 1,
            -(q if q is not None else -1.0),
            -hr,
            -(r["speedup"] or 0.0),
            r["method"],
            r["machine"],
        )

    rows.sort(key=key)
    points = [(i, _quality(r), r["speedup"]) for i, r in enumerate(rows)]
    points = [(i, q, s) for i, q, s in points if q is not None and s is not None]
    for position, r in enumerate(rows, start=1):
        r["rank"] = position
        r["pareto"] = False
    for i, q, s in points:
        dominated = any(
            (q2 >= q and s2 >= s) and (q2 > q or s2 > s) for j, q2, s2 in points if j != i
        )
        rows[i]["pareto"] = not dominated
    return rows


def merge_documents(*docs: dict) -> dict:
    """Merge leaderboard documents (e.g. from several machines) into one.

    Rows are keyed by (method, machine): for a key present in several documents the row
    with the latest ``measured_at`` wins (ties: the later document). Machines, configs
    and data checksums are united; a data set whose checksum differs between documents is
    an error (the rows would not be comparable). Ranks and the Pareto front are
    recomputed over the merged rows."""
    out = new_document()
    rows: dict[tuple[str, str], dict] = {}
    for n, doc in enumerate(docs):
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"document {n}: schema_version {version!r} is not {SCHEMA_VERSION}; "
                "re-run it with this version of the harness"
            )
        out["machines"].update(doc.get("machines", {}))
        out["configs"].update(doc.get("configs", {}))
        for name, checksum in doc.get("data_checksums", {}).items():
            seen = out["data_checksums"].setdefault(name, checksum)
            if seen != checksum:
                raise ValueError(
                    f"document {n}: data set {name!r} has checksum {checksum}, another "
                    f"document has {seen}; rows on different data cannot be merged"
                )
        for row in doc.get("rows", []):
            key = row_key(row)
            old = rows.get(key)
            if old is None or str(row.get("measured_at", "")) >= str(old.get("measured_at", "")):
                rows[key] = row
    out["rows"] = rank_rows(rows.values())
    return out
