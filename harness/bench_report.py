"""Tables, scaling summaries and run-to-run comparison of benchmark rows.

Rows are the dicts of :func:`harness.workloads.attention.run_case` (method, L, mode,
pass, median_s, q1_s, q3_s, runs, peak_bytes, analytic_bytes, status). Ratios are taken
against exact attention measured in the same run: speed-up = baseline time / row time
(> 1: faster than the baseline), memory ratio = row peak / baseline peak.

Comparison with a previous run (same machine fingerprint and config hash) marks a time
change only when it is beyond that benchmark's noise: the two inter-quartile ranges do
not overlap AND the ratio of medians exceeds ``1 + floor``, with floor the larger relative
IQR of the two runs and never below ``MIN_FLOOR``. Cases with fewer than 3 timed calls in
either run have no measured noise and are never marked. Peak memory (memray) is nearly
deterministic; a change beyond ``MEMORY_TOLERANCE`` is marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.scaling import crossover_length, fit_exponent

__all__ = [
    "MEMORY_TOLERANCE",
    "MIN_FLOOR",
    "compare_runs",
    "render_comparison",
    "render_summary",
    "render_tables",
    "row_key",
    "summarise",
]

MIN_FLOOR = 0.05
MEMORY_TOLERANCE = 0.10


def row_key(row: dict) -> str:
    return f"{row['method']}|{row.get('mode', 'causal')}|{row.get('pass', 'forward')}|L={row['L']}"


def _groups(rows: Sequence[dict]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for r in rows:
        g = (r.get("mode", "causal"), r.get("pass", "forward"))
        if g not in seen:
            seen.append(g)
    return seen


def _methods(rows: Sequence[dict]) -> list[str]:
    out: list[str] = []
    for r in rows:
        if r["method"] not in out:
            out.append(r["method"])
    return out


def _fmt_time(s):
    return "-" if s is None else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


def _fmt_bytes(b):
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def _ratio(num, den):
    return None if num is None or den is None or den == 0 else num / den


def _fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def _table(header: Sequence[str], lines: list[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in lines]
    return "\n".join(out)


def render_tables(
    rows: Sequence[dict],
    *,
    family: str = "attention",
    baseline: str = "sdpa",
    oracle: str = "oracle",
    changes: dict | None = None,
) -> str:
    """One table per (mode, pass) of the family: median, IQR, peak memory, analytic
    bytes, speed-up and memory ratio against the baseline and the oracle, status."""
    by_key = {row_key(r): r for r in rows}
    changes = changes or {}
    blocks = []
    for mode, pass_ in _groups(rows):
        header = (
            "method",
            "L",
            "median",
            "IQR",
            "peak mem",
            "analytic",
            f"speed-up vs {baseline}",
            f"mem vs {baseline}",
            f"speed-up vs {oracle}",
            f"mem vs {oracle}",
            "vs previous",
            "status",
        )
        lines = []
        for r in rows:
            if (r.get("mode", "causal"), r.get("pass", "forward")) != (mode, pass_):
                continue
            base = by_key.get(row_key({**r, "method": baseline}), {})
            orc = by_key.get(row_key({**r, "method": oracle}), {})
            t, m = r.get("median_s"), r.get("peak_bytes")
            iqr = "-" if t is None else f"{_fmt_time(r['q1_s'])}..{_fmt_time(r['q3_s'])}"
            lines.append(
                (
                    r["method"],
                    str(r["L"]),
                    _fmt_time(t),
                    iqr,
                    _fmt_bytes(m),
                    _fmt_bytes(r.get("analytic_bytes")),
                    _fmt_ratio(_ratio(base.get("median_s"), t)),
                    _fmt_ratio(_ratio(m, base.get("peak_bytes"))),
                    _fmt_ratio(_ratio(orc.get("median_s"), t)),
                    _fmt_ratio(_ratio(m, orc.get("peak_bytes"))),
                    changes.get(row_key(r), {}).get("text", "-"),
                    r["status"],
                )
            )
        blocks.append(f"{family} — {mode}, {pass_}\n{_table(header, lines)}")
    return "\n\n".join(blocks)


def summarise(
    rows: Sequence[dict],
    *,
    baseline: str = "sdpa",
    oracle: str = "oracle",
    expected: dict | None = None,
) -> dict:
    """Per "mode/pass" and method: fitted exponents of time and peak memory against L
    (value ~ L^k, 95% interval), the expected exponents when known, and the crossover
    length against the baseline and the oracle."""
    by_key = {row_key(r): r for r in rows}
    expected = expected or {}
    out: dict = {}
    for mode, pass_ in _groups(rows):
        group = {}
        for m in _methods(rows):
            mine = [
                r
                for r in rows
                if r["method"] == m and (r.get("mode"), r.get("pass")) == (mode, pass_)
            ]
            if not mine:
                continue
            lengths = sorted(r["L"] for r in mine)
            own = {r["L"]: r for r in mine}
            ts = [own[n].get("median_s") for n in lengths]
            ms = [own[n].get("peak_bytes") for n in lengths]
            entry = {
                "lengths": lengths,
                "time_exponent": fit_exponent(lengths, ts),
                "memory_exponent": fit_exponent(lengths, ms),
            }
            if m in expected:
                entry["expected"] = expected[m]
            for other, name in (
                (baseline, "crossover_vs_baseline"),
                (oracle, "crossover_vs_oracle"),
            ):
                if m == other:
                    continue
                ref = [
                    by_key.get(row_key({**own[n], "method": other}), {}).get("median_s")
                    for n in lengths
                ]
                entry[name] = crossover_length(lengths, ts, ref)
            group[m] = entry
        out[f"{mode}/{pass_}"] = group
    return out


def _fmt_exp(e):
    return "-" if e is None else f"{e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}]"


def _fmt_cross(c, name):
    kind, where = c
    if kind == "at":
        return f"beats {name} from L ~ {where:,.0f}"
    if kind == "below":
        return f"beats {name} at every L (from {where:,})"
    if kind == "above":
        return f"slower than {name} up to L = {where:,}"
    return f"no data vs {name}"


def render_summary(summary: dict, *, baseline: str = "sdpa", oracle: str = "oracle") -> str:
    """Fitted exponents with intervals and crossover lengths, one block per mode/pass."""
    out = []
    for group, methods in summary.items():
        out.append(f"\nscaling, {group} (value ~ L^k, 95% interval; crossover vs exact):")
        header = ("method", "time k", "memory k", "expected", f"vs {baseline}", f"vs {oracle}")
        lines = []
        for m, e in methods.items():
            exp = e.get("expected")
            lines.append(
                (
                    m,
                    _fmt_exp(e["time_exponent"]),
                    _fmt_exp(e["memory_exponent"]),
                    "-" if not exp else f"t L^{exp[0]:g}, m L^{exp[1]:g}",
                    _fmt_cross(e["crossover_vs_baseline"], baseline)
                    if "crossover_vs_baseline" in e
                    else "(baseline)",
                    _fmt_cross(e["crossover_vs_oracle"], oracle)
                    if "crossover_vs_oracle" in e
                    else "(oracle)",
                )
            )
        out.append(_table(header, lines))
    return "\n".join(out)


def _rel_iqr(row: dict) -> float | None:
    if row.get("runs", 0) < 3 or not row.get("median_s"):
        return None
    return (row["q3_s"] - row["q1_s"]) / row["median_s"]


def compare_runs(current: Sequence[dict], previous: Sequence[dict]) -> dict:
    """Per case key present and "ok" in both runs: {"ratio", "mem_ratio", "flag",
    "text"}; flag is "slower", "faster" or "" (within noise; see the module docstring)."""
    before = {row_key(r): r for r in previous if r.get("status") == "ok"}
    out = {}
    for r in current:
        key = row_key(r)
        old = before.get(key)
        if r.get("status") != "ok" or old is None:
            continue
        ratio = _ratio(r.get("median_s"), old.get("median_s"))
        mem_ratio = _ratio(r.get("peak_bytes"), old.get("peak_bytes"))
        flag = ""
        noise = [_rel_iqr(r), _rel_iqr(old)]
        if ratio is not None and None not in noise:
            floor = max(MIN_FLOOR, *noise)
            if r["q1_s"] > old["q3_s"] and ratio > 1 + floor:
                flag = "slower"
            elif r["q3_s"] < old["q1_s"] and ratio < 1 / (1 + floor):
                flag = "faster"
        mem_flag = ""
        if mem_ratio is not None and abs(mem_ratio - 1) > MEMORY_TOLERANCE:
            mem_flag = "more memory" if mem_ratio > 1 else "less memory"
        text = "-" if ratio is None else f"{ratio:.2f}x"
        if flag:
            text += f" {flag.upper()}"
        if mem_flag:
            text += f"; mem {mem_ratio:.2f}x {mem_flag.upper()}"
        out[key] = {
            "ratio": ratio,
            "mem_ratio": mem_ratio,
            "flag": flag,
            "memory_flag": mem_flag,
            "text": text,
        }
    return out


def render_comparison(changes: dict, previous_created: str | None, *, limit: int = 20) -> str:
    """One paragraph: what changed beyond noise since the previous run (the ``limit``
    largest changes)."""
    if previous_created is None:
        return "\nno previous run with this machine fingerprint and config hash to compare with"
    marked = {k: c for k, c in changes.items() if c["flag"] or c["memory_flag"]}
    head = (
        f"\ncompared with the previous run on this machine ({previous_created}): "
        f"{len(changes)} cases, {len(marked)} changed beyond their noise"
    )
    shown = sorted(marked.items(), key=lambda kc: -abs(math.log(kc[1]["ratio"] or 1.0)))
    lines = [f"  {k}: {c['text']}" for k, c in shown[:limit]]
    if len(shown) > limit:
        lines.append(f"  ... and {len(shown) - limit} more (see the results JSON)")
    return "\n".join([head, *lines])
