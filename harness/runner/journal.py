"""Journal, resume and an exclusive lock for a run that writes one results document.

* :class:`OutputLock`: a lock file beside the output (``filelock``, a maintained library;
  the OS releases it when the holder dies, so a killed run never leaves a stale lock). A
  second run on the same output is refused with a message naming the lock.
* :class:`RunJournal`: ``<output>.journal.jsonl`` beside the output. Its first line names
  the configuration hash; each finished case is one more line, flushed and fsync'ed
  before the next case starts, so an interrupt or a kill loses at most the case in
  flight. ``resume=True`` continues a journal of the same configuration; without it an
  unfinished journal is never silently discarded: the run is refused and says how to
  continue or start over.
* :func:`partial_path`: where an unfinished run's document goes, so that it never
  replaces a complete document.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["JournalError", "OutputLock", "RunJournal", "partial_path"]

SCHEMA = "lisa-bench/journal/1"


class JournalError(RuntimeError):
    """The run cannot start as asked (lock held, foreign or unfinished journal)."""


def partial_path(output: str | os.PathLike) -> Path:
    """``results/x.json`` -> ``results/x.partial.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial{output.suffix or '.json'}")


class OutputLock:
    """An exclusive, non-blocking lock on ``<output>.lock`` (context manager)."""

    def __init__(self, output: str | os.PathLike):
        from filelock import FileLock

        self.path = Path(f"{output}.lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path))

    def __enter__(self) -> OutputLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise JournalError(
                f"another run is writing {self.path.with_suffix('')} (lock {self.path} is "
                "held); wait for it to finish or choose another --output"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


class RunJournal:
    """Append-only record of finished cases (see the module docstring).

    ``rows`` maps a case id to its journaled row (those of an earlier, resumed run first)."""

    def __init__(self, output: str | os.PathLike, config_hash: str, *, resume: bool = False):
        self.path = Path(f"{output}.journal.jsonl")
        self.config_hash = config_hash
        self.rows: dict[str, dict] = {}
        self.resumed = 0
        if self.path.exists():
            header, rows = self._read()
            if header.get("config_hash") != config_hash:
                raise JournalError(
                    f"{self.path} holds an unfinished run of another configuration "
                    f"(hash {header.get('config_hash')}, this run {config_hash}); rerun with "
                    "that configuration and --resume, or delete the journal to start over"
                )
            if not resume:
                raise JournalError(
                    f"{self.path} holds an unfinished run of this configuration "
                    f"({len(rows)} case(s) done); pass --resume to continue it, or delete "
                    "the journal to start over"
                )
            self.rows = rows
            self.resumed = len(rows)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            header = {
                "journal": SCHEMA,
                "config_hash": config_hash,
                "started": datetime.now(timezone.utc).isoformat(),
            }
            self._append(header)

    def _read(self) -> tuple[dict, dict[str, dict]]:
        header: dict = {}
        rows: dict[str, dict] = {}
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                try:
                    record = json.loads(line)
                except ValueError:
                    # the line being written when the run died: everything before it counts
                    break
                if number == 0:
                    header = record
                elif "case" in record and "row" in record:
                    rows[record["case"]] = record["row"]
        return header, rows

    def _append(self, record: dict) -> None:
        line = json.dumps(_finite(record), sort_keys=True, allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def record(self, case_id: str, row: dict) -> None:
        """Append one finished case."""
        self._append({"case": case_id, "row": row})
        self.rows[case_id] = row

    def discard_if_empty(self) -> None:
        """Remove the journal when no case was ever recorded in it (a run refused before
        its first case must not leave a journal that blocks the next run)."""
        if not self.rows:
            self.finish()

    def finish(self) -> None:
        """The run's complete document is written: the journal is no longer needed."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _finite(value):
    """``value`` with every non-finite float replaced by None (standard JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
