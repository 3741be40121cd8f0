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
* **charts** (matplotlib, inline SVG): quality against speed-up with the Pareto front,
  and time and memory against L on log-log axes with SDPA and the oracle as reference
  lines. One colour and marker per method family (:func:`method_family`). Without
  matplotlib (the ``report`` extra) the page says so instead.
* **a detail section per row** (``#detail-<n>``, linked from the method's cell): error
  against exact attention, the status of every stage and of every length, the machine's
  fingerprint and the command that reproduces the row.
"""

from __future__ import annotations

import functools
import html
import io
import json
import math
import os
import re
import shlex
from pathlib import Path
from typing import NamedTuple

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
# Method families: one colour (Okabe-Ito, safe for colour-blind readers) and one marker
# each, the same in every chart and in the table's swatch.

FAMILIES: dict[str, tuple[str, str, str]] = {
    # family: (colour, matplotlib marker, the marker as a character for the table)
    "exact": ("#000000", "s", "\u25a0"),
    "linear kernel": ("#0072B2", "^", "\u25b2"),
    "sparse / local": ("#E69F00", "D", "\u25c6"),
    "low rank": ("#009E73", "v", "\u25bc"),
    "LISA": ("#D55E00", "o", "\u25cf"),
    "other": ("#CC79A7", "X", "\u2716"),
}
_LINESTYLES = ("-", "--", ":", "-.")
MAX_ERROR_CHARTS = 60  # detail sections beyond this many rows show the error table only


def method_family(method: str) -> str:
    """The family of a method name: exact (sdpa*, oracle, xformers*), linear kernel
    (linear, performer), sparse / local (local_window, lsh), low rank (linformer), LISA
    (lisa*), else other (plugins and anything unknown)."""
    name = method.lower()
    if name == "oracle" or name.startswith(("sdpa", "xformers")):
        return "exact"
    if name in ("linear", "performer"):
        return "linear kernel"
    if name in ("local_window", "lsh"):
        return "sparse / local"
    if name == "linformer":
        return "low rank"
    if name.startswith("lisa"):
        return "LISA"
    return "other"


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


def _finite(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _num(value, fmt="{:.3g}", title=None) -> Cell:
    x = _finite(value)
    return Cell("-", None, title) if x is None else Cell(fmt.format(x), x, title)


def _quality_cell(down: dict, key: str) -> Cell:
    mean = _finite(down.get(key))
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


def _exponent_cell(speed: dict, field: str, values_key: str) -> Cell:
    fit = speed.get(field)
    lengths = speed.get("lengths") or []
    values = speed.get(values_key)
    if values is not None and len(values) != len(lengths):
        values = None
    if not fit or _finite(fit[0]) is None:
        return Cell("-", None, "no fit: fewer than two measured lengths")
    problem = exponent_problem(lengths, values)
    if problem is not None:
        return Cell("-", None, f"not reported: {problem}")
    return Cell(format_exponent(fit, sizes=lengths, values=values), fit[0])


def _crossover_cell(speed: dict) -> Cell:
    cross = speed.get("crossover") or {}
    kind, at = cross.get("kind"), _finite(cross.get("length"))
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


def _board_length(doc: dict) -> int | None:
    """The L the headline columns compare at: the document's ``headline_length`` when it
    states one, else the longest L every compared row reached (None: no such L; each
    cell then names its own)."""
    stated = doc.get("headline_length")
    if isinstance(stated, int) and not isinstance(stated, bool):
        return stated
    return headline_length(doc["rows"])


def _speed_cells(row: dict, common: int | None, board: int | None) -> tuple[Cell, Cell]:
    head = headline(row, common)
    ratio = None if head is None else _finite(head["time_ratio"])
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
    roof = _finite(head.get("roofline_fraction"))
    if roof is not None:
        text += f" · {100 * roof:.0f}% roofline"
    title = f"time / SDPA = {ratio:.3g} at L={head['length']} ({where})"
    if roof is not None:
        title += f"; {100 * roof:.1f}% of the roofline bound at that L"
    memory = _finite(head.get("memory_ratio"))
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
    board = _board_length(doc)
    leaders: dict[int, str] = {}
    for r in doc["rows"]:
        if r.get("shared_rank") == r.get("rank"):
            leaders.setdefault(r.get("shared_rank"), r["method"])
    out = []
    for r in doc["rows"]:
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
            "epoch_s": _num(down.get("epoch_time_s"), "{:.2f}"),
            "pareto": Cell("yes" if r.get("pareto") else "", 1 if r.get("pareto") else 0),
        }
        out.append(cells)
    return out


def _titles(doc: dict) -> dict[str, str]:
    titles = {key: title for key, title, _ in COLUMNS}
    board = _board_length(doc)
    at = f" @ L={board}" if board is not None else " @ L (per cell)"
    titles["speedup"] += at
    titles["mem_ratio"] += at
    return titles


def _headline_sentence(doc: dict) -> str:
    board = _board_length(doc)
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
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Reproducing a row

# LeaderboardConfig fields whose command-line option has another name
_DESTS = {"seqrec_max_len": "max_len", "seqrec_epochs": "epochs", "stage_timeout_s": "timeout"}
_NOT_SETTINGS = ("quick", "methods", "plugins")


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
        if option is not None and option[1] and value is not None:
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


# --------------------------------------------------------------------------------------
# Charts (matplotlib -> inline SVG)

MATPLOTLIB_HINT = (
    "Charts need matplotlib >= 3.7, which is not installed here: pip install "
    "'lisa-bench[report]' (or matplotlib), then rerun the command (or --merge the JSON "
    "to redraw the page)."
)
_RC = {
    "svg.fonttype": "none",  # text stays text: selectable, searchable, small
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.5,
    "legend.frameon": False,
}


def _matplotlib():
    """The matplotlib pieces the charts use, or None when it is missing or too old."""
    try:
        import matplotlib
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.transforms import Bbox
    except ImportError:
        return None
    major, minor = (int(x) for x in re.findall(r"\d+", matplotlib.__version__)[:2])
    if (major, minor) < (3, 7):
        return None
    return {
        "matplotlib": matplotlib,
        "ticker": ticker,
        "Canvas": FigureCanvasAgg,
        "Figure": Figure,
        "Line2D": Line2D,
        "Bbox": Bbox,
    }


def _tex(text: str) -> str:
    """A label matplotlib shows as written (no mathtext)."""
    return str(text).replace("$", r"\$")


def _si(value: float, units: tuple[tuple[str, float], ...]) -> str:
    for unit, scale in units:
        if value >= scale * 0.9995:
            return f"{value / scale:.3g} {unit}"
    unit, scale = units[-1]
    return f"{value / scale:.3g} {unit}"


def _seconds(value, _pos=None) -> str:
    return _si(value, (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)))


def _bytes(value, _pos=None) -> str:
    return _si(value, (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0)))


def _times(value, _pos=None) -> str:
    return f"{value:.3g}×"


def _log_ticks(lo: float, hi: float) -> tuple[list[float], float, float]:
    """(ticks, lo, hi) for a log axis over [lo, hi]: powers of ten when they give three
    or more ticks, else 1-2-5, else 1..9 per decade; limits widened to the neighbouring
    ticks when fewer than two fall inside."""
    d0, d1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    inside: list[float] = []
    for subs in ((1,), (1, 2, 5), tuple(range(1, 10))):
        grid = sorted(float(f"{s}e{d}") for d in range(d0, d1 + 1) for s in subs)
        inside = [t for t in grid if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if len(inside) >= 3:
            if len(inside) > 8:
                step = math.ceil(len(inside) / 6)
                inside = inside[::step]
            return inside, lo, hi
    if len(inside) < 2:
        below = [t for t in grid if t < lo * (1 - 1e-9)]
        above = [t for t in grid if t > hi * (1 + 1e-9)]
        if below and (not inside or inside[0] > lo):
            lo = below[-1]
            inside = [lo, *inside]
        if above and len(inside) < 2:
            hi = above[0]
            inside = [*inside, hi]
    return inside, lo, hi


def _log_axis(mpl, ax, which: str, values, formatter, pad: float = 1.15) -> None:
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return
    lo, hi = min(values) / pad, max(values) * pad
    ticks, lo, hi = _log_ticks(lo, hi)
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)
    axis.set_major_locator(mpl["ticker"].FixedLocator(ticks))
    axis.set_major_formatter(mpl["ticker"].FuncFormatter(formatter))
    axis.set_minor_locator(mpl["ticker"].NullLocator())


def _length_axis(mpl, ax, lengths) -> None:
    """x: L on a log axis, ticks at the measured lengths (or powers of two when many)."""
    lengths = sorted({int(n) for n in lengths})
    ax.set_xscale("log", base=2)
    ax.set_xlim(lengths[0] / 1.2, lengths[-1] * 1.2)
    ticks = lengths if len(lengths) <= 9 else lengths[:: math.ceil(len(lengths) / 8)]
    ax.xaxis.set_major_locator(mpl["ticker"].FixedLocator(ticks))
    ax.xaxis.set_major_formatter(mpl["ticker"].FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.xaxis.set_minor_locator(mpl["ticker"].NullLocator())
    ax.set_xlabel("sequence length L (log scale)")


def _svg(mpl, fig, salt: str) -> str:
    """The figure as an ``<svg>`` element to inline: no XML prolog or metadata; ids
    unique on the page (matplotlib numbers its groups from 1 in every figure, and derives
    clip-path and marker ids from ``svg.hashsalt``)."""
    buf = io.StringIO()
    rc = {**_RC, "svg.hashsalt": salt}
    with mpl["matplotlib"].rc_context(rc):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\bid="([A-Za-z][\w.]*_\d+)"', rf'id="{salt}-\1"', text)
    text = text[text.index("<svg") :]
    return text.replace("<svg ", f'<svg id="{salt}" ', 1)


def _label(row: dict, machines: int) -> str:
    name = row["method"]
    if row.get("level") == "layer":
        name += " (layer)"
    if machines > 1:
        name += f" @ {row['machine'][:8]}"
    return name


def _styles(rows) -> dict[int, dict]:
    """Per row (by id): colour, marker and line style; the line style tells the methods
    of one family apart (in name order, so it does not depend on the ranking)."""
    names: dict[str, list[str]] = {}
    for r in rows:
        fam = method_family(r["method"])
        if r["method"] not in names.setdefault(fam, []):
            names[fam].append(r["method"])
    for fam in names:
        names[fam].sort()
    out = {}
    for r in rows:
        fam = method_family(r["method"])
        colour, marker, _ = FAMILIES[fam]
        i = names[fam].index(r["method"])
        out[id(r)] = {
            "family": fam,
            "color": colour,
            "marker": marker,
            "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            "fill": "full" if i < len(_LINESTYLES) else "none",
        }
    return out


def _reference(row: dict) -> str | None:
    return {"sdpa": "SDPA", "oracle": "oracle"}.get(row["method"])


def scaling_svg(doc: dict, mpl) -> tuple[str, str]:
    """(inline SVG, caption): forward time and peak memory against L, log-log, one line
    per row; SDPA and the oracle as reference lines."""
    rows = [
        r
        for r in doc["rows"]
        if (r.get("speed") or {}).get("lengths")
        and any(_finite(t) for t in r["speed"].get("time_s") or [])
    ]
    if not rows:
        return "", "No row has timings."
    machines = len({r["machine"] for r in rows})
    styles = _styles(rows)
    Figure, Line2D = mpl["Figure"], mpl["Line2D"]
    with mpl["matplotlib"].rc_context(_RC):
        fig = Figure(figsize=(10.0, 4.0), layout="constrained")
        mpl["Canvas"](fig)
        ax_t, ax_m = fig.subplots(1, 2)
        entries: dict[str, list] = {}
        lengths_all, times_all, mems_all = [], [], []
        for r in rows:
            speed = r["speed"]
            xs = speed["lengths"]
            st = styles[id(r)]
            ref = _reference(r)
            for ax, key, acc in (
                (ax_t, "time_s", times_all),
                (ax_m, "memory_bytes", mems_all),
            ):
                ys = [_finite(v) for v in speed.get(key) or [None] * len(xs)]
                ys = [y if y and y > 0 else None for y in ys]
                if not any(ys):
                    continue
                acc += [y for y in ys if y]
                plot_ys = [math.nan if y is None else y for y in ys]
                if ref:
                    line = ax.plot(
                        xs,
                        plot_ys,
                        color="#555555" if ref == "SDPA" else "#000000",
                        linestyle="-" if ref == "SDPA" else (0, (5, 2)),
                        linewidth=2.4 if ref == "SDPA" else 1.6,
                        alpha=0.8,
                        zorder=1,
                    )[0]
                else:
                    line = ax.plot(
                        xs,
                        plot_ys,
                        color=st["color"],
                        marker=st["marker"],
                        linestyle=st["linestyle"],
                        fillstyle=st["fill"],
                        linewidth=1.3,
                        markersize=4.5,
                        zorder=3,
                    )[0]
                group = "reference" if ref else st["family"]
                label = f"{ref} (reference)" if ref else _label(r, machines)
                if machines > 1 and ref:
                    label += f" @ {r['machine'][:8]}"
                if label not in [lab for _, lab in entries.get(group, [])]:
                    entries.setdefault(group, []).append((line, _tex(label)))
            lengths_all += xs
        for ax in (ax_t, ax_m):
            _length_axis(mpl, ax, lengths_all)
        _log_axis(mpl, ax_t, "y", times_all, _seconds)
        ax_t.set_ylabel("forward time (median, log scale)")
        ax_t.set_title("Time against L")
        if mems_all:
            _log_axis(mpl, ax_m, "y", mems_all, _bytes)
            ax_m.set_ylabel("peak memory (log scale)")
        else:
            ax_m.text(0.5, 0.5, "no memory measurements", ha="center", transform=ax_m.transAxes)
        ax_m.set_title("Peak memory against L")
        handles, labels, bold = [], [], []
        for group in ("reference", *FAMILIES):
            if group not in entries:
                continue
            bold.append(len(labels))
            handles.append(Line2D([], [], linestyle="none"))
            labels.append("reference" if group == "reference" else group)
            for line, label in entries[group]:
                handles.append(line)
                labels.append(label)
        legend = fig.legend(handles, labels, loc="outside right upper", handlelength=2.6)
        for i in bold:
            legend.get_texts()[i].set_fontweight("bold")
        svg = _svg(mpl, fig, "lb-scaling")
    where = "one machine" if machines == 1 else f"{machines} machines (labelled)"
    caption = (
        "Forward time (median) and peak heap memory against sequence length, log-log, "
        f"on {where}. SDPA (grey) and the oracle (black, dashed) are reference lines; "
        "colour and marker give the method family, line style the method within it. "
        "LISA layers are timed as layers (projections included)."
    )
    return svg, caption


def _overlap(a: tuple, b: tuple) -> float:
    """Overlapping area of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _crosses(p: tuple, q: tuple, box: tuple, steps: int = 24) -> bool:
    """Does the segment p-q pass through ``box`` (sampled; ends excluded)?"""
    for i in range(1, steps):
        t = i / steps
        x, y = p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t
        if box[0] < x < box[2] and box[1] < y < box[3]:
            return True
    return False


def _candidates():
    """(dx, dy, ha, va) label offsets in points: close to the point first, then farther
    out (those get a leader line), in eight directions."""
    out = []
    for radius in (7, 20, 34, 50):
        for deg in (30, -30, 150, 210, 90, 270, 0, 180, 60, 120, 240, 300):
            c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
            ha = "left" if c > 0.3 else ("right" if c < -0.3 else "center")
            va = "bottom" if s > 0.3 else ("top" if s < -0.3 else "center")
            out.append((radius * c, radius * s, ha, va))
    return out


def _place_labels(mpl, fig, ax, points) -> None:
    """Annotate (x, y, name) points so that labels collide with nothing: names of points
    drawn on top of each other share one label; each label takes, of offsets in eight
    directions at growing distances, the one that overlaps no marker, no other label and
    no leader line, stays inside the axes and lies closest (a leader line marks the far
    ones); when every offset collides, the one that collides least."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    groups: list[dict] = []
    for x, y, name in points:
        d = tuple(ax.transData.transform((x, y)))
        for g in groups:
            if abs(g["d"][0] - d[0]) < 4 * px and abs(g["d"][1] - d[1]) < 4 * px:
                g["names"].append(name)
                break
        else:
            groups.append({"xy": (x, y), "d": d, "names": [name]})
    r = 5 * px
    marks = [(g["d"][0] - r, g["d"][1] - r, g["d"][0] + r, g["d"][1] + r) for g in groups]
    f = ax.get_window_extent(renderer)
    frame = (f.x0, f.y0, f.x1, f.y1)
    boxes: list[tuple] = []
    leaders: list[tuple[tuple, tuple]] = []
    order = sorted(range(len(groups)), key=lambda i: (groups[i]["d"][0], -groups[i]["d"][1]))
    for i in order:
        g = groups[i]
        names = g["names"]
        if len(names) > 2:
            text = "\n".join(", ".join(names[k : k + 2]) for k in range(0, len(names), 2))
        else:
            text = ", ".join(names)
        text = _tex(text)
        probe = Text(0, 0, text, fontsize=8, figure=fig)
        size = probe.get_window_extent(renderer)
        w, h = size.width + 3 * px, size.height + 2 * px
        best = None
        for dx, dy, ha, va in _candidates():
            x = g["d"][0] + dx * px
            y = g["d"][1] + dy * px
            x0 = {"left": x, "right": x - w, "center": x - w / 2}[ha]
            y0 = {"bottom": y, "top": y - h, "center": y - h / 2}[va]
            box = (x0, y0, x0 + w, y0 + h)
            far = math.hypot(dx, dy) > 10
            anchor = (min(max(g["d"][0], box[0]), box[2]), min(max(g["d"][1], box[1]), box[3]))
            cost = sum(_overlap(box, o) for o in boxes + marks)
            cost += 4 * (w * h - _overlap(box, frame))
            cost += 400 * px * px * sum(_crosses(p, q, box) for p, q in leaders)
            if far:
                others = [m for j, m in enumerate(marks) if j != i] + boxes
                cost += 400 * px * px * sum(_crosses(g["d"], anchor, o) for o in others)
            cost += math.hypot(dx, dy) * px  # closer is better
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va, box, far, anchor)
        _, dx, dy, ha, va, box, far, anchor = best
        ann = ax.annotate(
            text,
            xy=g["xy"],
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=8,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.45", "shrinkB": 4}
            if far
            else None,
        )
        ann.set_in_layout(False)
        boxes.append(box)
        if far:
            leaders.append((g["d"], anchor))


def pareto_svg(doc: dict, mpl) -> tuple[str, str]:
    """(inline SVG, caption): NDCG@10 against speed-up over SDPA at the headline L
    (log), 95% intervals as error bars, the Pareto front dashed."""
    common = headline_length(doc["rows"])
    pts, left_out = [], []
    for r in doc["rows"]:
        q = _finite((r.get("downstream") or {}).get("NDCG@10"))
        s = _finite(r.get("speedup"))
        if s is None and "speedup" not in r:  # a document ranked before speedup existed
            head = headline(r, common)
            ratio = None if head is None else _finite(head["time_ratio"])
            s = 1 / ratio if ratio else None
        if q is None or s is None or s <= 0:
            left_out.append(r["method"])
            continue
        pts.append((r, s, q))
    if not pts:
        return "", "No row has both a speed-up and a quality score."
    machines = len({r["machine"] for r, _, _ in pts})
    styles = _styles([r for r, _, _ in pts])
    Figure, Line2D = mpl["Figure"], mpl["Line2D"]
    with mpl["matplotlib"].rc_context(_RC):
        fig = Figure(figsize=(8.6, 5.2), layout="constrained")
        mpl["Canvas"](fig)
        ax = fig.subplots()
        ax.axvline(1.0, color="0.55", linewidth=0.8, linestyle=":", zorder=1)
        front = sorted(((s, q) for r, s, q in pts if r.get("pareto")), key=lambda p: p[0])
        if len(front) > 1:
            ax.plot(
                [p[0] for p in front],
                [p[1] for p in front],
                color="0.3",
                linestyle="--",
                linewidth=1.0,
                zorder=2,
            )
        families = []
        for r, s, q in pts:
            st = styles[id(r)]
            interval = quality_interval(r.get("downstream"))
            yerr = None if interval is None else [[q - interval[0]], [interval[1] - q]]
            if yerr is not None:
                ax.errorbar(
                    [s],
                    [q],
                    yerr=yerr,
                    fmt="none",
                    ecolor=st["color"],
                    elinewidth=1.0,
                    capsize=2.5,
                    zorder=3,
                )
            ax.plot(
                [s],
                [q],
                color=st["color"],
                marker=st["marker"],
                markersize=8 if r.get("pareto") else 6.5,
                markeredgecolor="black" if r.get("pareto") else st["color"],
                markeredgewidth=1.2 if r.get("pareto") else 0.5,
                linestyle="none",
                zorder=4,
                gid=f"pareto-point-{_slug(r['method'])}-{_slug(r['machine'][:8])}",
            )
            if st["family"] not in families:
                families.append(st["family"])
        qs = [q for _, _, q in pts]
        lows = [quality_interval(r.get("downstream")) for r, _, _ in pts]
        lo = min([q for q in qs] + [iv[0] for iv in lows if iv])
        hi = max([q for q in qs] + [iv[1] for iv in lows if iv])
        span = (hi - lo) or max(abs(hi), 1e-3) * 0.1
        ax.set_ylim(lo - 0.12 * span, hi + 0.18 * span)
        ax.yaxis.set_major_locator(mpl["ticker"].MaxNLocator(6))
        ax.yaxis.set_major_formatter(mpl["ticker"].FormatStrFormatter("%.3f"))
        _log_axis(mpl, ax, "x", [s for _, s, _ in pts] + [1.0], _times, pad=1.35)
        board = _board_length(doc)
        at = f"L = {board}" if board is not None else "each method's headline L"
        ax.set_xlabel(f"speed-up over SDPA at {at} (log scale; dotted: SDPA = 1×)")
        ax.set_ylabel("NDCG@10 (mean over seeds)")
        ax.set_title("Quality against speed")
        handles = [
            Line2D(
                [],
                [],
                color=FAMILIES[f][0],
                marker=FAMILIES[f][1],
                linestyle="none",
                markersize=6,
            )
            for f in FAMILIES
            if f in families
        ]
        labels = [f for f in FAMILIES if f in families]
        handles.append(
            Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="--")
        )
        labels.append("Pareto front")
        fig.legend(handles, labels, loc="outside right upper", title="method family")
        _place_labels(
            mpl, fig, ax, [(s, q, _label(r, machines).replace(" (layer)", "")) for r, s, q in pts]
        )
        svg = _svg(mpl, fig, "lb-pareto")
    caption = (
        "Downstream quality (NDCG@10; bars: 95% interval over seeds where there are two "
        f"or more) against speed-up over SDPA at {at}. Points with a black edge are on the "
        "Pareto front (no other method is at least as good in both and better in one)."
    )
    if left_out:
        caption += " Not plotted (no speed-up or no quality): " + ", ".join(left_out) + "."
    return svg, caption


def error_svg(row: dict, mpl, index: int = 0) -> str:
    """Inline SVG of relative error against L for a row whose ``error`` holds per-length
    lists (``lengths`` and one list per workload); "" otherwise."""
    series = _error_series(row.get("error") or {})
    if series is None or len(series[0]) < 2:
        return ""
    lengths, by_workload = series
    with mpl["matplotlib"].rc_context(_RC):
        fig = mpl["Figure"](figsize=(4.4, 2.7), layout="constrained")
        mpl["Canvas"](fig)
        ax = fig.subplots()
        colour, marker, _ = FAMILIES[method_family(row["method"])]
        values = []
        for i, (name, ys) in enumerate(by_workload.items()):
            ys = [_finite(y) for y in ys]
            values += [y for y in ys if y and y > 0]
            ax.plot(
                lengths,
                [y if y and y > 0 else math.nan for y in ys],
                color=colour,
                marker=marker,
                linestyle=_LINESTYLES[i % len(_LINESTYLES)],
                label=_tex(name),
            )
        _length_axis(mpl, ax, lengths)
        if values:
            _log_axis(mpl, ax, "y", values, lambda v, _p: f"{v:.2g}")
        ax.set_ylabel("relative error (log scale)")
        ax.legend()
        return _svg(mpl, fig, f"lb-error-{index + 1}")


def _error_series(err: dict) -> tuple[list, dict[str, list]] | None:
    """(lengths, {workload: [error per length]}) from ``lengths`` with ``by_length``
    (or with one list per workload beside it); None when the dict has one length."""
    lengths = err.get("lengths")
    if not isinstance(lengths, list) or not lengths:
        return None
    source = err.get("by_length") if isinstance(err.get("by_length"), dict) else err
    series = {
        k: v
        for k, v in source.items()
        if k != "lengths" and isinstance(v, list) and len(v) == len(lengths)
    }
    return (lengths, series) if series else None


def charts_html(doc: dict) -> str:
    """The charts section: figures with captions, or a note saying why there are none."""
    mpl = _matplotlib()
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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


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
        t, m = _finite(at("time_s", i)), _finite(at("memory_bytes", i))
        tr, mr = _finite(at("time_ratio", i)), _finite(at("memory_ratio", i))
        roof = _finite(at("roofline_fraction", i))
        status = at("status", i)
        if status is None:
            status = "ok" if t is not None else "not measured"
        cells = [
            f"{n:,}",
            "-" if t is None else _seconds(t),
            "-" if m is None else _bytes(m),
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
    series = _error_series(err)
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
    mpl = _matplotlib()
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
