"""Seed statistics of associative-recall grids: the mean accuracy of each (method, L) over
its training seeds with a Student-t interval, and each method's paired difference to a
reference method (exact attention by default) on the seeds both trained.

Per cell (method m, length L) with ok rows for seeds S (|S| = n)::

    mean   a_bar = (1/n) sum_s a_s
    95 %   a_bar +- t(0.975, n - 1) * sd(a) / sqrt(n)            (no interval when n = 1)
    paired d_s = a_s - r_s for the seeds s that m and the reference r both trained at L;
           the same t interval over the d_s; "within noise" when it contains 0
    chance "at chance" when the accuracy interval contains 1 / (number of value tokens)

The seeds of one method at one length share nothing but the task settings: data, held-out
set and initialisation all come from the seed (``harness.tasks.associative_recall``), so
the seed-to-seed spread is the noise a reader should expect from a rerun. Pairing removes
what two methods trained on the same seed share (the same batches and held-out set).

Grids may come from several files (different seeds or lengths run apart, e.g. one per
core): :func:`load_grids` merges them, refusing files whose task settings differ (other
than the seed) and two different accuracies for the same (method, L, seed) -- the
training is deterministic for a seed, so that would mean a changed method or setting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.seqrec.statistics import mean_interval, paired_difference

__all__ = ["format_summary", "load_grids", "summarise"]

# settings that may differ between merged files: the seed of each run
_PER_RUN = {"seed"}


def load_grids(paths: Sequence[str | Path]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The task settings and the rows of the ``python -m harness mqar`` JSON files
    ``paths`` (at least one), merged as the module docstring says. A row without a
    ``seed`` (older files) takes its file's ``settings["seed"]``. Raises ValueError
    naming the file for a file that is not an MQAR grid, settings that differ from the
    first file's, or a (method, L, seed) scored differently in two files."""
    if not paths:
        raise ValueError("paths: need at least one MQAR grid file")
    settings: dict[str, Any] | None = None
    first = ""
    rows: list[dict[str, Any]] = []
    seen: dict[tuple, tuple[str, dict]] = {}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read an MQAR grid ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("task") != "mqar" or "rows" not in doc:
            raise ValueError(f"{path}: not an MQAR grid (expected task 'mqar' with rows)")
        these = {k: v for k, v in doc.get("settings", {}).items() if k not in _PER_RUN}
        if settings is None:
            settings, first = these, str(path)
        elif these != settings:
            keys = sorted(
                k for k in these.keys() | settings.keys() if these.get(k) != settings.get(k)
            )
            raise ValueError(
                f"{path}: task settings differ from {first}'s in {keys}; "
                "only grids of the same task can be merged"
            )
        for row in doc["rows"]:
            row = {"seed": doc.get("settings", {}).get("seed"), **row}
            key = (row["method"], row["length"], row["seed"])
            if key in seen:
                other_path, other = seen[key]
                if row.get("status") == "ok" and other.get("status") == "ok":
                    if row["accuracy"] != other["accuracy"]:
                        raise ValueError(
                            f"{path}: {key[0]} at L={key[1]} seed {key[2]} scored "
                            f"{row['accuracy']} here and {other['accuracy']} in {other_path}; "
                            "a seed's training is deterministic, so the two runs differ"
                        )
                    continue
                if other.get("status") == "ok":
                    continue  # keep the finished run over a failed one
                rows.remove(other)
            seen[key] = (str(path), row)
            rows.append(row)
    return dict(settings or {}), rows


def summarise(
    rows: Sequence[dict[str, Any]], reference: str | None = "sdpa", level: float = 0.95
) -> list[dict[str, Any]]:
    """One entry per (method, length), in the order rows first name them: ``method``,
    ``length``, ``seeds`` (of the ok rows), ``n``, ``accuracy`` (``Interval.as_dict()`` of
    :func:`harness.seqrec.statistics.mean_interval`, None without an ok row), ``chance``,
    ``at_chance`` (the interval contains chance; None when n < 2), ``not_ok`` ({seed:
    status} of the rows that are not ok) and ``versus_reference``
    (``PairedDifference.as_dict()`` against ``reference`` at the same length on the shared
    seeds; None for the reference itself, without shared seeds, or ``reference=None``)."""
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["method"], row["length"]), []).append(row)

    def by_seed(cell: list[dict[str, Any]]) -> dict[Any, float]:
        return {r["seed"]: r["accuracy"] for r in cell if r.get("status") == "ok"}

    out = []
    for (method, length), cell in cells.items():
        accuracy = by_seed(cell)
        entry: dict[str, Any] = {
            "method": method,
            "length": length,
            "seeds": list(accuracy),
            "n": len(accuracy),
            "accuracy": None,
            "chance": next((r["chance"] for r in cell if "chance" in r), None),
            "at_chance": None,
            "not_ok": {r["seed"]: r.get("status") for r in cell if r.get("status") != "ok"},
            "versus_reference": None,
        }
        if accuracy:
            interval = mean_interval(list(accuracy.values()), level)
            entry["accuracy"] = interval.as_dict()
            if interval.low is not None and entry["chance"] is not None:
                entry["at_chance"] = bool(interval.low <= entry["chance"] <= interval.high)
        ref = by_seed(cells.get((reference, length), [])) if reference else {}
        if method != reference and accuracy and set(accuracy) & set(ref):
            entry["versus_reference"] = paired_difference(accuracy, ref, level).as_dict()
        out.append(entry)
    return out


def _accuracy_text(entry: dict[str, Any]) -> str:
    acc = entry["accuracy"]
    if acc is None:
        return ",".join(sorted({str(s) for s in entry["not_ok"].values()})) or "-"
    if acc["half_width"] is None:
        return f"{acc['mean']:.3f} (n=1)"
    mark = " ~c" if entry["at_chance"] else ""
    return f"{acc['mean']:.3f}±{acc['half_width']:.3f}{mark}"


def _difference_text(entry: dict[str, Any]) -> str:
    versus = entry["versus_reference"]
    if versus is None:
        return "-"
    diff = versus["difference"]
    if diff["half_width"] is None:
        return f"{diff['mean']:+.3f} (n=1)"
    verdict = " tie" if versus["within_noise"] else ""
    return f"{diff['mean']:+.3f}±{diff['half_width']:.3f}{verdict}"


def format_summary(summary: Sequence[dict[str, Any]], reference: str | None = "sdpa") -> str:
    """Two tables, rows methods, columns L: mean accuracy ± the half-width of its interval
    (``~c``: the interval contains chance; ``(n=1)``: one seed, no interval), then each
    method minus ``reference`` paired by seed (``tie``: the interval contains 0)."""
    methods = list(dict.fromkeys(e["method"] for e in summary))
    lengths = sorted({e["length"] for e in summary})
    cell = {(e["method"], e["length"]): e for e in summary}
    width = max([len("method"), *(len(m) for m in methods)])

    def table(text) -> list[str]:
        head = "method".ljust(width) + "".join(f"{'L=' + str(n):>20}" for n in lengths)
        lines = [head]
        for m in methods:
            row = m.ljust(width)
            for n in lengths:
                entry = cell.get((m, n))
                row += f"{text(entry) if entry else '-':>20}"
            lines.append(row)
        return lines

    seeds = sorted({s for e in summary for s in e["seeds"]}, key=lambda s: (s is None, s or 0))
    level = next((e["accuracy"]["level"] for e in summary if e["accuracy"]), 0.95)
    lines = [f"accuracy, mean ± {level:.0%} t-interval half-width over seeds {seeds}"]
    lines += table(_accuracy_text)
    if reference is not None and any(e["versus_reference"] for e in summary):
        lines += ["", f"paired difference to {reference} (same seeds), mean ± half-width"]
        lines += table(_difference_text)
    return "\n".join(lines)
