"""One's own data files: tables (CSV, TSV, Parquet) and interaction files for ``seqrec``.

Tables (:func:`read_table`). The format comes from ``fmt`` (``csv``, ``tsv`` or
``parquet``) or from the file's suffix:

* ``.csv``: comma-separated, first line the header, fields may be quoted (``"a, b"``);
* ``.tsv``, ``.tab``, ``.txt``, ``.inter``: tab-separated, first line the header, no
  quoting (recbole's atomic files are such files);
* ``.parquet``, ``.pq``: Parquet, read with pyarrow (or pandas with a Parquet engine);
  without either, :class:`DataFileError` names the missing package.

Any other suffix: a header line holding a tab means TSV, otherwise CSV. Blank lines are
skipped, CRLF line ends and a UTF-8 byte-order mark are accepted; CSV fields are stripped
of surrounding spaces, TSV fields are taken verbatim. A column is found by
its exact header name or, for typed atomic headers such as ``user_id:token``, by the
part before the colon.

Interactions (:func:`read_interactions_file`, :func:`read_interactions_card`,
:func:`load_interactions`): one event per row, a user column, an item column and a
time column (default the atomic names ``user_id``, ``item_id``, ``timestamp``; any
other columns are ignored). Times are numbers or ISO 8601 dates (``2024-05-01`` or
``2024-05-01T10:30:00``; without a zone they are read as UTC). Without a time column
(``time=`` in ``--columns``, ``"time": null`` in a card) events keep the order of the
file. A dataset card is a small JSON file::

    {"name": "my-plays", "path": "plays.csv", "format": "csv",
     "columns": {"user": "uid", "item": "song", "time": "ts"}}

``path`` is relative to the card's folder; ``format``, ``columns`` and ``name`` are
optional (defaults: the suffix, the atomic names, the data file's name).

Every error is a :class:`DataFileError` (a ValueError) whose message starts with the
command-line argument that named the file (``--inter``, ``--columns``,
``--dataset-card``) and says what was expected.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "DataFileError",
    "InteractionColumns",
    "Table",
    "load_interactions",
    "read_card_json",
    "read_interactions_card",
    "read_interactions_file",
    "read_table",
    "table_format",
]

FORMATS = ("csv", "tsv", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".inter": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class DataFileError(ValueError):
    """A data file or card that cannot be read as asked; the message names the argument
    that pointed to it, the file, and what was expected."""


# ------------------------------------------------------------------------------ tables
@dataclass
class Table:
    """A table read into columns. ``data[name]`` lists the column's values (str for text
    files, Python objects for Parquet); ``lines[k]`` is the file line of row k (text
    files) and is None for Parquet."""

    path: Path
    source: str
    columns: list[str]
    data: dict[str, list]
    lines: list[int] | None = None

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def where(self, row: int) -> str:
        """``path:line`` (text) or ``path row N`` (Parquet) of row ``row`` (0-based)."""
        if self.lines is not None:
            return f"{self.path}:{self.lines[row]}"
        return f"{self.path} row {row + 1}"

    def find(self, name: str, role: str) -> str:
        """The header name of column ``name`` (exact, or the part before ``:`` of a
        typed atomic header); DataFileError listing the columns found when absent."""
        if name in self.data:
            return name
        typed = [c for c in self.columns if c.split(":", 1)[0] == name]
        if len(typed) == 1:
            return typed[0]
        found = ", ".join(repr(c) for c in self.columns) or "none"
        raise DataFileError(
            f"{self.source} {self.path}: no column {name!r} ({role}); columns found: {found}"
        )

    def column(self, name: str, role: str) -> list:
        """The values of column ``name`` (see :meth:`find`)."""
        return self.data[self.find(name, role)]


def table_format(path: str | os.PathLike, fmt: str | None = None, source: str = "file") -> str:
    """``csv``, ``tsv`` or ``parquet`` for ``path``: ``fmt`` if given, else by suffix,
    else by the header line (a tab means TSV)."""
    path = Path(path)
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataFileError(
                f"{source}: format must be one of {', '.join(FORMATS)}, got {fmt!r}"
            )
        return fmt
    known = _SUFFIXES.get(path.suffix.lower())
    if known:
        return known
    with open(path, "rb") as handle:
        head = handle.readline()
    return "tsv" if b"\t" in head else "csv"


def read_table(path: str | os.PathLike, *, fmt: str | None = None, source: str = "file") -> Table:
    """Read a CSV, TSV or Parquet table (see the module docstring). ``source`` (the
    argument that named the file, e.g. ``--inter``) starts every error message."""
    path = Path(path)
    if path.is_dir():
        raise DataFileError(f"{source}: {path} is a folder; expected a CSV, TSV or Parquet file")
    if not path.is_file():
        raise DataFileError(f"{source}: no such file {path}")
    kind = table_format(path, fmt, source)
    if kind == "parquet":
        return _read_parquet(path, source)
    return _read_text(path, kind, source)


def _read_text(path: Path, kind: str, source: str) -> Table:
    options = (
        {"delimiter": ","} if kind == "csv" else {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    )
    strip = kind == "csv"  # TSV fields are taken verbatim, as recbole's atomic reader does
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, **options)
            header = next(reader, None)
            while header is not None and not any(h.strip() for h in header):
                header = next(reader, None)  # leading blank lines
            if header is None:
                raise DataFileError(f"{source} {path}: empty file; expected a header line")
            names = [h.strip() for h in header]
            _check_header(names, path, source)
            values: list[list[str]] = [[] for _ in names]
            lines: list[int] = []
            for row in reader:
                if not row or not any(f.strip() for f in row):
                    continue
                if len(row) != len(names):
                    raise DataFileError(
                        f"{source} {path}:{reader.line_num}: {len(row)} fields, expected "
                        f"{len(names)} (one per header column: {', '.join(names)})"
                    )
                for k, field in enumerate(row):
                    values[k].append(field.strip() if strip else field)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataFileError(
            f"{source} {path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected "
            "a UTF-8 CSV or TSV file"
        ) from None
    except csv.Error as exc:
        raise DataFileError(f"{source} {path}: unreadable {kind.upper()} ({exc})") from None
    return Table(path, source, names, dict(zip(names, values, strict=True)), lines)


def _check_header(names: list[str], path: Path, source: str) -> None:
    if any(not n for n in names):
        raise DataFileError(f"{source} {path}: the header has an empty column name: {names}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataFileError(f"{source} {path}: the header repeats column(s) {dup}")


def _read_parquet(path: Path, source: str) -> Table:
    missing = (
        f"{source} {path}: reading Parquet needs the 'pyarrow' package (pip install "
        "pyarrow), which is not installed here; install it or save the table as CSV"
    )
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    try:
        if pq is not None:
            data = {str(k): list(v) for k, v in pq.read_table(path).to_pydict().items()}
        else:
            try:
                import pandas as pd
            except ImportError:
                raise DataFileError(missing) from None
            frame = pd.read_parquet(path)
            data = {str(c): frame[c].tolist() for c in frame.columns}
    except DataFileError:
        raise
    except ImportError:  # pandas without a Parquet engine
        raise DataFileError(missing) from None
    except Exception as exc:  # a damaged file: whatever the reader raises
        raise DataFileError(
            f"{source} {path}: not a readable Parquet file ({type(exc).__name__}: {exc})"
        ) from None
    names = list(data)
    _check_header(names, path, source)
    return Table(path, source, names, data, None)


# ------------------------------------------------------------------------ interactions
@dataclass(frozen=True)
class InteractionColumns:
    """Which columns hold the user, the item and the time (None: no time column, the
    events keep the file's order)."""

    user: str = "user_id"
    item: str = "item_id"
    time: str | None = "timestamp"

    ROLES = ("user", "item", "time")

    @classmethod
    def parse(cls, text: str, source: str = "--columns") -> InteractionColumns:
        """From ``user=uid,item=song,time=ts`` (any subset; ``time=`` for no time
        column); the roles not named keep their defaults."""
        mapping: dict[str, str | None] = {}
        for part in text.split(","):
            role, eq, name = (s.strip() for s in part.partition("="))
            if not eq or role not in cls.ROLES:
                raise DataFileError(
                    f"{source}: expected ROLE=COLUMN pairs separated by commas, ROLE one of "
                    f"user, item, time (e.g. user=uid,item=song,time=ts); got {part.strip()!r}"
                )
            if role in mapping:
                raise DataFileError(f"{source}: {role}= is given twice")
            mapping[role] = name or None
        return cls.from_mapping(mapping, source)

    @classmethod
    def from_mapping(cls, mapping: object, source: str) -> InteractionColumns:
        if not isinstance(mapping, dict):
            raise DataFileError(
                f"{source}: columns must map user/item/time to column names, "
                f"got {type(mapping).__name__}"
            )
        unknown = sorted(set(mapping) - set(cls.ROLES))
        if unknown:
            raise DataFileError(
                f"{source}: unknown column role(s) {unknown}; expected user, item, time"
            )
        out = {}
        for role in cls.ROLES:
            if role not in mapping:
                continue
            name = mapping[role]
            if name is None and role == "time":
                out[role] = None
                continue
            if not isinstance(name, str) or not name.strip():
                raise DataFileError(
                    f"{source}: the {role} column must be a non-empty column name, got {name!r}"
                    + ("" if role != "time" else " (null or empty: no time column)")
                )
            out[role] = name.strip()
        return cls(**out)

    def describe(self) -> str:
        return f"user={self.user},item={self.item},time={self.time or ''}"


def _token(value: object, table: Table, row: int, role: str, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        value = ""
    text = str(value)
    if not text.strip():
        raise DataFileError(
            f"{table.source} {table.where(row)}: the {role} column {column!r} is empty"
        )
    return text


def _stamp(value: object, table: Table, row: int, column: str) -> float:
    bad = (
        f"{table.source} {table.where(row)}: the time column {column!r} holds {value!r}; "
        "expected a number or an ISO 8601 date such as 2024-05-01T10:30:00"
    )
    if isinstance(value, bool) or value is None:
        raise DataFileError(bad)
    if isinstance(value, (int, float)):
        stamp = float(value)
    elif hasattr(value, "timestamp") and not isinstance(value, str):  # datetime, pd.Timestamp
        if getattr(value, "tzinfo", None) is None and hasattr(value, "replace"):
            value = value.replace(tzinfo=timezone.utc)
        stamp = float(value.timestamp())
    else:
        text = str(value).strip()
        try:
            stamp = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise DataFileError(bad) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            stamp = moment.timestamp()
    if not math.isfinite(stamp):
        raise DataFileError(bad)
    return stamp


def read_interactions_file(
    path: str | os.PathLike,
    *,
    columns: InteractionColumns | None = None,
    fmt: str | None = None,
    source: str = "--inter",
) -> list[tuple[str, str, float]]:
    """Events ``(user, item, time)`` of a CSV, TSV or Parquet file, in file order (see
    the module docstring); without a time column the time is the row number."""
    columns = columns or InteractionColumns()
    table = read_table(path, fmt=fmt, source=source)
    ucol = table.find(columns.user, "the user column")
    icol = table.find(columns.item, "the item column")
    tcol = table.find(columns.time, "the time column") if columns.time else ""
    users, items = table.data[ucol], table.data[icol]
    stamps = table.data[tcol] if tcol else None
    if not len(table):
        raise DataFileError(f"{source} {table.path}: the file has a header but no rows")
    events = []
    for k in range(len(table)):
        stamp = _stamp(stamps[k], table, k, tcol) if stamps is not None else float(k)
        events.append(
            (
                _token(users[k], table, k, "user", ucol),
                _token(items[k], table, k, "item", icol),
                stamp,
            )
        )
    return events


def read_card_json(path: str | os.PathLike, source: str = "--dataset-card") -> dict:
    """A dataset card's JSON object; DataFileError when the file is missing, is not
    JSON, or is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{source}: no such file {path}")
    try:
        card = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataFileError(
            f"{source} {path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except UnicodeDecodeError:
        raise DataFileError(f"{source} {path}: not UTF-8 text; expected a JSON card") from None
    if not isinstance(card, dict):
        raise DataFileError(
            f"{source} {path}: expected a JSON object ({{...}}), got {type(card).__name__}"
        )
    return card


INTERACTIONS_CARD_KEYS = ("kind", "name", "description", "path", "format", "columns")
GRAPH_CARD_MARKERS = ("node_types", "relations", "tensors", "task")


def read_interactions_card(
    path: str | os.PathLike, source: str = "--dataset-card"
) -> tuple[list[tuple[str, str, float]], str, Path]:
    """(events, data set name, data file path) of an interactions card (module doc)."""
    path = Path(path)
    card = read_card_json(path, source)
    where = f"{source} {path}"
    kind = card.get("kind", "interactions")
    graphy = [k for k in GRAPH_CARD_MARKERS if k in card]
    if kind == "graph" or (graphy and "path" not in card):
        raise DataFileError(
            f"{where}: this is a graph card (it has {', '.join(graphy) or 'kind graph'}); "
            "use it with `python -m harness graph --dataset-card`. seqrec needs an "
            'interactions card: {"path": "FILE", "columns": {"user": ..., "item": ..., '
            '"time": ...}}'
        )
    if kind != "interactions":
        raise DataFileError(f"{where}: kind must be 'interactions' here, got {kind!r}")
    unknown = sorted(set(card) - set(INTERACTIONS_CARD_KEYS))
    if unknown:
        raise DataFileError(
            f"{where}: unknown key(s) {unknown}; an interactions card has "
            f"{', '.join(INTERACTIONS_CARD_KEYS)}"
        )
    data = card.get("path")
    if not isinstance(data, str) or not data:
        raise DataFileError(f"{where}: 'path' must name the interactions file, got {data!r}")
    fmt = card.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise DataFileError(f"{where}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    columns = InteractionColumns.from_mapping(card.get("columns", {}), f"{where}: columns")
    name = card.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise DataFileError(f"{where}: name must be a non-empty string, got {name!r}")
    file = path.parent / data
    events = read_interactions_file(file, columns=columns, fmt=fmt, source=f"{where}: path")
    return events, (name or file.name), file


def load_interactions(
    path: str | os.PathLike | None = None,
    *,
    card: str | os.PathLike | None = None,
    columns: InteractionColumns | None = None,
    fmt: str | None = None,
    min_events: int = 4,
):
    """:class:`harness.seqrec.sequences.SeqRecData` (the protocol's per-user sequences) of
    an interactions file (``path``, read as ``--inter``) or of a card (``card``, read as
    ``--dataset-card``). Its checksum is the data file's SHA-256."""
    from harness.datasets.cache import sha256_file
    from harness.seqrec.sequences import build_sequences

    if (path is None) == (card is None):
        raise ValueError("give exactly one of path and card")
    if card is not None:
        events, name, file = read_interactions_card(card)
        source = f"--dataset-card {card}"
    else:
        events = read_interactions_file(path, columns=columns, fmt=fmt)
        file = Path(path)
        name, source = file.name, f"--inter {file}"
    try:
        return build_sequences(events, min_events=min_events, name=name, checksum=sha256_file(file))
    except ValueError as exc:
        raise DataFileError(
            f"{source}: {exc} ({len(events)} events, "
            f"{len({u for u, _, _ in events})} users; the protocol keeps users with at least "
            f"{min_events} events)"
        ) from None
