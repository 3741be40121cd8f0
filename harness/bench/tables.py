"""Tables, scaling summaries and run-to-run comparison of benchmark rows.

Rows are the dicts of :func:`harness.workloads.attention.run_case` (method, L, mode,
pass, median_s, q1_s, q3_s, runs, peak_bytes, analytic_bytes, status). Ratios are taken
against exact attention measured in the same run: speed-up = baseline time / row time
(> 1: faster than the baseline), memory ratio = row peak / baseline peak. Rows with an
analytic cost also show what it achieved (GFLOP/s, GB/s) and, when the run measured this
machine's peaks, their fraction of the roofline (``harness.measure_peaks``; the bound,
memory or compute, beside it).

Comparison with a previous run (same machine fingerprint and config hash) marks a time
change only when it is beyond run-to-run noise (:data:`COMPARISON_RULE`): the ratio of
medians exceeds ``1 + floor``, with floor ``NOISE_MULTIPLE`` times the larger relative IQR
of the two runs and never below ``MIN_CHANGE`` (20%); and, where both rows keep at least
``MIN_SAMPLES`` timed samples (``samples_s``), a two-sided Mann-Whitney U test rejects
"same distribution" at ``ALPHA``. Rows of older history files without samples are judged
on the threshold alone. Within-run spread of 3-5 calls underestimates the spread between
two runs (load and frequency drift shift every call of a run together), so non-overlapping
IQRs alone flag a large share of identical reruns. Cases with fewer than 3 timed calls in
either run have no measured noise and are never marked. Peak memory (memray) is nearly
deterministic; a change beyond ``MEMORY_TOLERANCE`` is marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tabulate import tabulate

from harness.scaling import crossover_length, exponent_problem, fit_exponent, format_exponent

__all__ = [
    "ALPHA",
    "COMPARISON_RULE",
    "MEMORY_TOLERANCE",
    "MIN_CHANGE",
    "MIN_SAMPLES",
    "NOISE_MULTIPLE",
    "compare_runs",
    "render_comparison",
    "render_memray",
    "render_peaks",
    "render_summary",
    "render_tables",
    "row_key",
    "summarise",
]

# run-to-run comparison (see the module docstring)
MIN_CHANGE = 0.20
NOISE_MULTIPLE = 3.0
MIN_SAMPLES = 5
ALPHA = 0.01
COMPARISON_RULE = (
    f"a time change is marked when the medians differ by more than "
    f"max({MIN_CHANGE:.0%}, {NOISE_MULTIPLE:g}x the larger relative IQR) and, where both "
    f"runs kept >= {MIN_SAMPLES} samples, a Mann-Whitney U test gives p < {ALPHA:g}"
)
MEMORY_TOLERANCE = 0.10
# memray report: the analytic bounds are linear with generous constants, so a peak up to
# this many times the bound at one length is the bound's constant, not a finding ...
MEMRAY_RATIO_LIMIT = 4.0
# ... and peak ~ L^k between two lengths with k above this is super-linear growth
MEMRAY_LINEAR_K = 1.15


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


def _fmt_rate(x):
    """A rate with three significant digits and no exponent (GFLOP/s, GB/s)."""
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{max(0, 2 - math.floor(math.log10(x)))}f}" if x > 0 else "0"


def _fmt_roofline(row: dict) -> str:
    fraction = row.get("roofline_fraction")
    if fraction is None:
        return "-"
    return f"{100 * fraction:.1f}%" + (f", {row['bound']}" if row.get("bound") else "")


def render_peaks(peaks: dict, error: str | None = None) -> str:
    """One line per measured dtype: this machine's peaks (``harness.measure_peaks``), or
    why they are missing (the rows then have no roofline fraction)."""
    if error:
        return f"peaks: not measured ({error}); rows have no roofline fraction"
    lines = []
    for dtype, p in peaks.items():
        lines.append(
            f"peaks ({dtype}): {p['gflops']:,.1f} GFLOP/s, {p['gbps']:,.1f} GB/s, ridge "
            f"{p['ridge_flops_per_byte']:.1f} FLOP/byte ({p['method']}; {p['seconds']:.1f} s)"
        )
    return "\n".join(lines) or "peaks: none measured"


def table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table (header, dashes, one line per row), cells as given."""
    return tabulate(lines, headers=header, tablefmt="simple", disable_numparse=True)


def render_tables(
    rows: Sequence[dict],
    *,
    family: str = "attention",
    baseline: str = "sdpa",
    oracle: str = "oracle",
    changes: dict | None = None,
) -> str:
    """One table per (mode, pass) of the family: median, IQR, peak memory, analytic
    bytes, speed-up and memory ratio against the baseline and the oracle, status; where
    the rows have an analytic cost also achieved GFLOP/s, GB/s and the fraction of the
    roofline (with the bound)."""
    by_key = {row_key(r): r for r in rows}
    changes = changes or {}
    blocks = []
    for mode, pass_ in _groups(rows):
        mine = [
            r for r in rows if (r.get("mode", "causal"), r.get("pass", "forward")) == (mode, pass_)
        ]
        roof = any(r.get("achieved_gflops") is not None for r in mine)
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
            *(("GFLOP/s", "GB/s", "% roofline") if roof else ()),
            "vs previous",
            "status",
        )
        lines = []
        for r in mine:
            base = by_key.get(row_key({**r, "method": baseline}), {})
            orc = by_key.get(row_key({**r, "method": oracle}), {})
            t, m = r.get("median_s"), r.get("peak_bytes")
            iqr = "-" if t is None else f"{_fmt_time(r['q1_s'])}..{_fmt_time(r['q3_s'])}"
            rates = (
                _fmt_rate(r.get("achieved_gflops")),
                _fmt_rate(r.get("achieved_gbps")),
                _fmt_roofline(r),
            )
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
                    *(rates if roof else ()),
                    changes.get(row_key(r), {}).get("text", "-"),
                    r["status"],
                )
            )
        blocks.append(f"{family} — {mode}, {pass_}\n{table(header, lines)}")
    return "\n\n".join(blocks)


def summarise(
    rows: Sequence[dict],
    *,
    baseline: str = "sdpa",
    oracle: str = "oracle",
    expected: dict | None = None,
) -> dict:
    """Per "mode/pass" and method: fitted exponents of time and peak memory against L
    (value ~ L^k, 95% interval; the interval is None with two points), the expected
    exponents when known, the crossover length against the baseline and the oracle, and
    ``exponent_notes``: per fit, why it is not shown (too few lengths or too narrow a
    span, :func:`harness.scaling.exponent_problem`), or None."""
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
                "exponent_notes": {
                    "time": exponent_problem(lengths, ts),
                    "memory": exponent_problem(lengths, ms),
                },
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


def _fmt_exp(fit, note: str | None = None) -> str:
    """The fit with its interval, or "not enough points" when ``note`` says it should
    not be shown."""
    if fit is not None and note:
        return "not enough points"
    return format_exponent(fit)


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
    """Fitted exponents with intervals and crossover lengths, one block per mode/pass.
    A fit over too few lengths or too narrow a span (``exponent_notes``) is shown as "not
    enough points", with the rule and the lengths measured below the table."""
    out = []
    for group, methods in summary.items():
        out.append(f"\nscaling, {group} (value ~ L^k, 95% interval; crossover vs exact):")
        header = ("method", "time k", "memory k", "expected", f"vs {baseline}", f"vs {oracle}")
        lines = []
        notes: dict[str, list[str]] = {}
        for m, e in methods.items():
            exp = e.get("expected")
            why = e.get("exponent_notes") or {}
            for kind in ("time", "memory"):
                if why.get(kind) and e.get(f"{kind}_exponent") is not None:
                    names = notes.setdefault(why[kind], [])
                    names += [] if m in names else [m]
            lines.append(
                (
                    m,
                    _fmt_exp(e["time_exponent"], why.get("time")),
                    _fmt_exp(e["memory_exponent"], why.get("memory")),
                    "-" if not exp else f"t L^{exp[0]:g}, m L^{exp[1]:g}",
                    _fmt_cross(e["crossover_vs_baseline"], baseline)
                    if "crossover_vs_baseline" in e
                    else "(baseline)",
                    _fmt_cross(e["crossover_vs_oracle"], oracle)
                    if "crossover_vs_oracle" in e
                    else "(oracle)",
                )
            )
        out.append(table(header, lines))
        for why, names in notes.items():
            who = "every method" if len(names) == len(methods) else ", ".join(names)
            out.append(f"  k {why} for {who}; measure more lengths (--full or --lengths)")
    return "\n".join(out)


def _rel_iqr(row: dict) -> float | None:
    if row.get("runs", 0) < 3 or not row.get("median_s"):
        return None
    return (row["q3_s"] - row["q1_s"]) / row["median_s"]


def _samples(row: dict) -> list[float] | None:
    samples = row.get("samples_s")
    if not isinstance(samples, list) or len(samples) < MIN_SAMPLES:
        return None
    return [float(x) for x in samples]


def time_change(current: dict, previous: dict) -> tuple[str, float | None]:
    """("slower" | "faster" | "", p-value or None) for one case measured in two runs, by
    :data:`COMPARISON_RULE`; the p-value is None when the threshold alone decided (too
    few samples kept, e.g. a history file written before rows kept ``samples_s``)."""
    ratio = _ratio(current.get("median_s"), previous.get("median_s"))
    noise = [_rel_iqr(current), _rel_iqr(previous)]
    if ratio is None or ratio <= 0 or None in noise:
        return "", None
    floor = max(MIN_CHANGE, NOISE_MULTIPLE * max(noise))
    if ratio > 1 + floor:
        flag = "slower"
    elif ratio < 1 / (1 + floor):
        flag = "faster"
    else:
        return "", None
    new, old = _samples(current), _samples(previous)
    if new is None or old is None:
        return flag, None
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(new, old, alternative="two-sided").pvalue)
    return (flag if p < ALPHA else ""), p


def compare_runs(current: Sequence[dict], previous: Sequence[dict]) -> dict:
    """Per case key present and "ok" in both runs: {"ratio", "mem_ratio", "flag",
    "memory_flag", "p_value", "text"}; flag is "slower", "faster" or "" (within noise, by
    :data:`COMPARISON_RULE`); p_value is the Mann-Whitney U test's when it was run."""
    before = {row_key(r): r for r in previous if r.get("status") == "ok"}
    out = {}
    for r in current:
        key = row_key(r)
        old = before.get(key)
        if r.get("status") != "ok" or old is None:
            continue
        ratio = _ratio(r.get("median_s"), old.get("median_s"))
        mem_ratio = _ratio(r.get("peak_bytes"), old.get("peak_bytes"))
        flag, p_value = time_change(r, old)
        mem_flag = ""
        if mem_ratio is not None and abs(mem_ratio - 1) > MEMORY_TOLERANCE:
            mem_flag = "more memory" if mem_ratio > 1 else "less memory"
        text = "-" if ratio is None else f"{ratio:.2f}x"
        if flag:
            text += f" {flag.upper()}"
            if p_value is not None:
                text += f" (p={p_value:.3f})"
        if mem_flag:
            text += f"; mem {mem_ratio:.2f}x {mem_flag.upper()}"
        out[key] = {
            "ratio": ratio,
            "mem_ratio": mem_ratio,
            "flag": flag,
            "memory_flag": mem_flag,
            "p_value": p_value,
            "text": text,
        }
    return out


def render_comparison(changes: dict, previous_created: str | None, *, limit: int = 20) -> str:
    """One paragraph: what changed beyond noise since the previous run (the ``limit``
    largest changes), under a header that states the rule (:data:`COMPARISON_RULE`)."""
    if previous_created is None:
        return "\nno previous run with this machine fingerprint and config hash to compare with"
    marked = {k: c for k, c in changes.items() if c["flag"] or c["memory_flag"]}
    head = (
        f"\ncompared with the previous run on this machine ({previous_created}): "
        f"{len(changes)} cases, {len(marked)} changed beyond their noise\n"
        f"  ({COMPARISON_RULE}; peak memory: beyond {MEMORY_TOLERANCE:.0%})"
    )
    shown = sorted(marked.items(), key=lambda kc: -abs(math.log(kc[1]["ratio"] or 1.0)))
    lines = [f"  {k}: {c['text']}" for k, c in shown[:limit]]
    if len(shown) > limit:
        lines.append(f"  ... and {len(shown) - limit} more (see the results JSON)")
    return "\n".join([head, *lines])


def _memray_growth(row: dict, others: Sequence[dict]) -> str | None:
    """Peak growth of ``row``'s method against its nearest other measured length."""
    mine = [
        o
        for o in others
        if o.get("method") == row["method"]
        and o.get("status") == "ok"
        and o.get("L") not in (None, row["L"])
        and o.get("peak_bytes")
    ]
    if not mine:
        return None
    other = min(mine, key=lambda o: abs(math.log(o["L"] / row["L"])))
    (l0, p0), (l1, p1) = sorted([(other["L"], other["peak_bytes"]), (row["L"], row["peak_bytes"])])
    k = math.log(p1 / p0) / math.log(l1 / l0)
    growth = f"peak x{p1 / p0:.2f} for L x{l1 / l0:g} ({l0:,} -> {l1:,}): ~L^{k:.2f}"
    if k > MEMRAY_LINEAR_K:
        return f"{growth}, SUPER-LINEAR memory (expected only of quadratic methods: oracle)"
    return f"{growth}, linear"


def memray_reading(row: dict, others: Sequence[dict] = ()) -> str:
    """One line saying what a memray row's peak/analytic ratio means. With the same
    method measured at another length (in ``others``: this run or an earlier one) the
    growth of the peak decides; otherwise only the ratio at this length."""
    if row.get("status") != "ok":
        return row.get("status", "-")
    ratio = row["peak_bytes"] / row["analytic_bytes"]
    growth = _memray_growth(row, others)
    if growth and ratio > MEMRAY_RATIO_LIMIT and growth.endswith(", linear"):
        return f"{growth}; the bound's constant is too small"
    if growth:
        return growth
    if ratio <= MEMRAY_RATIO_LIMIT:
        return (
            f"within the linear bound's constant (<= {MEMRAY_RATIO_LIMIT:g}x); "
            "growth unknown: rerun with --lengths L/4"
        )
    return (
        f"above {MEMRAY_RATIO_LIMIT:g}x the linear bound: super-linear memory (or a wrong "
        "bound); compare two lengths"
    )


def render_memray(rows: Sequence[dict], earlier: Sequence[dict] = ()) -> str:
    """The ``python -m harness memray`` table: peak and analytic MiB, their ratio and a
    reading per row (:func:`memray_reading` against this run's other rows and ``earlier``
    rows, e.g. the previous run's on the same machine)."""
    lines = []
    for r in rows:
        ok = r.get("status") == "ok"
        lines.append(
            (
                r["method"],
                f"{r['L']:,}" if r.get("L") else "-",
                _fmt_bytes(r.get("peak_bytes")) if ok else "-",
                _fmt_bytes(r.get("analytic_bytes")) if ok else "-",
                f"{r['peak_bytes'] / r['analytic_bytes']:.2f}" if ok else "-",
                memray_reading(r, [*rows, *earlier]),
            )
        )
    header = ("method", "L", "peak", "analytic", "peak/analytic", "reading")
    return table(header, lines)
