"""The leaderboard document: schema, ranking, Pareto front and merging across machines.

Document (``results/leaderboard.json``)::

    {
      "schema_version": 1,
      "machines": {machine_hash: machine_fingerprint, ...},
      "configs":  {config_hash: config, ...},
      "data_checksums": {dataset name: SHA-256 of the data file / generated sequences},
      "rows": [row, ...]
    }

and, optionally, ``mixed`` (what a merge allowed to differ, see :func:`merge_documents`)
and ``notes``. The JSON Schema (Draft 2020-12) is ``leaderboard.schema.json`` beside this
module; :func:`validate_document` checks a document against it.

A row is one method measured on one machine, keyed by ``(method, machine)`` where
``machine`` is ``machine_hash(fingerprint)``. It holds ``config_hash``, ``measured_at``
(UTC ISO time), ``conformance``, ``error``, ``speed`` (ratios against SDPA measured in the
same run, so rows from different machines compare), ``downstream``, and the derived
``rank``, ``pareto`` and ``speedup`` (SDPA time / method time at the largest common L).

Ranking (:func:`rank_rows`): methods that passed conformance first, ordered by downstream
NDCG@10 (then HR@10, then speed-up), all others after them by the same key. ``rank`` is
the position in that order; ``shared_rank`` is the rank a report shows: rows whose
NDCG@10 is within noise of the best row of their group share it (identical scores;
overlapping 95% intervals with >= 2 seeds; else equal to 4 decimals), and ``tied`` says
that another row shares it. Pareto: a row with both a quality (NDCG@10) and a speed-up is
on the front if no other row is at least as good in both and better in one.

Documents are standard JSON: a number that is not finite (NaN, infinity) is stored as
null, and a note in the row's ``notes`` (or the document's, outside rows) names it.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import numbers
import os
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path

from harness.results import config_hash

__all__ = [
    "QUALITY_DIGITS",
    "QUALITY_KEY",
    "SCHEMA_VERSION",
    "LeaderboardDocumentError",
    "headline",
    "headline_length",
    "load_document",
    "machine_hash",
    "merge_documents",
    "mixed_fields",
    "new_document",
    "quality_interval",
    "rank_rows",
    "row_key",
    "sanitize_document",
    "schema",
    "seed_count",
    "validate_document",
    "within_noise",
]

SCHEMA_VERSION = 1
SCHEMA_FILE = "leaderboard.schema.json"
MAX_REPORTED_ERRORS = 20


class LeaderboardDocumentError(ValueError):
    """A leaderboard document that cannot be read, does not match the schema, or cannot
    be merged with the others."""


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


# --------------------------------------------------------------------------------------
# Schema validation


@functools.cache
def schema() -> dict:
    """The document's JSON Schema (``leaderboard.schema.json``, shipped in this package)."""
    text = resources.files("harness.leaderboard").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


@functools.cache
def _validator():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


# A fast yes/no check compiled from the schema. jsonschema spends about a millisecond
# per row, which is minutes for a 200k-row board; the compiled check answers "valid" in
# microseconds. It understands only the keywords below, with Draft 2020-12 meanings (as
# jsonschema implements them); a schema using any other keyword is not compiled, and a
# document the check rejects is handed to jsonschema, which reports the errors.

_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description"})
_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "const",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "minimum",
    }
)


class _Unsupported(Exception):
    """The schema uses something the fast check does not implement."""


def _is_number(x) -> bool:
    return not isinstance(x, bool) and (isinstance(x, int | float) or isinstance(x, numbers.Number))


def _const_check(const) -> Callable[[object], bool]:
    if const is None or isinstance(const, bool):
        return lambda x: x is const
    if _is_number(const):
        return lambda x: _is_number(x) and x == const
    if isinstance(const, str):
        return lambda x: isinstance(x, str) and x == const
    raise _Unsupported(f"const {const!r}")


_CLASSES = {"null": type(None), "boolean": bool, "string": str, "array": list, "object": dict}


def _type_check(kinds: list[str]) -> Callable[[object], bool]:
    """Predicate: ``x`` is of one of the JSON types ``kinds``."""
    if any(k not in _CLASSES and k not in ("number", "integer") for k in kinds):
        raise _Unsupported(f"type {kinds}")
    classes = tuple(_CLASSES[k] for k in kinds if k in _CLASSES)
    if "number" in kinds:
        return lambda x: (
            type(x) is float or type(x) is int or isinstance(x, classes) or _is_number(x)
        )
    if "integer" in kinds:
        return lambda x: (
            isinstance(x, classes)
            or (
                not isinstance(x, bool)
                and (isinstance(x, int) or (isinstance(x, float) and x.is_integer()))
            )
        )
    return lambda x: isinstance(x, classes)


def _compile(node, root: dict, refs: dict) -> Callable[[object], bool]:
    """A predicate equivalent to validating against ``node`` (a subschema of ``root``);
    _Unsupported when ``node`` uses a keyword outside ``_KEYWORDS``."""
    if node is True or node == {}:
        return lambda x: True
    if node is False:
        return lambda x: False
    if not isinstance(node, dict) or set(node) - _ANNOTATIONS - _KEYWORDS:
        raise _Unsupported(repr(node)[:80])
    ref = None
    if "$ref" in node:
        target = node["$ref"]
        if target not in refs:
            if not target.startswith("#/"):
                raise _Unsupported(target)
            refs[target] = None  # being compiled: a recursive reference is unsupported
            sub = root
            for part in target[2:].split("/"):
                sub = sub[part.replace("~1", "/").replace("~0", "~")]
            refs[target] = _compile(sub, root, refs)
        ref = refs[target]
        if ref is None:
            raise _Unsupported(f"recursive {target}")
    kinds = node.get("type")
    if kinds is not None:
        kinds = _type_check([kinds] if isinstance(kinds, str) else list(kinds))
    keywords = set(node) - _ANNOTATIONS
    if keywords == {"$ref"}:
        return ref
    if keywords == {"type"}:
        return kinds
    const = _const_check(node["const"]) if "const" in node else None
    required = tuple(node.get("required", ()))
    props = {k: _compile(v, root, refs) for k, v in node.get("properties", {}).items()}
    extra = node.get("additionalProperties")
    extra = None if extra is None else _compile(extra, root, refs)
    items = node.get("items")
    items = None if items is None else _compile(items, root, refs)
    min_items, max_items = node.get("minItems"), node.get("maxItems")
    min_length, minimum = node.get("minLength"), node.get("minimum")

    def check(x) -> bool:
        if ref is not None and not ref(x):
            return False
        if kinds is not None and not kinds(x):
            return False
        if const is not None and not const(x):
            return False
        if isinstance(x, dict):
            for key in required:
                if key not in x:
                    return False
            if props or extra is not None:
                for key, value in x.items():
                    sub = props.get(key, extra)
                    if sub is not None and not sub(value):
                        return False
        elif isinstance(x, list):
            if min_items is not None and len(x) < min_items:
                return False
            if max_items is not None and len(x) > max_items:
                return False
            if items is not None:
                for value in x:
                    if not items(value):
                        return False
        elif isinstance(x, str):
            if min_length is not None and len(x) < min_length:
                return False
        elif minimum is not None and _is_number(x) and x < minimum:
            return False
        return True

    return check


@functools.cache
def _fast_check() -> Callable[[object], bool] | None:
    """The compiled check of :func:`schema`, or None when the schema needs jsonschema."""
    try:
        return _compile(schema(), schema(), {})
    except _Unsupported:
        return None


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_order(error) -> list[tuple[int, int | str]]:
    """Sort key: document order of the offending values (array indices numerically)."""
    return [(0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path]


def _json_path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


@functools.cache
def _fast_row_check() -> Callable[[object], bool] | None:
    """The compiled check of one row (``properties.rows.items``), or None."""
    try:
        return _compile(schema()["properties"]["rows"]["items"], schema(), {})
    except (_Unsupported, KeyError):
        return None


def _schema_errors(doc: object) -> list[tuple[str, str]]:
    """(JSON path, message) of each schema violation in ``doc``, in document order, from
    jsonschema. On a large document only the rows the compiled check rejects (the first
    MAX_REPORTED_ERRORS + 1 of them) go through jsonschema, so the report stays fast."""
    validator = _validator()
    rows = doc.get("rows") if isinstance(doc, dict) else None
    row_check = _fast_row_check()
    if not isinstance(rows, list) or row_check is None:
        found = sorted(validator.iter_errors(doc), key=_error_order)
        return [(_json_path(e.absolute_path), e.message) for e in found]
    found = sorted(validator.iter_errors({**doc, "rows": []}), key=_error_order)
    out = [(_json_path(e.absolute_path), e.message) for e in found]
    bad = [i for i, r in enumerate(rows) if not row_check(r)]
    for i in bad[: MAX_REPORTED_ERRORS + 1]:
        for e in sorted(validator.iter_errors({**doc, "rows": [rows[i]]}), key=_error_order):
            path = list(e.absolute_path)
            if path[:2] == ["rows", 0]:  # the rest was reported above
                out.append((_json_path(["rows", i, *path[2:]]), e.message))
    return out


def validate_document(doc: object, source: str = "document") -> None:
    """Check ``doc`` against the schema (Draft 2020-12). Raises LeaderboardDocumentError
    listing, for each violation (the first ``MAX_REPORTED_ERRORS``), ``source``, the JSON
    path of the offending value and what is wrong with it."""
    if isinstance(doc, dict) and doc.get("schema_version") != SCHEMA_VERSION:
        raise LeaderboardDocumentError(
            f"{source}: $.schema_version is {doc.get('schema_version')!r}, this harness reads "
            f"{SCHEMA_VERSION}; re-run it with this version of the harness"
        )
    fast = _fast_check()
    if fast is not None and fast(doc):
        return
    errors = _schema_errors(doc)
    if not errors:
        return
    lines = [f"{source}: {path}: {_short(message)}" for path, message in errors]
    if len(lines) > MAX_REPORTED_ERRORS:
        hidden = len(lines) - MAX_REPORTED_ERRORS
        lines = [*lines[:MAX_REPORTED_ERRORS], f"{source}: ... and {hidden} more"]
    raise LeaderboardDocumentError(
        f"{source} is not a valid leaderboard document (schema {SCHEMA_FILE}):\n  "
        + "\n  ".join(lines)
    )


def load_document(path: str | os.PathLike) -> dict:
    """Read and validate a leaderboard JSON file. OSError when it cannot be read;
    LeaderboardDocumentError (naming the file) when it is not JSON or not a valid
    document. Bare ``NaN``/``Infinity`` written by older versions are accepted on read."""
    path = Path(path)
    data = path.read_bytes()
    try:
        doc = json.loads(data)  # bytes: also refuses text that is not UTF-8/16/32
    except ValueError as exc:
        raise LeaderboardDocumentError(f"{path}: not valid JSON: {exc}") from None
    validate_document(doc, str(path))
    return doc


# --------------------------------------------------------------------------------------
# Non-finite numbers


def _describe(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _has_nonfinite(value) -> bool:
    """Does ``value`` hold a non-finite float anywhere? (The C JSON encoder finds out
    fastest: it refuses them when ``allow_nan`` is off.)"""
    try:
        json.dumps(value, allow_nan=False, default=repr)
    except ValueError:
        return True
    return False


def _bad_float(x) -> bool:
    return isinstance(x, float) and not math.isfinite(x)


def _finite(value, path: str, found: list[str]):
    """``value`` with every non-finite float replaced by None (new containers; the input
    is not changed); appends ``"<path> was <NaN|Infinity|-Infinity>"`` to ``found``. An
    exponent fit (slope, low, high) with a non-finite member becomes None as a whole."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        found.append(f"{path} was {_describe(value)}")
        return None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in ("time_exponent", "memory_exponent") and isinstance(item, list | tuple):
                bad = [x for x in item if _bad_float(x)]
                if bad:
                    found.append(f"{sub} had {_describe(bad[0])} (the whole fit is dropped)")
                    out[key] = None
                    continue
            out[key] = _finite(item, sub, found)
        return out
    if isinstance(value, list | tuple):
        return [_finite(item, f"{path}[{i}]", found) for i, item in enumerate(value)]
    return value


def _finite_row(row: dict) -> dict:
    """``row`` itself when it holds only finite numbers, else a copy with each non-finite
    float replaced by None and a note per value appended to its ``notes``."""
    if not _has_nonfinite(row):
        return row
    found: list[str] = []
    clean = _finite(row, "", found)
    notes = clean.get("notes")
    notes = list(notes) if isinstance(notes, list) else []
    clean["notes"] = notes + [f"{f}; written as null" for f in found]
    return clean


def sanitize_document(doc: dict) -> dict:
    """``doc`` as standard JSON: every non-finite float becomes null, and a note saying
    which value it was and why it is null goes to that row's ``notes`` (or to the
    document's ``notes`` for values outside rows). ``doc`` is not changed; parts of it
    without non-finite values are shared with the result, not copied."""
    found: list[str] = []
    out = {
        key: (
            [_finite_row(r) if isinstance(r, dict) else r for r in value]
            if key == "rows" and isinstance(value, list)
            else (_finite(value, key, found) if _has_nonfinite(value) else value)
        )
        for key, value in doc.items()
    }
    if found:
        notes = out.get("notes")
        notes = list(notes) if isinstance(notes, list) else []
        out["notes"] = notes + [f"{f}; written as null" for f in found]
    return out


# --------------------------------------------------------------------------------------
# Ranking


QUALITY_KEY = "NDCG@10"  # the downstream score the ranking orders by
QUALITY_DIGITS = 4  # decimals the reports show it with (the "displayed precision")


def _quality(row: dict) -> float | None:
    down = row.get("downstream") or {}
    value = down.get(QUALITY_KEY)
    return None if value is None or math.isnan(value) else float(value)


def seed_count(down: dict | None) -> int | None:
    """How many training runs (seeds) a downstream score averages: ``runs``, else the
    length of ``seeds``; None when the dict says neither."""
    down = down or {}
    runs = down.get("runs")
    if isinstance(runs, int) and not isinstance(runs, bool):
        return runs
    seeds = down.get("seeds")
    return len(seeds) if isinstance(seeds, list) else None


@functools.cache
def _t975(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def quality_interval(down: dict | None, key: str = QUALITY_KEY) -> tuple[float, float] | None:
    """The 95% interval of the mean of ``down[key]`` over its seeds: mean +- t(0.975,
    n - 1) * sd / sqrt(n), from ``down[key]``, ``down[key + " sd"]`` (the sample standard
    deviation over seeds) and :func:`seed_count`. None with fewer than two seeds, no
    standard deviation, or a value that is missing or not finite: one seed has no
    interval."""
    down = down or {}
    mean, sd, n = down.get(key), down.get(f"{key} sd"), seed_count(down)
    if mean is None or sd is None or n is None or n < 2:
        return None
    if not (math.isfinite(mean) and math.isfinite(sd)):
        return None
    half = _t975(n - 1) * float(sd) / math.sqrt(n)
    return float(mean) - half, float(mean) + half


def within_noise(
    a: float,
    b: float,
    a_interval: tuple[float, float] | None = None,
    b_interval: tuple[float, float] | None = None,
) -> bool:
    """Are two quality scores indistinguishable? Identical scores always are; with a 95%
    interval for both (>= 2 seeds each, :func:`quality_interval`) they are when the
    intervals overlap; otherwise when they are equal at the displayed precision
    (``QUALITY_DIGITS`` decimals)."""
    if a == b:
        return True
    if a_interval is not None and b_interval is not None:
        return a_interval[0] <= b_interval[1] and b_interval[0] <= a_interval[1]
    return f"{a:.{QUALITY_DIGITS}f}" == f"{b:.{QUALITY_DIGITS}f}"


def _ratio_at(speed: dict, key: str, length) -> tuple[int, float] | None:
    """(index, value) of ``speed[key]`` at ``length``, when measured there."""
    lengths = speed.get("lengths") or []
    values = speed.get(key) or []
    if length in lengths:
        i = lengths.index(length)
        if i < len(values) and values[i] is not None:
            return i, values[i]
    return None


def headline_length(rows: Iterable[dict]) -> int | None:
    """The longest L at which every compared row has a time ratio: the length the
    headline speed columns compare at. Compared: rows with at least one time ratio,
    except ``speed["reference_only"]`` rows (the float64 oracle on its short grid). None
    when they share no such length (e.g. a merge of different L grids), or no row has a
    time ratio."""
    common: set | None = None
    for r in rows:
        speed = r.get("speed") or {}
        if speed.get("reference_only"):
            continue
        lengths = speed.get("lengths") or []
        ratios = speed.get("time_ratio") or []
        have = {n for n, x in zip(lengths, ratios, strict=False) if x is not None}
        if have:
            common = have if common is None else common & have
    return max(common) if common else None


def headline(row: dict, length: int | None = None) -> dict | None:
    """The row's headline speed: ``{"length", "time_ratio", "memory_ratio",
    "roofline_fraction", "source"}``. From ``speed["headline"]`` when the row carries one
    (source "row"; its ratios are None when the row did not reach that length); else the
    ratios at ``length`` (:func:`headline_length` of the board; source "common L"; None
    ratios when the row did not reach it, e.g. a reference row on a shorter grid); with
    no ``length``, at the row's own longest L with a time ratio (source "own longest L":
    not comparable with the others). None for a row without any time ratio."""
    speed = row.get("speed") or {}
    lengths = speed.get("lengths") or []
    roof = speed.get("roofline_fraction") or []
    given = speed.get("headline")
    if isinstance(given, dict):
        at = _ratio_at(speed, "time_ratio", given.get("length"))
        return {
            "length": given.get("length"),
            "time_ratio": given.get("time_ratio"),
            "memory_ratio": given.get("memory_ratio"),
            "roofline_fraction": roof[at[0]] if at and at[0] < len(roof) else None,
            "source": "row",
        }
    if length is not None:
        found = _ratio_at(speed, "time_ratio", length)
        if found is None:  # not measured at the board's length: no comparable ratio
            if not any(x is not None for x in speed.get("time_ratio") or []):
                return None
            return {
                "length": length,
                "time_ratio": None,
                "memory_ratio": None,
                "roofline_fraction": None,
                "source": "common L",
            }
        source = "common L"
    else:
        ratios = speed.get("time_ratio") or []
        last = [i for i, x in enumerate(ratios) if x is not None and i < len(lengths)]
        if not last:
            return None
        found, source = (last[-1], ratios[last[-1]]), "own longest L"
    i, ratio = found
    memory = speed.get("memory_ratio") or []
    return {
        "length": lengths[i],
        "time_ratio": ratio,
        "memory_ratio": memory[i] if i < len(memory) else None,
        "roofline_fraction": roof[i] if i < len(roof) else None,
        "source": source,
    }


def _speedup(row: dict, length: int | None = None) -> float | None:
    """SDPA time / method time at the row's :func:`headline` length."""
    head = headline(row, length)
    ratio = None if head is None else head["time_ratio"]
    return 1.0 / ratio if ratio is not None and ratio > 0 else None


def _passed(row: dict) -> bool:
    conf = row.get("conformance") or {}
    return conf.get("status") in ("passed", "n/a")


def _rank_key(row: dict) -> tuple:
    q = _quality(row)
    hr = (row.get("downstream") or {}).get("HR@10") or -1.0
    if isinstance(hr, float) and math.isnan(hr):  # unordered: treat as missing
        hr = -1.0
    return (
        0 if _passed(row) else 1,
        -(q if q is not None else -1.0),
        -hr,
        -(row["speedup"] or 0.0),
        row["method"],
        row["machine"],
    )


def _pareto_flags(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (quality, speed-up) point: is no other point at least as good in both
    and better in one? O(n log n): walking the qualities downwards, a point is dominated
    exactly when a strictly better quality reached at least its speed-up, or a point of
    equal quality has a strictly higher speed-up."""
    flags = [False] * len(points)
    order = sorted(range(len(points)), key=lambda i: points[i][0], reverse=True)
    best_above = -math.inf  # highest speed-up among strictly better qualities so far
    for _, group in itertools.groupby(order, key=lambda i: points[i][0]):
        group = list(group)
        top = max(points[i][1] for i in group)
        for i in group:
            s = points[i][1]
            flags[i] = not (best_above >= s or top > s)
        best_above = max(best_above, top)
    return flags


def _share_ranks(rows: list[dict]) -> None:
    """Set ``shared_rank`` and ``tied`` on ranked rows (see :func:`rank_rows`)."""
    leader: tuple[int, int, float, tuple | None] | None = None  # group, rank, q, interval
    for position, r in enumerate(rows, start=1):
        q = _quality(r)
        group = 0 if _passed(r) else 1
        interval = None if q is None else quality_interval(r.get("downstream"))
        if (
            leader is not None
            and q is not None
            and leader[0] == group
            and within_noise(leader[2], q, leader[3], interval)
        ):
            r["shared_rank"] = leader[1]
        else:
            r["shared_rank"] = position
            leader = None if q is None else (group, position, q, interval)
    counts: dict[int, int] = {}
    for r in rows:
        counts[r["shared_rank"]] = counts.get(r["shared_rank"], 0) + 1
    for r in rows:
        r["tied"] = counts[r["shared_rank"]] > 1


def rank_rows(rows: Iterable[dict]) -> list[dict]:
    """Rows sorted by the ranking rule, with ``rank``, ``shared_rank``, ``tied``,
    ``speedup`` and ``pareto`` set.

    Order: rows that passed conformance (or "n/a") first, then the others; within each,
    by NDCG@10 (the mean over seeds; missing last), then HR@10, then speed-up, then
    method and machine. ``rank`` is the position in that order (1..n, unique).

    Ties (``shared_rank``): a row shares the rank of the row heading its tied group
    when both passed (or both did not), both have a quality, and the two qualities are
    within noise (:func:`within_noise`): identical scores always tie; when both rows
    have >= 2 seeds, overlapping 95% intervals of the mean tie; otherwise scores equal at
    the displayed precision (``QUALITY_DIGITS`` = 4 decimals) tie. The head of a group
    is its best row, so a group never chains down through small steps. A row without a
    quality never ties. ``tied``: another row has the same ``shared_rank``; reports show
    it as "=2".

    ``speedup``: SDPA time / method time at the headline length (:func:`headline`:
    ``speed["headline"]`` when present, else the longest L where every compared row has a
    time ratio, else, when the rows share no length, the row's own longest L); None when
    the row has no ratio there.

    The rows are shallow copies; the sort is stable and its key ends with method and
    machine. O(n log n) in the number of rows."""
    rows = [dict(r) for r in rows]
    common = headline_length(rows)
    for r in rows:
        r["speedup"] = _speedup(r, common)
    rows.sort(key=_rank_key)
    on_front = []
    points = []
    for position, r in enumerate(rows, start=1):
        r["rank"] = position
        r["pareto"] = False
        q, s = _quality(r), r["speedup"]
        if q is not None and s is not None:
            on_front.append(r)
            points.append((q, s))
    for r, flag in zip(on_front, _pareto_flags(points), strict=True):
        r["pareto"] = flag
    _share_ranks(rows)
    return rows


# --------------------------------------------------------------------------------------
# Merging


def _row_context(row: dict, checksums: dict) -> dict[str, str | None]:
    """What must agree for two rows to be ranked together: data set (name and checksum;
    from the row, else from its document when that names one data set), L grid and
    configuration hash. None where the row does not say."""
    down = row.get("downstream") or {}
    name = down.get("dataset")
    checksum = row.get("data_checksum") or None
    if name is None and len(checksums) == 1:
        name = next(iter(checksums))
    if checksum is None and name in checksums:
        checksum = checksums[name]
    dataset = None
    if name is not None or checksum is not None:
        dataset = f"{name or '?'} (SHA-256 {checksum[:12] if checksum else '?'})"
    lengths = (row.get("speed") or {}).get("lengths")
    return {
        "data set": dataset,
        "L grid": None if not lengths else "L = " + ", ".join(str(n) for n in lengths),
        "config hash": row.get("config_hash"),
    }


def mixed_fields(contexts: Iterable[tuple[dict, str]]) -> dict[str, dict[str, list[str]]]:
    """From (row context, source) pairs: field -> {value -> sources}, for the fields whose
    (known) values differ between rows."""
    seen: dict[str, dict[str, list[str]]] = {}
    for ctx, source in contexts:
        for field, value in ctx.items():
            if value is not None:
                where = seen.setdefault(field, {}).setdefault(value, [])
                if source not in where:
                    where.append(source)
    return {field: values for field, values in seen.items() if len(values) > 1}


def _config_difference(hashes: Iterable[str], configs: dict) -> list[str]:
    """The settings whose values differ between the configurations of ``hashes`` (those
    the documents list)."""
    known = [configs[h] for h in hashes if isinstance(configs.get(h), dict)]
    keys = sorted({k for c in known for k in c}, key=str)
    return [
        str(k)
        for k in keys
        if len({(k in c, json.dumps(c.get(k), sort_keys=True, default=repr)) for c in known}) > 1
    ]


def _mixed_message(mixed: dict[str, dict[str, list[str]]], configs: dict) -> str:
    parts = []
    for field, values in mixed.items():
        shown = []
        for value, sources in values.items():
            names = ", ".join(sources[:3]) + (
                f" and {len(sources) - 3} more" if len(sources) > 3 else ""
            )
            shown.append(f"{value} in {names}")
        text = f"{field} differs: " + "; ".join(shown)
        if field == "config hash":
            settings = _config_difference(values, configs)
            if settings:
                text += f" (settings that differ: {', '.join(settings)})"
        parts.append(text)
    return (
        "refusing to rank rows that are not comparable: "
        + " | ".join(parts)
        + ". Merge only documents from the same data set, L grid and configuration, or "
        "pass --allow-mixed (allow_mixed=True) to rank them together anyway"
    )


def merge_documents(
    *docs: dict, sources: Sequence[str] | None = None, allow_mixed: bool = False
) -> dict:
    """Merge leaderboard documents (e.g. from several machines) into one.

    Each document is validated first (:func:`validate_document`; ``sources`` names them
    in messages, default ``document <n>``). Rows are keyed by (method, machine): for a key
    present in several documents the row with the latest ``measured_at`` wins (ties: the
    later document). Machines, configs and data checksums are united; ``complete`` (when a
    document states it) is true only if no document says false.

    Rows measured on different data sets (name or checksum), L grids or configuration
    hashes do not compare: LeaderboardDocumentError names what differs and where, unless
    ``allow_mixed``; then the result records the differing values under ``mixed`` (and a
    second checksum of one data set name under ``"<name>@<first 12 hex digits>"``).
    Non-finite numbers become null with a note (:func:`sanitize_document`). Ranks and the
    Pareto front are recomputed over the merged rows."""
    if sources is not None and len(sources) != len(docs):
        raise ValueError(f"{len(sources)} source names for {len(docs)} documents")
    names = list(sources) if sources is not None else [f"document {n}" for n in range(len(docs))]
    out = new_document()
    rows: dict[tuple[str, str], tuple[dict, dict, str]] = {}
    conflicts: list[str] = []
    for source, doc in zip(names, docs, strict=True):
        validate_document(doc, source)
        out["machines"].update(doc["machines"])
        out["configs"].update(doc["configs"])
        for name, checksum in doc["data_checksums"].items():
            seen = out["data_checksums"].setdefault(name, checksum)
            if seen != checksum:
                conflicts.append(
                    f"{source}: data set {name!r} has checksum {checksum}, an earlier "
                    f"document has {seen}"
                )
                out["data_checksums"][f"{name}@{checksum[:12]}"] = checksum
        for row in doc["rows"]:
            key = row_key(row)
            old = rows.get(key)
            if old is None or str(row.get("measured_at", "")) >= str(old[0].get("measured_at", "")):
                rows[key] = (row, _row_context(row, doc["data_checksums"]), source)
    mixed = mixed_fields((ctx, source) for _, ctx, source in rows.values())
    if conflicts and not allow_mixed:
        raise LeaderboardDocumentError(
            "; ".join(conflicts) + "; rows on different data cannot be merged (pass "
            "--allow-mixed to merge them anyway)"
        )
    if mixed and not allow_mixed:
        raise LeaderboardDocumentError(_mixed_message(mixed, out["configs"]))
    if mixed:
        out["mixed"] = {field: list(values) for field, values in mixed.items()}
    if any("complete" in doc for doc in docs):  # complete only if every part was
        out["complete"] = all(doc.get("complete", True) is True for doc in docs)
    out = sanitize_document(out)
    out["rows"] = rank_rows(_finite_row(row) for row, _, _ in rows.values())
    return out
