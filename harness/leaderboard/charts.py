"""The leaderboard's charts (matplotlib, rendered to inline SVG) and the method families
they share with the table: one colour and marker per family.

* :func:`pareto_svg`: quality against speed-up at the headline length, Pareto front
  drawn, labels placed so that they do not collide;
* :func:`scaling_svg`: time and memory against L on log-log axes, SDPA and the oracle as
  reference lines;
* :func:`error_svg`: one row's error against exact attention by L (detail sections).

matplotlib is optional (the ``report`` extra): :func:`load_matplotlib` returns None when
it is missing, and the page says so instead of drawing.
"""

from __future__ import annotations

import io
import math
import re

from harness.leaderboard.store import headline, headline_length, quality_interval

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
LINESTYLES = ("-", "--", ":", "-.")
MAX_ERROR_CHARTS = 60  # detail sections beyond this many rows show the error table only


def method_family(method: str) -> str:
    """The family of a method name: exact (sdpa*, oracle, xformers*), linear kernel
    (linear, performer, decay_linear, fla_*), sparse / local (local_window, lsh), low
    rank (linformer), LISA (lisa*), else other (plugins and anything unknown)."""
    name = method.lower()
    if name == "oracle" or name.startswith(("sdpa", "xformers")):
        return "exact"
    if name in ("linear", "performer", "decay_linear") or name.startswith("fla_"):
        return "linear kernel"
    if name in ("local_window", "lsh"):
        return "sparse / local"
    if name == "linformer":
        return "low rank"
    if name.startswith("lisa"):
        return "LISA"
    return "other"


def finite(value) -> float | None:
    """``value`` as a finite float, or None (missing, boolean, not a number, inf, NaN)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def board_length(doc: dict) -> int | None:
    """The L the headline columns compare at: the document's ``headline_length`` when it
    states one, else the longest L every compared row reached (None: no such L; each
    cell then names its own)."""
    stated = doc.get("headline_length")
    if isinstance(stated, int) and not isinstance(stated, bool):
        return stated
    return headline_length(doc["rows"])


def slug(text: str) -> str:
    """``text`` as an id fragment: lower-case letters and digits joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


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


def load_matplotlib():
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


def format_seconds(value, _pos=None) -> str:
    return _si(value, (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)))


def format_bytes(value, _pos=None) -> str:
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
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "fill": "full" if i < len(LINESTYLES) else "none",
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
        and any(finite(t) for t in r["speed"].get("time_s") or [])
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
                ys = [finite(v) for v in speed.get(key) or [None] * len(xs)]
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
        _log_axis(mpl, ax_t, "y", times_all, format_seconds)
        ax_t.set_ylabel("forward time (median, log scale)")
        ax_t.set_title("Time against L")
        if mems_all:
            _log_axis(mpl, ax_m, "y", mems_all, format_bytes)
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
        q = finite((r.get("downstream") or {}).get("NDCG@10"))
        s = finite(r.get("speedup"))
        if s is None and "speedup" not in r:  # a document ranked before speedup existed
            head = headline(r, common)
            ratio = None if head is None else finite(head["time_ratio"])
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
                gid=f"pareto-point-{slug(r['method'])}-{slug(r['machine'][:8])}",
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
        board = board_length(doc)
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
    series = error_series(row.get("error") or {})
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
            ys = [finite(y) for y in ys]
            values += [y for y in ys if y and y > 0]
            ax.plot(
                lengths,
                [y if y and y > 0 else math.nan for y in ys],
                color=colour,
                marker=marker,
                linestyle=LINESTYLES[i % len(LINESTYLES)],
                label=_tex(name),
            )
        _length_axis(mpl, ax, lengths)
        if values:
            _log_axis(mpl, ax, "y", values, lambda v, _p: f"{v:.2g}")
        ax.set_ylabel("relative error (log scale)")
        ax.legend()
        return _svg(mpl, fig, f"lb-error-{index + 1}")


def error_series(err: dict) -> tuple[list, dict[str, list]] | None:
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
