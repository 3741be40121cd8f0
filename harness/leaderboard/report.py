"""Leaderboard reports: a Markdown table and a static HTML page, both from a leaderboard
document (``harness.leaderboard.store``). Every file is written atomically (a temporary
file in the same folder, then a rename).

The page is one self-contained file that works offline (no script, style or font is
fetched):

* **the table**, ranked as :func:`harness.leaderboard.store.rank_rows` says: methods
  whose NDCG@10 is within noise share a rank, shown as ``=2``. Quality columns show the
  mean over seeds with the half-width of its 95% interval (``0.4781 ± 0.0123``), or
  ``(1 seed)`` where one seed gives no interval. The headline speed columns compare at
  one length, named in their header (``speed["headline"]`` when the rows carry it, else
  the longest L every row with a time ratio reached), with the roofline fraction beside
  the speed-up when the row has one. Exponents are shown only when the reporting rule of
  ``harness.scaling`` allows (>= 4 lengths spanning >= 16x), else ``-`` with a tooltip
  saying why. The current sort key is stated above the table; clicking a header sorts by
  it (again: reverses), and ``#sort=<column>:<asc|desc>`` in the address sets it.
* **charts** (:mod:`harness.leaderboard.charts`; matplotlib, inline SVG): quality against
  speed-up with the Pareto front, and time and memory against L on log-log axes with SDPA
  and the oracle as reference lines. One colour and marker per method family
  (:func:`method_family`). Without matplotlib (the ``report`` extra) the page says so
  instead.
* **a detail section per row** (``#detail-<n>``, linked from the method's cell): error
  against exact attention, the status of every stage and of every length, the machine's
  fingerprint and the command that reproduces the row.
"""

from __future__ import annotations

import functools
import html
import json
import os
import shlex
from pathlib import Path
from typing import NamedTuple

from harness.leaderboard.charts import (
    FAMILIES,
    MATPLOTLIB_HINT,
    MAX_ERROR_CHARTS,
    board_length,
    error_series,
    error_svg,
    finite,
    format_bytes,
    format_seconds,
    load_matplotlib,
    method_family,
    pareto_svg,
    scaling_svg,
)
from harness.leaderboard.store import (
    QUALITY_DIGITS,
    headline,
    headline_length,
    quality_interval,
    seed_count,
)
from harness.results import write_json_atomic, write_text_atomic
from harness.scaling import MIN_POINTS, MIN_SPAN, exponent_problem, format_exponent

__all__ = [
    "FAMILIES",
    "Cell",
    "charts_html",
    "method_family",
    "reproduce_command",
    "table_rows",
    "to_html",
    "to_markdown",
    "write_outputs",
    "write_text_atomic",
]


# --------------------------------------------------------------------------------------
# Table cells


class Cell(NamedTuple):
    """One table cell: what it shows, the key it sorts by (None: sorts last) and a
    tooltip."""

    text: str
    sort: float | str | None
    title: str | None = None


COLUMNS = (
    # key, title, which end is better (the first click on the header sorts it first).
    # The ranking key and the headline numbers first, so they show without scrolling.
    ("rank", "#", "low"),
    ("method", "method", "low"),
    ("ndcg10", "NDCG@10", "high"),
    ("hr10", "HR@10", "high"),
    ("mqar", "MQAR accuracy", "high"),
    ("long_ndcg", "NDCG@10, long history", "high"),
    ("long_time", "epoch time / SDPA, long history", "low"),
    ("speedup", "speed-up vs SDPA", "high"),
    ("mem_ratio", "memory / SDPA", "low"),
    ("pareto", "Pareto", "high"),
    ("time_exp", "time ~ L^k", "low"),
    ("mem_exp", "memory ~ L^k", "low"),
    ("crossover", "crossover L", "low"),
    ("err_gauss", "rel. error (gaussian)", "low"),
    ("err_vocab", "rel. error (vocabulary)", "low"),
    ("conformance", "conformance", "low"),
    ("level", "level", "low"),
    ("machine", "machine", "low"),
    ("epoch_s", "epoch s", "low"),
)
_LEFT = ("method", "conformance", "level", "machine")  # text columns, aligned left
SORT_NAMES = {"rank": "# (the ranking: NDCG@10, then HR@10, then speed-up)"}
RULE = (
    "Ranked by downstream NDCG@10 (mean over seeds), then HR@10, then speed-up; methods "
    "that passed the conformance suite first, the others below. Methods whose NDCG@10 is "
    "within noise of the best method of their group share its rank (shown as =2): "
    "identical scores always; with two or more seeds each, overlapping 95% intervals; "
    f"otherwise scores equal to the {QUALITY_DIGITS} decimals shown."
)


def _num(value, fmt="{:.3g}", title=None) -> Cell:
    x = finite(value)
    return Cell("-", None, title) if x is None else Cell(fmt.format(x), x, title)


def _quality_cell(down: dict, key: str) -> Cell:
    mean = finite(down.get(key))
    if mean is None:
        return Cell("-", None, "no downstream score" if not down else f"no {key}")
    text = f"{mean:.{QUALITY_DIGITS}f}"
    n = seed_count(down)
    interval = quality_interval(down, key)
    if interval is not None:
        half = (interval[1] - interval[0]) / 2
        title = (
            f"mean over {n} seeds; 95% interval of the mean [{interval[0]:.4f}, "
            f"{interval[1]:.4f}] (t distribution, sd {down.get(f'{key} sd'):.4f})"
        )
        return Cell(f"{text} ± {half:.{QUALITY_DIGITS}f}", mean, title)
    if n == 1:
        return Cell(f"{text} (1 seed)", mean, "one seed: no interval")
    if n is None:
        return Cell(text, mean, "the number of seeds is not recorded: no interval")
    return Cell(text, mean, f"{n} seeds but no standard deviation recorded: no interval")


def _mqar_cell(row: dict, sdpa: dict | None = None) -> Cell:
    """Accuracy at the longest MQAR length measured, every length in the tooltip. With
    several seeds: the mean ± the half-width of its 95% t-interval, and against the
    document's ``sdpa`` row trained on the same seeds the paired difference, a tie
    (``≈ sdpa``) when its interval contains 0."""
    mqar = row.get("mqar") or {}
    lengths, acc = mqar.get("lengths") or [], mqar.get("accuracy") or []
    half = mqar.get("half_width") or [None] * len(lengths)
    per_seed = mqar.get("per_seed") or [None] * len(lengths)
    found = [
        (n, finite(a), finite(h), s)
        for n, a, h, s in zip(lengths, acc, half, per_seed, strict=False)
        if finite(a) is not None
    ]
    if not found:
        stage = (row.get("stages") or {}).get("mqar")
        return Cell("-", None, f"mqar stage: {stage}" if stage and stage != "ok" else "not run")
    n, a, h, values = found[-1]
    by_length = ", ".join(
        f"L={m}: {x:.3f}" + (f" ± {w:.3f}" if w is not None else "") for m, x, w, _ in found
    )
    seeds = mqar.get("seeds") or [mqar.get("seed")]
    title = (
        f"held-out accuracy by length ({by_length}); chance {finite(mqar.get('chance')) or 0:.3f}; "
        f"{mqar.get('steps')} steps, seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(str(s) for s in seeds)}"
    )
    text = f"{a:.3f} @ L={n}" if h is None else f"{a:.3f} ± {h:.3f} @ L={n}"
    tie = _mqar_tie(mqar, n, values, sdpa) if row.get("method") != "sdpa" else None
    if tie is not None:
        title += f"; {tie[1]}"
        if tie[0]:
            text += " ≈ sdpa"
    return Cell(text, a, title)


def _mqar_tie(mqar: dict, length: int, values, sdpa: dict | None) -> tuple[bool, str] | None:
    """(within noise, sentence) of the paired difference to sdpa's MQAR accuracy at
    ``length`` on the seeds both rows trained; None without two shared seeds."""
    from harness.seqrec.statistics import paired_difference

    ref = (sdpa or {}).get("mqar") or {}
    if not values or length not in (ref.get("lengths") or []) or not ref.get("per_seed"):
        return None
    ref_values = ref["per_seed"][ref["lengths"].index(length)]
    mine = dict(zip(mqar.get("seeds") or [], values, strict=False))
    theirs = dict(zip(ref.get("seeds") or [], ref_values, strict=False))
    shared = {
        s: mine[s]
        for s in mine
        if s in theirs and finite(mine[s]) is not None and finite(theirs[s]) is not None
    }
    if len(shared) < 2:
        return None
    diff = paired_difference(shared, {s: theirs[s] for s in shared})
    d = diff.difference
    verdict = "within noise: a tie" if diff.within_noise else "outside noise"
    return bool(diff.within_noise), (
        f"minus sdpa at L={length}, paired over {len(shared)} seeds: "
        f"{d.mean:+.3f} ± {d.half_width:.3f} ({verdict})"
    )


def _long_history_cells(row: dict, sdpa: dict | None) -> tuple[Cell, Cell]:
    """(NDCG@10, epoch time / SDPA's) of the long-history run; the ratio only when the
    document's ``sdpa`` row ran the same window, else ``-`` with the reason."""
    long = row.get("long_history") or {}
    ndcg = finite(long.get("NDCG@10"))
    if ndcg is None:
        stage = (row.get("stages") or {}).get("long_history")
        why = f"long-history stage: {stage}" if stage and stage != "ok" else "not run"
        return Cell("-", None, why), Cell("-", None, why)
    n = long.get("max_len")
    title = (
        f"window {n}, {long.get('epochs')} epochs, seed {(long.get('seeds') or ['?'])[0]}; "
        f"HR@10 {finite(long.get('HR@10')) or 0:.4f}; epoch time "
        f"{finite(long.get('epoch_time_s')) or 0:.2f} s"
    )
    quality = Cell(f"{ndcg:.{QUALITY_DIGITS}f} @ L={n}", ndcg, title)
    mine = finite(long.get("epoch_time_s"))
    ref = (sdpa or {}).get("long_history") or {}
    theirs = finite(ref.get("epoch_time_s"))
    if mine is None or theirs is None or theirs <= 0 or ref.get("max_len") != n:
        return quality, Cell("-", None, "no SDPA long-history run with this window to compare")
    ratio = mine / theirs
    return quality, Cell(
        f"{ratio:.2f}", ratio, f"{mine:.2f} s per epoch against SDPA's {theirs:.2f} s (window {n})"
    )


def _exponent_cell(speed: dict, field: str, values_key: str) -> Cell:
    fit = speed.get(field)
    lengths = speed.get("lengths") or []
    values = speed.get(values_key)
    if values is not None and len(values) != len(lengths):
        values = None
    if not fit or finite(fit[0]) is None:
        return Cell("-", None, "no fit: fewer than two measured lengths")
    problem = exponent_problem(lengths, values)
    if problem is not None:
        return Cell("-", None, f"not reported: {problem}")
    return Cell(format_exponent(fit, sizes=lengths, values=values), fit[0])


def _crossover_cell(speed: dict) -> Cell:
    cross = speed.get("crossover") or {}
    kind, at = cross.get("kind"), finite(cross.get("length"))
    if kind == "at" and at is not None:
        return Cell(f"{at:.0f}", at, "faster than SDPA from this L on (interpolated)")
    if kind == "below" and at is not None:
        return Cell(f"< {at:.0f}", at / 2, "faster than SDPA at every measured L")
    if kind == "above" and at is not None:
        return Cell(f"> {at:.0f}", at * 2, "slower than SDPA at every measured L")
    return Cell("-", None, "no comparable timings")


def _missing_speed(row: dict) -> str:
    notes = [n for n in row.get("notes") or [] if "speed" in n]
    if notes:
        return "; ".join(notes)
    stage = (row.get("stages") or {}).get("speed")
    return f"speed stage: {stage}" if stage and stage != "ok" else "not measured"


def _speed_cells(row: dict, common: int | None, board: int | None) -> tuple[Cell, Cell]:
    head = headline(row, common)
    ratio = None if head is None else finite(head["time_ratio"])
    if head is None or ratio is None or ratio <= 0:
        why = _missing_speed(row)
        if head is not None and (row.get("speed") or {}).get("lengths"):
            speed = row["speed"]
            reached = [
                n
                for n, t in zip(speed["lengths"], speed.get("time_ratio") or [], strict=False)
                if t is not None
            ]
            why = f"not measured at the headline L={head['length']}"
            if reached:
                why += f" (longest L measured: {max(reached)})"
            if speed.get("reference_only"):
                why += "; a reference row on a shorter grid"
        return Cell("-", None, why), Cell("-", None, why)
    at = "" if head["length"] == board else f" @ L={head['length']}"
    where = {
        "row": "the row's headline",
        "common L": "the longest L every compared method reached",
        "own longest L": "this method's own longest L: not comparable with the others",
    }[head["source"]]
    text = f"{1 / ratio:.3g}×{at}"
    roof = finite(head.get("roofline_fraction"))
    if roof is not None:
        text += f" · {100 * roof:.0f}% roofline"
    title = f"time / SDPA = {ratio:.3g} at L={head['length']} ({where})"
    if roof is not None:
        title += f"; {100 * roof:.1f}% of the roofline bound at that L"
    memory = finite(head.get("memory_ratio"))
    mem = Cell("-", None, "no memory measurement at that L")
    if memory is not None:
        mem = Cell(f"{memory:.3g}{at}", memory, f"peak memory / SDPA at L={head['length']}")
    return Cell(text, 1 / ratio, title), mem


def _rank_cell(row: dict, leaders: dict) -> Cell:
    position = row.get("rank")
    shared = row.get("shared_rank", position)
    if shared is None:
        return Cell("", None)
    if row.get("tied"):
        head = leaders.get(shared)
        with_ = f" (tied with {head})" if head and head != row["method"] else " (tied)"
        return Cell(f"={shared}", position, f"within noise{with_}: shares rank {shared}")
    return Cell(str(shared), position, None)


def table_rows(doc: dict) -> list[dict[str, Cell]]:
    """Per row: column key (``COLUMNS``) -> :class:`Cell`."""
    common = headline_length(doc["rows"])
    board = board_length(doc)
    leaders: dict[int, str] = {}
    for r in doc["rows"]:
        if r.get("shared_rank") == r.get("rank"):
            leaders.setdefault(r.get("shared_rank"), r["method"])
    sdpa = next((r for r in doc["rows"] if r["method"] == "sdpa"), None)
    out = []
    for r in doc["rows"]:
        long_ndcg, long_time = _long_history_cells(r, sdpa)
        speed = r.get("speed") or {}
        down = r.get("downstream") or {}
        err = r.get("error") or {}
        conf = r.get("conformance") or {}
        status = conf.get("status", "-")
        speedup, mem = _speed_cells(r, common, board)
        cells = {
            "rank": _rank_cell(r, leaders),
            "method": Cell(r["method"], r["method"], method_family(r["method"])),
            "machine": Cell(r["machine"][:8], r["machine"], r["machine"]),
            "level": Cell(r.get("level", "-"), r.get("level", "-")),
            "conformance": Cell(status, status, conf.get("reason")),
            "err_gauss": _num(err.get("gaussian"), title=err.get("failed")),
            "err_vocab": _num(err.get("vocabulary"), title=err.get("failed")),
            "speedup": speedup,
            "mem_ratio": mem,
            "time_exp": _exponent_cell(speed, "time_exponent", "time_s"),
            "mem_exp": _exponent_cell(speed, "memory_exponent", "memory_bytes"),
            "crossover": _crossover_cell(speed),
            "hr10": _quality_cell(down, "HR@10"),
            "ndcg10": _quality_cell(down, "NDCG@10"),
            "mqar": _mqar_cell(r, sdpa),
            "long_ndcg": long_ndcg,
            "long_time": long_time,
            "epoch_s": _num(down.get("epoch_time_s"), "{:.2f}"),
            "pareto": Cell("yes" if r.get("pareto") else "", 1 if r.get("pareto") else 0),
        }
        out.append(cells)
    return out


def _titles(doc: dict) -> dict[str, str]:
    titles = {key: title for key, title, _ in COLUMNS}
    board = board_length(doc)
    at = f" @ L={board}" if board is not None else " @ L (per cell)"
    titles["speedup"] += at
    titles["mem_ratio"] += at
    return titles


def _headline_sentence(doc: dict) -> str:
    board = board_length(doc)
    if board is not None:
        where = f"at L = {board}, the longest length every compared method reached"
    else:
        where = "at the length given in each cell (the rows share no common length)"
    return (
        f"Speed-up (SDPA time / method time) and memory / SDPA are {where}, against SDPA "
        "measured in the same run."
    )


def baselines_sentence(doc: dict) -> str | None:
    """One sentence with the model-free baselines of the downstream column (the document's
    ``downstream_baselines``, on the same targets and negatives); None when absent."""
    base = doc.get("downstream_baselines")
    if not base or not base.get("metrics"):
        return None
    parts = [
        f"{name} HR@10 {m['HR@10']:.4f}, NDCG@10 {m['NDCG@10']:.4f}"
        for name, m in base["metrics"].items()
    ]
    text = (
        "Model-free baselines on the same test targets and negatives: "
        + "; ".join(parts)
        + ". A method at or below popularity has learned nothing the item counts do not give."
    )
    share, limit = base.get("repeat_share"), base.get("repeat_threshold")
    if share is not None and limit is not None and share > limit:
        text += (
            f" {share:.0%} of the test targets occur in the user's own history (repeat "
            "consumption): the sampled negatives exclude history items, so "
            "seen-before-popularity ranks those targets first without learning."
        )
    return text


EXPONENT_RULE = (
    f"Exponents k of cost ~ L^k (95% interval) are shown only when fitted over at least "
    f"{MIN_POINTS} lengths spanning at least {MIN_SPAN:g}x; otherwise '-'."
)


def to_markdown(doc: dict) -> str:
    rows = table_rows(doc)
    titles = _titles(doc)
    lines = [
        "# Efficient-attention leaderboard",
        "",
        RULE,
        _headline_sentence(doc),
        "Quality: mean ± half-width of the 95% interval over seeds; '(1 seed)': no interval.",
        EXPONENT_RULE,
        "",
        "| " + " | ".join(titles[key] for key, _, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for cells in rows:
        text = [cells[key].text.replace("|", "\\|") for key, _, _ in COLUMNS]
        lines.append("| " + " | ".join(text) + " |")
    baselines = baselines_sentence(doc)
    if baselines:
        lines += ["", baselines]
    lines += ["", "Data checksums (SHA-256):", ""]
    lines += [f"* {name}: `{sha}`" for name, sha in sorted(doc.get("data_checksums", {}).items())]
    lines += ["", "Machines:", ""]
    for mhash, fp in sorted(doc.get("machines", {}).items()):
        lines.append(
            f"* `{mhash[:8]}`: {fp.get('processor')} ({fp.get('cpu_count')} CPUs, "
            f"{fp.get('torch_threads')} torch threads), torch {fp.get('torch')}, "
            f"CUDA {fp.get('cuda')}"
            + "".join(f", {k}={v}" for k, v in sorted((fp.get("environment") or {}).items()))
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Reproducing a row

# LeaderboardConfig fields whose command-line option has another name
_DESTS = {"seqrec_max_len": "max_len", "seqrec_epochs": "epochs", "stage_timeout_s": "timeout"}
_NOT_SETTINGS = ("quick", "methods", "plugins")
# settings whose empty value means "column left out", and the flag that says so
_SWITCHED_OFF = {"mqar_lengths": "--no-mqar", "long_history_len": "--no-long-history"}


def _arg(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@functools.cache
def _options() -> dict[str, tuple[str, bool]]:
    """dest -> (long option, takes a value) of ``python -m harness leaderboard``, read
    from its parser, so the command follows the options that exist."""
    import argparse

    from harness.commands import leaderboard as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "leaderboard"
    ]
    return {
        a.dest: (max(a.option_strings, key=len), a.nargs != 0)
        for a in sub._actions
        if a.option_strings and a.dest != "help"
    }


@functools.cache
def _preset(quick: bool) -> dict | None:
    """The settings ``--quick`` (or its absence) starts from, or None if unknown."""
    try:
        from dataclasses import asdict

        from harness.leaderboard.pipeline import LeaderboardConfig

        return asdict(LeaderboardConfig() if quick else LeaderboardConfig.full())
    except Exception:  # the pipeline is not importable here: say so, do not fail
        return None


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def reproduce_command(doc: dict, row: dict) -> tuple[str, list[str]]:
    """(shell command, notes) that rerun ``row``'s method with its configuration
    (``doc["configs"][row["config_hash"]]``): ``python -m harness leaderboard --methods
    NAME [--quick]`` with every recorded setting that has a command-line option. The
    notes name what the command cannot set: settings without an option that differ from
    the preset, and a method that comes from a package to install first."""
    parts = ["python", "-m", "harness", "leaderboard", "--methods", row["method"]]
    notes: list[str] = []
    config = (doc.get("configs") or {}).get(row.get("config_hash"))
    if not isinstance(config, dict):
        notes.append(
            f"configuration {row.get('config_hash')!r} is not in this document: the "
            "command uses the defaults"
        )
        return shlex.join(parts), notes
    quick = bool(config.get("quick"))
    if quick:
        parts.append("--quick")
    try:
        options = _options()
    except Exception as exc:  # the command line could not be read: say so
        options = {}
        notes.append(f"could not read the command's options ({type(exc).__name__}: {exc})")
    preset = _preset(quick)
    no_option = []
    for key, value in sorted(config.items()):
        if key in _NOT_SETTINGS:
            continue
        option = options.get(_DESTS.get(key, key))
        if key in _SWITCHED_OFF and value in (None, [], ()):
            if preset is None or not _same(preset.get(key), value):
                parts.append(_SWITCHED_OFF[key])  # a column left out
        elif value in ([], ()) and preset is not None and _same(preset.get(key), value):
            continue  # an empty default (e.g. mqar_seeds: the first of --seeds)
        elif option is not None and option[1] and value not in (None, [], ()):
            values = value if isinstance(value, list | tuple) else [value]
            parts += [option[0], *(_arg(v) for v in values)]
        elif preset is None or key not in preset or not _same(preset[key], value):
            no_option.append(f"{key}={json.dumps(value, default=str)}")
    source = row.get("source")
    plugins = [p for p in config.get("plugins") or [] if isinstance(p, str)]
    if source in plugins:
        parts += ["--plugin", source]
    elif source and method_family(row["method"]) == "other" and source != "builtin":
        notes.append(f"the method comes from {source}: install it first")
    conf = row.get("conformance") or {}
    if conf.get("status") == "not-run" and "--no-conformance" in str(conf.get("reason")):
        parts.append("--no-conformance")
    if preset is None:
        notes.append("could not compare the settings without an option with their defaults")
    if no_option:
        notes.append(
            "settings without a command-line option that differ from the preset (set them "
            "in LeaderboardConfig): " + ", ".join(no_option)
        )
    return shlex.join(parts), notes


def charts_html(doc: dict) -> str:
    """The charts section: figures with captions, or a note saying why there are none."""
    mpl = load_matplotlib()
    if mpl is None:
        return f'<p class="note" id="charts-missing">{_esc(MATPLOTLIB_HINT)}</p>'
    out = []
    for make, name in ((pareto_svg, "pareto"), (scaling_svg, "scaling")):
        try:
            svg, caption = make(doc, mpl)
        except Exception as exc:  # a chart must never cost the board: say what failed
            svg, caption = "", f"This chart could not be drawn: {type(exc).__name__}: {exc}"
        out.append(
            f'<figure class="chart" id="chart-{name}">{svg}'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )
    return "".join(out)


# --------------------------------------------------------------------------------------
# HTML


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _anchor(index: int) -> str:
    return f"detail-{index + 1}"


def _kv_table(items, cls="kv") -> str:
    rows = "".join(
        f"<tr><th>{_esc(k)}</th><td>{_esc(_show(v))}</td></tr>" for k, v in items if v is not None
    )
    return f'<table class="{cls}">{rows}</table>' if rows else "<p>-</p>"


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _per_length_table(row: dict) -> str:
    speed = row.get("speed") or {}
    lengths = speed.get("lengths") or []
    if not lengths:
        return "<p>No per-length measurements.</p>"

    def at(key, i):
        values = speed.get(key) or []
        return values[i] if i < len(values) else None

    body = []
    for i, n in enumerate(lengths):
        t, m = finite(at("time_s", i)), finite(at("memory_bytes", i))
        tr, mr = finite(at("time_ratio", i)), finite(at("memory_ratio", i))
        roof = finite(at("roofline_fraction", i))
        status = at("status", i)
        if status is None:
            status = "ok" if t is not None else "not measured"
        cells = [
            f"{n:,}",
            "-" if t is None else format_seconds(t),
            "-" if m is None else format_bytes(m),
            "-" if tr is None else f"{tr:.3g}",
            "-" if mr is None else f"{mr:.3g}",
            "-" if roof is None else f"{100 * roof:.1f}%",
            str(status),
        ]
        cls = "" if status == "ok" else ' class="bad"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("L", "time", "peak memory", "time / SDPA", "memory / SDPA", "roofline", "status")
    )
    note = ""
    if "status" not in speed:
        note = "<p class=\"note\">The row records no per-length status; 'ok' means measured.</p>"
    return f'<table class="cases"><tr>{head}</tr>{"".join(body)}</table>{note}'


def _error_html(row: dict, mpl, index: int) -> str:
    err = row.get("error")
    if not err:
        return "<p>Not measured (layers are compared in tests/attention).</p>"
    if "failed" in err:
        return f'<p class="bad">Failed: {_esc(err["failed"])}</p>'
    series = error_series(err)
    if series is not None:
        lengths, by_workload = series
        head = "<th>L</th>" + "".join(f"<th>{_esc(k)}</th>" for k in by_workload)
        body = "".join(
            f"<tr><td>{n:,}</td>"
            + "".join(f"<td>{_esc(_show(v[i]))}</td>" for v in by_workload.values())
            + "</tr>"
            for i, n in enumerate(lengths)
        )
        chart = ""
        if mpl is not None and index < MAX_ERROR_CHARTS:  # a chart each costs ~0.05 s
            chart = error_svg(row, mpl, index)
        return f'<table class="cases"><tr>{head}</tr>{body}</table>{chart}'
    where = ", ".join(f"{k} {err[k]}" for k in ("mode", "length", "dim") if err.get(k) is not None)
    items = [(k, v) for k, v in err.items() if k not in ("mode", "length", "dim")]
    text = "Relative Frobenius error against exact attention (float64)"
    text += f" at {where}" if where else ""
    return f"<p>{_esc(text)}; one length only.</p>{_kv_table(items)}"


def _stages_html(row: dict) -> str:
    stages = row.get("stages") or {}
    seconds = row.get("stage_seconds") or {}
    if not stages:
        return "<p>The row records no stage status.</p>"
    body = []
    for name, status in stages.items():
        cls = "" if status == "ok" else ' class="bad"'
        took = seconds.get(name)
        body.append(
            f"<tr{cls}><td>{_esc(name)}</td><td>{_esc(status)}</td>"
            f"<td>{'-' if took is None else _esc(f'{took:.3g} s')}</td></tr>"
        )
    return (
        '<table class="cases"><tr><th>stage</th><th>status</th><th>time</th></tr>'
        + "".join(body)
        + "</table>"
    )


def _conformance_html(row: dict) -> str:
    conf = row.get("conformance") or {}
    items = [
        (k, conf.get(k))
        for k in ("status", "passed", "failed", "skipped", "seconds", "reason", "command")
    ]
    out = _kv_table(items)
    failures = conf.get("failures") or []
    if failures:
        shown = "".join(f"<li><code>{_esc(f)}</code></li>" for f in failures[:10])
        more = f"<li>... and {len(failures) - 10} more</li>" if len(failures) > 10 else ""
        out += f"<ul>{shown}{more}</ul>"
    return out


def _detail_html(doc: dict, row: dict, index: int, cells: dict[str, Cell], mpl) -> str:
    method = row["method"]
    fam = method_family(method)
    colour, _, glyph = FAMILIES[fam]
    fingerprint = (doc.get("machines") or {}).get(row["machine"])
    machine = (
        _kv_table(sorted(fingerprint.items()))
        if isinstance(fingerprint, dict)
        else "<p>This machine's fingerprint is not in the document.</p>"
    )
    command, notes = reproduce_command(doc, row)
    notes_html = "".join(f"<li>{_esc(n)}</li>" for n in notes)
    down = row.get("downstream")
    row_notes = "".join(f"<li>{_esc(n)}</li>" for n in row.get("notes") or [])
    summary = [
        ("rank", cells["rank"].text),
        ("family", fam),
        ("level", row.get("level")),
        ("source", row.get("source")),
        ("exact", row.get("exact")),
        ("status", row.get("status")),
        ("measured at", row.get("measured_at")),
        ("machine", row["machine"]),
        ("config hash", row.get("config_hash")),
        ("data checksum", row.get("data_checksum")),
        ("speed-up", cells["speedup"].text),
        ("NDCG@10", cells["ndcg10"].text),
    ]
    return f"""<section class="detail" id="{_anchor(index)}">
<h3><span class="fam" style="color:{colour}" title="{_esc(fam)}">{glyph}</span>
{_esc(method)} <small>on {_esc(row["machine"][:8])}</small></h3>
<p><a href="#board">back to the table</a></p>
{_kv_table(summary)}
<h4>Conformance</h4>{_conformance_html(row)}
<h4>Stages (runner status)</h4>{_stages_html(row)}
<h4>Error against exact attention</h4>{_error_html(row, mpl, index)}
<h4>Time and memory per length</h4>{_per_length_table(row)}
<h4>Downstream</h4>{_kv_table(sorted(down.items())) if down else "<p>No downstream score.</p>"}
{f"<h4>Notes</h4><ul>{row_notes}</ul>" if row_notes else ""}
<h4>Machine</h4>{machine}
<h4>Reproduce</h4><pre class="cmd"><code>{_esc(command)}</code></pre>
{f"<ul>{notes_html}</ul>" if notes_html else ""}
</section>"""


_SCRIPT = """
(function () {
  var table = document.getElementById('board');
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  var keyText = document.getElementById('sort-key');
  var dirText = document.getElementById('sort-dir');
  function key(cell, numeric) {
    var v = cell.getAttribute('data-sort');
    if (v === null || v === '') return null;
    return numeric ? Number(v) : v;
  }
  function position(row) { return Number(row.cells[0].getAttribute('data-sort')); }
  function sortBy(col, dir) {
    var numeric = heads[col].getAttribute('data-type') === 'number';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x === y) return position(a) - position(b);
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(heads, function (th, i) {
      if (i === col) {
        th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
      } else {
        th.removeAttribute('aria-sort');
      }
    });
    var th = heads[col];
    var better = th.getAttribute('data-better');
    keyText.textContent = th.getAttribute('data-name');
    dirText.textContent = (dir === 1 ? 'ascending' : 'descending') +
      (better ? ((dir === 1) === (better === 'low') ? ', best first' : ', worst first') : '');
    table.setAttribute('data-sort-key', th.getAttribute('data-key'));
    table.setAttribute('data-sort-dir', dir === 1 ? 'asc' : 'desc');
  }
  function first(th) { return th.getAttribute('data-better') === 'high' ? -1 : 1; }
  function choose(col) {
    var th = heads[col];
    var now = th.getAttribute('aria-sort');
    var dir = now ? (now === 'ascending' ? -1 : 1) : first(th);
    sortBy(col, dir);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, '', '#sort=' + th.getAttribute('data-key') +
        ':' + (dir === 1 ? 'asc' : 'desc'));
    }
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () { choose(col); });
    th.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); choose(col); }
    });
  });
  var col = 0, dir = 1;
  var m = /^#sort=([a-z0-9_]+)(?::(asc|desc))?$/.exec(window.location.hash);
  if (m) {
    Array.prototype.forEach.call(heads, function (th, i) {
      if (th.getAttribute('data-key') === m[1]) {
        col = i;
        dir = m[2] ? (m[2] === 'asc' ? 1 : -1) : first(th);
      }
    });
  }
  sortBy(col, dir);
  document.body.setAttribute('data-ready', String(body.rows.length));
})();
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #111; max-width: 1500px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
#board td { white-space: nowrap; }
#board th { cursor: pointer; background: #eee; user-select: none; min-width: 5.5em;
  max-width: 11em; vertical-align: bottom; }
#board th[aria-sort] { background: #d8e6f5; }
#board th[aria-sort="ascending"]::after { content: " \\25B2"; }
#board th[aria-sort="descending"]::after { content: " \\25BC"; }
#board td.l { text-align: left; }
#board td[title] { text-decoration: underline dotted #999; }
#board tr.failed td { color: #777; }
.tie { font-weight: 600; color: #8a4b00; }
.fam { font-size: 11px; margin-right: 3px; }
.sortnote { background: #f4f7fb; border-left: 3px solid #5b8cc9; padding: 4px 8px; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure.chart { margin: 0; max-width: 100%; }
figure.chart svg { max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #333; max-width: 60em; }
.note { color: #8a4b00; }
.detail { border-top: 1px solid #ccc; margin-top: 1.5em; }
.detail table { margin-bottom: 0.5em; }
.detail th { background: #f3f3f3; text-align: left; }
.detail .kv td { text-align: left; font-family: monospace; }
.bad td, p.bad { color: #a00; }
pre.cmd { background: #f6f6f6; padding: 6px; white-space: pre-wrap; word-break: break-all; }
"""


def _baselines_html(doc: dict) -> str:
    text = baselines_sentence(doc)
    return f'<p class="baselines" id="baselines">{_esc(text)}</p>' if text else ""


def to_html(doc: dict) -> str:
    """The page (see the module docstring); one string, no outside resources."""
    rows = table_rows(doc)
    titles = _titles(doc)
    head = "".join(
        f'<th tabindex="0" data-key="{key}" data-better="{better}" '
        f'data-type="{"text" if key in _LEFT else "number"}" '
        f'data-name="{_esc(SORT_NAMES.get(key, titles[key]))}" '
        f'title="click to sort by {_esc(titles[key])}">{_esc(titles[key])}</th>'
        for key, _, better in COLUMNS
    )
    mpl = load_matplotlib()
    body, details = [], []
    for i, (cells, raw) in enumerate(zip(rows, doc["rows"], strict=True)):
        tds = []
        for key, _, _ in COLUMNS:
            cell = cells[key]
            sort = "" if cell.sort is None else cell.sort
            title = f' title="{_esc(cell.title)}"' if cell.title else ""
            text = _esc(cell.text)
            if key == "method":
                colour, _, glyph = FAMILIES[method_family(raw["method"])]
                text = (
                    f'<span class="fam" style="color:{colour}">{glyph}</span>'
                    f'<a href="#{_anchor(i)}">{text}</a>'
                )
            elif key == "rank" and raw.get("tied"):
                text = f'<span class="tie">{text}</span>'
            cls = ' class="l"' if key in _LEFT else ""
            tds.append(f'<td{cls} data-sort="{_esc(sort)}"{title}>{text}</td>')
        passed = (raw.get("conformance") or {}).get("status") in ("passed", "n/a")
        cls = "row" if passed else "row failed"
        body.append(f'<tr class="{cls}" data-method="{_esc(raw["method"])}">{"".join(tds)}</tr>')
        details.append(_detail_html(doc, raw, i, cells, mpl))
    machines = "".join(
        f"<li><code>{_esc(h[:8])}</code>: {_esc(fp.get('processor'))}, "
        f"{_esc(fp.get('cpu_count'))} CPUs, torch {_esc(fp.get('torch'))}</li>"
        for h, fp in sorted(doc.get("machines", {}).items())
    )
    checksums = "".join(
        f"<li>{_esc(n)}: <code>{_esc(s)}</code></li>"
        for n, s in sorted(doc.get("data_checksums", {}).items())
    )
    partial = ""
    if doc.get("complete") is False:
        partial = '<p class="note">This board is partial: the run did not finish.</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Efficient-attention leaderboard</title>
<style>{_STYLE}</style></head>
<body>
<h1>Efficient-attention leaderboard</h1>
{partial}
<p>{_esc(RULE)}</p>
<p>{_esc(_headline_sentence(doc))} Quality: mean ± half-width of the 95% interval of the
mean over seeds; "(1 seed)": one seed, no interval. {_esc(EXPONENT_RULE)} Hover a cell
for details; a method's name links to its detail section.</p>
<p class="sortnote" id="sort-state">Sorted by
<strong id="sort-key">{_esc(SORT_NAMES["rank"])}</strong>
(<span id="sort-dir">ascending, best first</span>). Click a column header to sort by
it, again to reverse.</p>
<div class="scroll"><table id="board"><thead><tr>{head}</tr></thead><tbody>
{"".join(body)}
</tbody></table></div>
{_baselines_html(doc)}
<h2>Charts</h2>
<div class="charts">{charts_html(doc)}</div>
<h2>Machines</h2><ul>{machines}</ul>
<h2>Data checksums (SHA-256)</h2><ul>{checksums}</ul>
<h2>Per-method details</h2>
{"".join(details)}
<script>{_SCRIPT}</script>
</body></html>
"""


def write_outputs(doc: dict, out_dir: str | os.PathLike, stem: str = "leaderboard") -> dict:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.html`` atomically; returns paths."""
    out = Path(out_dir)
    payload = json.loads(json.dumps(doc, default=str))
    return {
        "json": write_json_atomic(out / f"{stem}.json", payload),
        "markdown": write_text_atomic(out / f"{stem}.md", to_markdown(doc)),
        "html": write_text_atomic(out / f"{stem}.html", to_html(doc)),
    }
