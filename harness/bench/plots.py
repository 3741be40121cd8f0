"""Log-log plots (PNG) of benchmark rows: median time and peak memory (MiB, as in the
tables) against L, one line per method and one figure per (mode, pass), with the
inter-quartile range as error bars. Needs matplotlib (in the ``dev`` extra); without it
:func:`plot_rows` raises :class:`PlotsUnavailable` with the install hint.

Every method keeps one colour and one marker in every figure (:func:`method_style`): the
marker (attention) or the colour (graph) says the method's family, so the same method
looks the same whichever other methods a figure holds. Rows that were not measured
(skipped, failed) are named with their status at the foot of the figure and by
:func:`left_out`.

:func:`plot_roofline` draws the run's rows under this machine's roofline
(``harness.measure_peaks``): arithmetic intensity (analytic FLOPs / compulsory bytes)
against achieved GFLOP/s, log-log, one panel per (mode, pass), with the bandwidth roof
(slope: peak GB/s) and the compute roof (flat: peak matmul GFLOP/s) meeting at the ridge
point; each method's points (one per L) are joined in order of L and named once, at the
longest L, with the names moved apart so that none overlaps another."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PlotsUnavailable", "left_out", "method_style", "plot_roofline", "plot_rows"]

MIB = 2**20
MARKER_PT = 6  # marker size of the roofline plot (points)

# Attention rows: the marker is the family, the colour the method.
_ATTENTION_STYLES = {
    # exact: squares
    "oracle": ("black", "s"),
    "sdpa": ("tab:gray", "s"),
    "xformers_mea": ("tab:brown", "s"),
    "sdpa_efficient": ("silver", "s"),
    "sdpa flash bf16": ("dimgray", "s"),
    # LISA: circles
    "lisa W=16": ("tab:blue", "o"),
    "lisa W=128": ("navy", "o"),
    "lisa_kmeans": ("tab:cyan", "o"),
    # kernel / linear: triangles
    "linear": ("tab:green", "^"),
    "performer": ("olive", "^"),
    "decay_linear": ("lime", "^"),
    "fla_linear": ("darkgreen", "^"),
    "fla_decay_linear": ("yellowgreen", "^"),
    # sparse (windows, buckets): diamonds
    "local_window": ("tab:orange", "D"),
    "lsh": ("tab:red", "D"),
    # low rank: down triangles
    "linformer": ("tab:purple", "v"),
}
# Graph rows "<sampler>+<estimator>": the colour is the sampler, the marker the estimator.
_SAMPLER_COLOURS = {
    "exhaustive": "black",
    "uniform": "tab:gray",
    "nodewise": "tab:blue",
    "ladies": "tab:orange",
    "adaptive": "tab:green",
    "type-dependent": "tab:red",
    "type-fusion": "tab:purple",
}
_ESTIMATOR_MARKERS = {"importance": "o", "self-normalized": "s", "adaptive": "^"}
# Anything else (plugins): a colour fixed by the name itself, never by its position.
_OTHER_COLOURS = (
    "tab:pink",
    "tab:olive",
    "darkgoldenrod",
    "teal",
    "crimson",
    "slateblue",
    "sienna",
    "darkcyan",
)


def method_style(method: str) -> tuple[str, str]:
    """(matplotlib colour, marker) of a method label; the same in every figure and run."""
    if method in _ATTENTION_STYLES:
        return _ATTENTION_STYLES[method]
    sampler, plus, estimator = method.partition("+")
    if method == "exhaustive" or (plus and sampler in _SAMPLER_COLOURS):
        return _SAMPLER_COLOURS.get(sampler, "black"), _ESTIMATOR_MARKERS.get(estimator, "*")
    colour = _OTHER_COLOURS[zlib.crc32(method.encode()) % len(_OTHER_COLOURS)]
    return colour, "o" if method.lower().startswith("lisa") else "X"


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise PlotsUnavailable(
            "plots need matplotlib: pip install matplotlib (or the project's dev extra: "
            "pip install -e '.[dev]'); rerun, or pass --no-plots"
        ) from error
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _group(r: dict) -> tuple[str, str]:
    return r.get("mode", "causal"), r.get("pass", "forward")


def left_out(rows: Sequence[dict], size_label: str = "L") -> list[str]:
    """One "method @ size: status" line per row that has no measurement to plot."""
    return [
        f"{r['method']} @ {size_label}={r.get('L', '?')}: {r.get('status', 'no status')}"
        for r in rows
        if r.get("status") != "ok"
    ]


def plot_rows(
    rows: Sequence[dict], out_dir: str | Path, *, family: str = "attention", size_label="L"
) -> list[Path]:
    """Write one PNG per (mode, pass) into ``out_dir``; returns the paths. Every row that
    was measured is drawn; rows that were skipped or failed are named, with their status,
    at the foot of their figure. A method with one measured point is a marker."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault(_group(r), []).append(r)
    paths = []
    for (mode, pass_), every in groups.items():
        group = [r for r in every if r.get("status") == "ok"]
        if not group:
            continue
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
        methods = list(dict.fromkeys(r["method"] for r in group))
        for m in methods:
            colour, marker = method_style(m)
            mine = sorted((r for r in group if r["method"] == m), key=lambda r: r["L"])
            xs = [r["L"] for r in mine]
            med = [r["median_s"] for r in mine]
            err = [
                [r["median_s"] - r["q1_s"] for r in mine],
                [r["q3_s"] - r["median_s"] for r in mine],
            ]
            style = {"color": colour, "marker": marker, "label": m}
            ax_t.errorbar(xs, med, yerr=err, capsize=2, **style)
            mem = [(r["L"], r["peak_bytes"] / MIB) for r in mine if r.get("peak_bytes")]
            if mem:
                ax_m.plot(*zip(*mem, strict=True), **style)
        for ax, ylabel in ((ax_t, "median time (s)"), (ax_m, "peak memory (MiB)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(size_label)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        ax_t.legend(fontsize="small", ncol=2 if len(methods) > 12 else 1)
        fig.suptitle(f"{family}: {mode}, {pass_}")
        missing = left_out(every, size_label)
        if missing:
            shown = missing[:6] + ([f"... {len(missing) - 6} more"] if len(missing) > 6 else [])
            fig.text(0.01, 0.01, "not plotted: " + "; ".join(shown), fontsize="x-small", wrap=True)
            fig.tight_layout(rect=(0, 0.06, 1, 1))
        else:
            fig.tight_layout()
        path = out_dir / f"{family}-{_slug(mode)}-{_slug(pass_)}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        tmp.replace(path)
        paths.append(path)
    return paths


def _as_peaks(peaks) -> dict:
    """{dtype: Peaks} from a Peaks, a {dtype: Peaks or its dict} mapping, or None."""
    from harness.measure_peaks import Peaks

    if peaks is None:
        return {}
    if isinstance(peaks, Peaks):
        return {peaks.dtype: peaks}
    return {k: v if isinstance(v, Peaks) else Peaks.from_dict(v) for k, v in peaks.items()}


def _place_labels(ax, labels, renderer, avoid=()) -> list:
    """Write each (text, (x, y), colour) beside its point, moved up or down (with a leader
    line back to the point) until its box overlaps no label placed before it nor a box in
    ``avoid``; returns the text annotations. Labels are placed from the top of the panel
    down, so that nearby points keep their vertical order."""
    placed = list(avoid)
    out = []
    to_display = ax.transData.transform
    points_per_pixel = 72.0 / ax.figure.dpi
    for text, (x, y), colour in sorted(labels, key=lambda item: -to_display(item[1])[1]):
        ann = ax.annotate(
            text,
            (x, y),
            xytext=(6, 0),
            textcoords="offset points",
            fontsize="small",
            color=colour,
            va="center",
        )
        box = ann.get_window_extent(renderer)  # the text alone (no arrow)
        step = (box.height + 2) * points_per_pixel
        for k in range(1, 80):
            if not any(box.overlaps(other) for other in placed):
                break
            shift = step * ((k + 1) // 2) * (-1 if k % 2 else 1)  # down, up, further ...
            ann.xyann = (6, shift)
            box = ann.get_window_extent(renderer)
        if ann.xyann[1] != 0:  # a leader line from the moved label to its point
            ax.annotate(
                "",
                (x, y),
                xytext=ann.xyann,
                textcoords="offset points",
                arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5, "alpha": 0.6},
            )
        placed.append(box)
        out.append(ann)
    return out


def plot_roofline(rows: Sequence[dict], peaks, out_dir: str | Path, *, family: str = "attention"):
    """Write ``<family>-roofline.png`` into ``out_dir`` (see the module docstring) and
    return its path; None when no row has an arithmetic intensity and an achieved rate
    or no peaks are given. ``peaks``: a ``harness.measure_peaks.Peaks``, or {dtype: Peaks
    or its ``as_dict()``} (one roof per dtype; the bandwidth roof is shared)."""
    roofs = _as_peaks(peaks)

    ok = [
        r
        for r in rows
        if r.get("status") == "ok"
        and r.get("arithmetic_intensity")
        and r.get("achieved_gflops")
        and r["arithmetic_intensity"] > 0
        and r["achieved_gflops"] > 0
    ]
    if not roofs or not ok:
        return None
    plt = _pyplot()
    from matplotlib.transforms import Bbox

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in ok:
        groups.setdefault(_group(r), []).append(r)
    cols = min(2, len(groups))
    nrows = -(-len(groups) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(7 * cols, 5.5 * nrows), squeeze=False)
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    intensities = [r["arithmetic_intensity"] for r in ok]
    rates = [r["achieved_gflops"] for r in ok]
    ridges = [p.ridge_flops_per_byte for p in roofs.values()]
    top = max(p.flops_per_s for p in roofs.values()) / 1e9
    x_lo = min(min(intensities), min(ridges)) / 4
    x_hi = max(max(intensities), max(ridges)) * 4
    y_lo, y_hi = min(min(rates), top / 30) / 3, top * 3
    layouts = []
    for ax, ((mode, pass_), group) in zip(axes.flat, groups.items(), strict=False):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_lo, y_hi)
        for i, (dtype, p) in enumerate(roofs.items()):
            ridge, peak, bw = p.ridge_flops_per_byte, p.flops_per_s / 1e9, p.bytes_per_s / 1e9
            style = {"color": "black" if i == 0 else "dimgray", "ls": "-" if i == 0 else "--"}
            ax.plot([x_lo, ridge, x_hi], [x_lo * bw, peak, peak], lw=1.2, **style)
            ax.axvline(ridge, color=style["color"], lw=0.6, ls=":", alpha=0.7)
            ax.text(
                x_hi / 1.1,
                peak * 1.1,
                f"{dtype} matmul peak {peak:,.0f} GFLOP/s",
                ha="right",
                va="bottom",
                fontsize="x-small",
                color=style["color"],
            )
        first = next(iter(roofs.values()))
        bw = first.bytes_per_s / 1e9
        x_bw = min(max((x_lo * first.ridge_flops_per_byte) ** 0.5, 2 * y_lo / bw), x_hi)
        ax.text(x_bw * 1.15, x_bw * bw / 1.4, f"copy {bw:,.1f} GB/s", fontsize="x-small")
        labels = []
        for m in dict.fromkeys(r["method"] for r in group):
            colour, marker = method_style(m)
            mine = sorted((r for r in group if r["method"] == m), key=lambda r: r["L"])
            xs = [r["arithmetic_intensity"] for r in mine]
            ys = [r["achieved_gflops"] for r in mine]
            ax.plot(xs, ys, color=colour, marker=marker, lw=0.8, ms=MARKER_PT, label=m)
            labels.append((m, (xs[-1], ys[-1]), colour))
        lengths = sorted({r["L"] for r in group})
        span = f"L = {lengths[0]:,}" + (f" .. {lengths[-1]:,}" if len(lengths) > 1 else "")
        ax.set_title(f"{mode}, {pass_} ({span}; named at the longest L)", fontsize="medium")
        ax.set_xlabel("arithmetic intensity (FLOP / byte of compulsory traffic)")
        ax.set_ylabel("achieved GFLOP/s (analytic FLOPs / median time)")
        ax.grid(True, which="both", alpha=0.25)
        layouts.append((ax, labels))
    first = next(iter(roofs.values()))
    who = first.device
    if first.threads:
        who = f"{first.threads} thread" + ("s" if first.threads > 1 else "")
    fig.suptitle(
        f"{family} under this machine's roofline ({who})\nmatmul {first.matmul_n}x"
        f"{first.matmul_n} {first.dtype}: {first.flops_per_s / 1e9:,.1f} GFLOP/s; copy of "
        f"{first.copy_bytes / 2**20:,.0f} MiB: {first.bytes_per_s / 1e9:,.1f} GB/s",
        fontsize="small",
    )
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    half = MARKER_PT / 2 * fig.dpi / 72  # a marker's half-width in pixels
    for ax, labels in layouts:
        avoid = [t.get_window_extent(renderer) for t in ax.texts]
        for line in ax.get_lines():  # every marker: a name never covers a point
            if line.get_marker() in (None, "None", ""):
                continue
            for px, py in ax.transData.transform(line.get_xydata()):
                avoid.append(Bbox.from_extents(px - half, py - half, px + half, py + half))
        _place_labels(ax, labels, renderer, avoid)
    path = out_dir / f"{_slug(family)}-roofline.png"
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
