"""Checksum records for tiny data folders written by the graph tests, in the format
``python -m harness fetch-data`` writes (``checksums.json``: file name -> SHA-256)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def write_record(folder: Path, dataset: str) -> dict[str, str]:
    """Record the SHA-256 of every ``{dataset}.*`` file in ``folder``; returns them."""
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob(f"{dataset}.*"))
    }
    record = {"format": 1, "dataset": dataset, "files": files}
    (folder / "checksums.json").write_text(json.dumps(record))
    return files
