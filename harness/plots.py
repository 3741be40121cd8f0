"""Log-log plots (PNG) of benchmark rows: median time and peak memory against L, one
line per method and one figure per (mode, pass), with the inter-quartile range as error
bars. Needs matplotlib (in the ``dev`` extra); without it :func:`plot_rows` raises
:class:`PlotsUnavailable` with the install hint."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PlotsUnavailable", "plot_rows"]


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


def plot_rows(
    rows: Sequence[dict], out_dir: str | Path, *, family: str = "attention", size_label="L"
) -> list[Path]:
    """Write one PNG per (mode, pass) into ``out_dir``; returns the paths. Rows that were
    skipped or failed are left out; a method without two measured points is a marker."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault((r.get("mode", "causal"), r.get("pass", "forward")), []).append(r)
    paths = []
    for (mode, pass_), group in groups.items():
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
        methods = list(dict.fromkeys(r["method"] for r in group))
        for m in methods:
            mine = sorted((r for r in group if r["method"] == m), key=lambda r: r["L"])
            xs = [r["L"] for r in mine]
            med = [r["median_s"] for r in mine]
            err = [
                [r["median_s"] - r["q1_s"] for r in mine],
                [r["q3_s"] - r["median_s"] for r in mine],
            ]
            ax_t.errorbar(xs, med, yerr=err, marker="o", capsize=2, label=m)
            mem = [(r["L"], r["peak_bytes"]) for r in mine if r.get("peak_bytes")]
            if mem:
                ax_m.plot(*zip(*mem, strict=True), marker="o", label=m)
        for ax, ylabel in ((ax_t, "median time (s)"), (ax_m, "peak memory (bytes)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(size_label)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        ax_t.legend(fontsize="small")
        fig.suptitle(f"{family}: {mode}, {pass_}")
        fig.tight_layout()
        path = out_dir / f"{family}-{_slug(mode)}-{_slug(pass_)}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        tmp.replace(path)
        paths.append(path)
    return paths
