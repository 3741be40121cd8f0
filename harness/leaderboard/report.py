"""Leaderboard reports: a Markdown table and a static HTML page (sortable table, inline SVG
plots: quality against speed-up with the Pareto front, and time against L per method).
All files are written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

from harness.results import write_json_atomic, write_text_atomic
from harness.scaling import exponent_is_reportable, format_exponent

__all__ = ["table_rows", "to_markdown", "to_html", "write_outputs", "write_text_atomic"]

COLUMNS = (
    ("rank", "#"),
    ("method", "method"),
    ("machine", "machine"),
    ("level", "level"),
    ("conformance", "conformance"),
    ("err_gauss", "rel. error (gaussian)"),
    ("err_vocab", "rel. error (vocabulary)"),
    ("time_ratio", "time / SDPA @ max L"),
    ("mem_ratio", "memory / SDPA @ max L"),
    ("time_exp", "time ~ L^k"),
    ("mem_exp", "memory ~ L^k"),
    ("crossover", "crossover L"),
    ("hr10", "HR@10"),
    ("ndcg10", "NDCG@10"),
    ("epoch_s", "epoch s"),
    ("pareto", "Pareto"),
)


def _num(value, fmt="{:.3g}") -> tuple[str, float | None]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-", None
    return fmt.format(value), float(value)


def _last(values):
    values = values or []
    return values[-1] if values else None


def table_rows(doc: dict) -> list[dict[str, tuple[str, float | str | None]]]:
    """Per row: column -> (display text, sort key)."""
    out = []
    for r in doc["rows"]:
        speed = r.get("speed") or {}
        down = r.get("downstream") or {}
        err = r.get("error") or {}
        conf = r.get("conformance") or {}
        cells = {
            "rank": (str(r.get("rank", "")), r.get("rank")),
            "method": (r["method"], r["method"]),
            "machine": (r["machine"][:8], r["machine"]),
            "level": (r.get("level", "-"), r.get("level", "-")),
            "conformance": (conf.get("status", "-"), conf.get("status", "-")),
            "err_gauss": _num(err.get("gaussian")),
            "err_vocab": _num(err.get("vocabulary")),
            "time_ratio": _num(_last(speed.get("time_ratio"))),
            "mem_ratio": _num(_last(speed.get("memory_ratio"))),
        }
        lengths = speed.get("lengths") or []
        for key, field, values in (
            ("time_exp", "time_exponent", speed.get("time_s")),
            ("mem_exp", "memory_exponent", speed.get("memory_bytes")),
        ):
            fit = speed.get(field)
            if fit and not exponent_is_reportable(lengths, values):
                cells[key] = ("not enough lengths", None)  # < 4 lengths spanning 16x
            else:
                cells[key] = (format_exponent(fit), fit[0] if fit else None)
        cross = speed.get("crossover") or {}
        kind, at = cross.get("kind"), cross.get("length")
        text = {"at": f"{at:.0f}" if at else "-", "below": f"< {at}", "above": f"> {at}"}.get(
            kind, "-"
        )
        cells["crossover"] = (text, at if kind == "at" else None)
        cells["hr10"] = _num(down.get("HR@10"), "{:.4f}")
        cells["ndcg10"] = _num(down.get("NDCG@10"), "{:.4f}")
        cells["epoch_s"] = _num(down.get("epoch_time_s"), "{:.2f}")
        cells["pareto"] = ("yes" if r.get("pareto") else "", 1 if r.get("pareto") else 0)
        out.append(cells)
    return out


def to_markdown(doc: dict) -> str:
    rows = table_rows(doc)
    lines = [
        "# Efficient-attention leaderboard",
        "",
        "Ranked by downstream NDCG@10 among methods that passed the conformance suite "
        "(others below). Time and memory are ratios against SDPA measured in the same run; "
        "exponents k of cost ~ L^k with 95% intervals.",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for cells in rows:
        lines.append("| " + " | ".join(cells[key][0] for key, _ in COLUMNS) + " |")
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
# SVG plots


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _scale(values, lo_px, hi_px, log=False):
    vals = [math.log10(v) if log else v for v in values]
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad

    def f(v):
        x = math.log10(v) if log else v
        return lo_px + (x - lo) / (hi - lo) * (hi_px - lo_px)

    return f


def _ticks(values, fx, fy, *, axis: str, fmt: str, at: float) -> str:
    """Tick labels for the given data values along the x axis (at y pixel ``at``) or the
    y axis (at x pixel ``at``)."""
    out = []
    for v in sorted(set(values)):
        if axis == "x":
            out.append(
                f'<text x="{fx(v):.1f}" y="{at + 14:.1f}" font-size="10" '
                f'text-anchor="middle">{fmt.format(v)}</text>'
            )
        else:
            out.append(
                f'<text x="{at - 4:.1f}" y="{fy(v) + 3:.1f}" font-size="10" '
                f'text-anchor="end">{fmt.format(v)}</text>'
            )
    return "".join(out)


def pareto_svg(doc: dict) -> str:
    pts = [
        (r["method"], r["speedup"], r["downstream"]["NDCG@10"], r.get("pareto"))
        for r in doc["rows"]
        if r.get("speedup") and (r.get("downstream") or {}).get("NDCG@10") is not None
    ]
    w, h, m = 520, 340, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">']
    parts.append("<title>Quality (NDCG@10) against speed-up over SDPA</title>")
    if not pts:
        parts.append(
            f'<text x="{m}" y="{h / 2}">no row has both a speed and a quality score</text>'
        )
        return "".join(parts) + "</svg>"
    fx = _scale([p[1] for p in pts], m, w - 20, log=True)
    fy = _scale([p[2] for p in pts], h - m, 20)
    parts.append(f'<line x1="{m}" y1="{h - m}" x2="{w - 20}" y2="{h - m}" stroke="#444"/>')
    parts.append(f'<line x1="{m}" y1="{h - m}" x2="{m}" y2="20" stroke="#444"/>')
    parts.append(
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">speed-up over SDPA at max L '
        "(log)</text>"
    )
    parts.append(
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
        'text-anchor="middle">NDCG@10</text>'
    )
    xs, ys = [p[1] for p in pts], [p[2] for p in pts]
    parts.append(_ticks([min(xs), max(xs)], fx, fy, axis="x", fmt="{:.3g}", at=h - m))
    parts.append(_ticks([min(ys), max(ys)], fx, fy, axis="y", fmt="{:.3f}", at=m))
    front = sorted((p for p in pts if p[3]), key=lambda p: p[1])
    if len(front) > 1:
        path = " ".join(f"{fx(p[1]):.1f},{fy(p[2]):.1f}" for p in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#c33" stroke-dasharray="4"/>')
    for name, s, q, on_front in pts:
        colour = "#c33" if on_front else "#36c"
        parts.append(
            f'<circle class="point" cx="{fx(s):.1f}" cy="{fy(q):.1f}" r="5" fill="{colour}">'
            f"<title>{_esc(name)}: speed-up {s:.3g}, NDCG@10 {q:.4f}</title></circle>"
        )
        parts.append(
            f'<text x="{fx(s) + 7:.1f}" y="{fy(q) - 6:.1f}" font-size="11">{_esc(name)}</text>'
        )
    return "".join(parts) + "</svg>"


def scaling_svg(doc: dict) -> str:
    series = [
        (r["method"], r["speed"]["lengths"], r["speed"]["time_s"])
        for r in doc["rows"]
        if r.get("speed") and r["speed"].get("time_s")
    ]
    w, h, m = 520, 340, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">']
    parts.append("<title>Forward time against sequence length (log-log)</title>")
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=True) if y]
    if not pts:
        parts.append(f'<text x="{m}" y="{h / 2}">no timings</text>')
        return "".join(parts) + "</svg>"
    fx = _scale([p[0] for p in pts], m, w - 120, log=True)
    fy = _scale([p[1] for p in pts], h - m, 20, log=True)
    parts.append(f'<line x1="{m}" y1="{h - m}" x2="{w - 120}" y2="{h - m}" stroke="#444"/>')
    parts.append(f'<line x1="{m}" y1="{h - m}" x2="{m}" y2="20" stroke="#444"/>')
    parts.append(f'<text x="{(w - 70) / 2}" y="{h - 12}" text-anchor="middle">L (log)</text>')
    parts.append(
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
        'text-anchor="middle">seconds (log)</text>'
    )
    parts.append(_ticks([p[0] for p in pts], fx, fy, axis="x", fmt="{:.0f}", at=h - m))
    ys = [p[1] for p in pts]
    parts.append(_ticks([min(ys), max(ys)], fx, fy, axis="y", fmt="{:.2g}", at=m))
    palette = ("#36c", "#c33", "#393", "#f90", "#909", "#099", "#666", "#c69", "#960", "#06c")
    for i, (name, xs, ys) in enumerate(series):
        colour = palette[i % len(palette)]
        coords = [f"{fx(x):.1f},{fy(y):.1f}" for x, y in zip(xs, ys, strict=True) if y]
        parts.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{colour}"/>')
        parts.append(
            f'<text x="{w - 112}" y="{24 + 14 * i}" font-size="11" fill="{colour}">'
            f"{_esc(name)}</text>"
        )
    return "".join(parts) + "</svg>"


_SCRIPT = """
(function () {
  var table = document.getElementById('board');
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function key(cell) {
    var v = cell.getAttribute('data-sort');
    var n = parseFloat(v);
    return (v === '' || isNaN(n)) ? v : n;
  }
  function sortBy(col, dir) {
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === y) return 0;
      if (x === '') return 1;
      if (y === '') return -1;
      return (x < y ? -1 : 1) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var dir = th.getAttribute('data-dir') === '1' ? -1 : 1;
      th.setAttribute('data-dir', String(dir));
      sortBy(col, dir);
    });
  });
  sortBy(0, 1);
  document.body.setAttribute('data-ready', String(body.rows.length));
})();
"""


def to_html(doc: dict) -> str:
    rows = table_rows(doc)
    head = "".join(f'<th title="click to sort">{_esc(title)}</th>' for _, title in COLUMNS)
    body = []
    for cells, raw in zip(rows, doc["rows"], strict=True):
        tds = "".join(
            f'<td data-sort="{_esc("" if cells[k][1] is None else cells[k][1])}">'
            f"{_esc(cells[k][0])}</td>"
            for k, _ in COLUMNS
        )
        body.append(f'<tr class="row" data-method="{_esc(raw["method"])}">{tds}</tr>')
    machines = "".join(
        f"<li><code>{_esc(h[:8])}</code>: {_esc(fp.get('processor'))}, "
        f"{_esc(fp.get('cpu_count'))} CPUs, torch {_esc(fp.get('torch'))}</li>"
        for h, fp in sorted(doc.get("machines", {}).items())
    )
    checksums = "".join(
        f"<li>{_esc(n)}: <code>{_esc(s)}</code></li>"
        for n, s in sorted(doc.get("data_checksums", {}).items())
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Efficient-attention leaderboard</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
th {{ cursor: pointer; background: #eee; }}
td:nth-child(2), td:nth-child(3), td:nth-child(4), td:nth-child(5) {{ text-align: left; }}
.plots svg {{ margin-right: 2em; border: 1px solid #ddd; }}
</style></head>
<body>
<h1>Efficient-attention leaderboard</h1>
<p>Ranked by downstream NDCG@10 among methods that passed the conformance suite (others
below). Time and memory are ratios against SDPA measured in the same run. Click a column
header to sort.</p>
<table id="board"><thead><tr>{head}</tr></thead><tbody>
{"".join(body)}
</tbody></table>
<div class="plots"><h2>Quality against speed (Pareto front in red)</h2>{pareto_svg(doc)}
<h2>Time against L</h2>{scaling_svg(doc)}</div>
<h2>Machines</h2><ul>{machines}</ul>
<h2>Data checksums (SHA-256)</h2><ul>{checksums}</ul>
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
