"""Log-log plots (PNG) of benchmark rows: median time and peak memory (MiB, as in the
tables) against L, one line per method and one figure per (mode, pass), with the
inter-quartile range as error bars. Needs matplotlib (in the ``dev`` extra); without it
:func:`plot_rows` raises :class:`PlotsUnavailable` with the install hint.

Every method keeps one colour and one marker in every figure (:func:`method_style`): the
marker (attention) or the colour (graph) says the method's family, so the same method
looks the same whichever other methods a figure holds. Rows that were not measured
(skipped, failed) are named with their status at the foot of the figure and by
:func:`left_out`."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PlotsUnavailable", "left_out", "method_style", "plot_rows"]

MIB = 2**20

# Attention rows: the marker is the family, the colour the method.
_ATTENTION_STYLES = {
    # exact: squares
    "oracle": ("black", "s"),
    "sdpa": ("tab:gray", "s"),
    "xformers_mea": ("tab:brown", "s"),
    # LISA: circles
    "lisa W=16": ("tab:blue", "o"),
    "lisa W=128": ("navy", "o"),
    "lisa_kmeans": ("tab:cyan", "o"),
    # kernel / linear: triangles
    "linear": ("tab:green", "^"),
    "performer": ("olive", "^"),
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
