"""Printed tables (tabulate), the registry table's width, plots (fixed styles per method,
memory in MiB, every row shown or named) and the memray report's reading of its ratios."""

from __future__ import annotations

import pytest

from harness.bench import graph_family as bench_graph
from harness.bench import tables as bench_report
from impls import registry


def _row(method="m", L=1024, t=1.0, peak=3 * 2**20, status="ok", **extra):
    return {"method": method, "L": L, "mode": "causal", "pass": "forward", "median_s": t,
            "q1_s": 0.9 * t, "q3_s": 1.1 * t, "runs": 3, "peak_bytes": peak,
            "analytic_bytes": peak, "status": status, **extra}  # fmt: skip


def test_tables_have_a_header_a_rule_and_one_line_per_row():
    text = bench_report.table(("method", "L"), [("lisa W=16", "1024"), ("sdpa", "65536")])
    head, rule, *lines = text.splitlines()
    assert head.split() == ["method", "L"] and set(rule.replace(" ", "")) == {"-"}
    assert [line.split() for line in lines] == [["lisa", "W=16", "1024"], ["sdpa", "65536"]]
    # columns line up: every cell starts where its header starts
    at = head.index("L")
    assert all(line[at:].split()[0] in ("1024", "65536") for line in lines)


def test_result_tables_keep_their_content():
    rows = [_row("sdpa", t=2.0), _row("fast", t=1.0)]
    table = bench_report.render_tables(rows)
    assert table.splitlines()[0] == "attention — causal, forward"
    fast = next(line for line in table.splitlines() if line.startswith("fast"))
    assert "1.00 s" in fast and "3.0 MiB" in fast and "2.00x" in fast and fast.endswith("ok")


def test_default_methods_table_fits_in_100_columns_and_verbose_has_every_column():
    specs = registry.all_methods()
    short = registry.format_table(specs)
    assert max(len(line) for line in short.splitlines()) <= 100, short
    names = [s.name for s in specs]
    assert all(any(line.startswith(n + " ") for line in short.splitlines()) for n in names)
    wide = registry.format_table(specs, verbose=True)
    header = wide.splitlines()[0].split()
    assert header == list(registry.table_rows(specs)[0])  # every column, in order
    for spec in specs:
        ok, reason = registry.availability(spec)
        if not ok:  # the reason is printed in both: below the short table, in the wide one
            assert reason.split(":")[0] in short and f"no: {reason}" in wide
    assert "oracle identity" in wide and "oracle identity" not in short


def test_methods_command_prints_the_short_table_and_the_wide_one(capsys):
    from harness.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert main(["methods", "-v"]) == 0
    wide = capsys.readouterr().out
    assert "hyperparameters" in wide and max(len(line) for line in wide.splitlines()) > 100


def test_every_method_keeps_one_colour_and_marker():
    from harness.bench.plots import method_style

    known = ["oracle", "sdpa", "xformers_mea", "lisa W=16", "lisa W=128", "lisa_kmeans",
             "linear", "performer", "decay_linear", "fla_linear", "fla_decay_linear",
             "local_window", "lsh", "linformer"]  # fmt: skip
    styles = [method_style(m) for m in known]
    assert len(set(styles)) == len(known)  # distinguishable
    # the marker is the family: both LISA rows share one, the exact methods another
    assert method_style("lisa W=16")[1] == method_style("lisa W=128")[1] != method_style("sdpa")[1]
    assert method_style("oracle")[1] == method_style("sdpa")[1]
    # graph rows: colour per sampler, marker per estimator
    a, b = method_style("ladies+importance"), method_style("ladies+self-normalized")
    assert a[0] == b[0] and a[1] != b[1]
    assert method_style("uniform+importance")[0] != a[0]
    # an unknown (plugin) method: the same style whenever asked, whatever came before
    assert method_style("my_plugin_attn") == method_style("my_plugin_attn")


def test_plots_use_fixed_styles_mib_and_name_what_they_leave_out(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from harness.bench import plots

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figures to inspect them
    rows = [_row("lsh", L=n, peak=n * 2**10) for n in (1024, 4096)]
    rows += [_row("sdpa", L=n, peak=n * 2**10) for n in (1024, 4096)]
    rows += [_row("lsh", L=n, peak=n * 2**10, mode="bidirectional") for n in (1024, 4096)]
    rows.append(_row("oracle", L=4096, peak=None, status="skipped (OOM)", mode="bidirectional"))
    paths = plots.plot_rows(rows, tmp_path)
    assert [p.name for p in paths] == [
        "attention-causal-forward.png",
        "attention-bidirectional-forward.png",
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)

    def lines(fig, axis):
        ax = fig.axes[axis]
        return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}

    causal, bidir = figures
    for fig in figures:
        assert fig.axes[1].get_ylabel() == "peak memory (MiB)"
        mem = lines(fig, 1)["lsh"]
        assert list(mem.get_ydata()) == [1024 * 2**10 / 2**20, 4096 * 2**10 / 2**20]
    # lsh is drawn alone in one figure and after sdpa in the other: the same style in both
    a, b = lines(causal, 1)["lsh"], lines(bidir, 1)["lsh"]
    assert (a.get_color(), a.get_marker()) == (b.get_color(), b.get_marker())
    assert (a.get_color(), a.get_marker()) == plots.method_style("lsh")
    notes = [t.get_text() for t in bidir.texts]
    assert any("oracle @ L=4096: skipped (OOM)" in t for t in notes), notes
    assert not any("not plotted" in t.get_text() for t in causal.texts)
    assert plots.left_out(rows) == ["oracle @ L=4096: skipped (OOM)"]


def test_graph_plots_cover_every_row():
    """One figure per estimator, each with exhaustive aggregation as the reference: every
    sampler x estimator row is drawn (before, 7 of 19)."""
    from harness.workloads import graph_sampling as workload

    configs = workload.configs()
    rows = [
        _row(c.label, L=n, estimator=c.estimator, mode="graph", **{"pass": "step"})
        for c in configs
        for n in (2_000, 4_000)
    ]
    shown = bench_graph.plot_groups(rows)
    groups = {r["pass"] for r in shown}
    estimators = {c.estimator for c in configs if c.label != workload.BASELINE}
    assert groups == {f"step, {e} estimator" for e in estimators}
    assert {r["method"] for r in shown} == {c.label for c in configs}
    samplers = {c.sampler for c in configs if c.label != workload.BASELINE}
    for g in groups:  # the reference and one line per sampler
        methods = [r["method"] for r in shown if r["pass"] == g and r["L"] == 2_000]
        assert methods[0] == workload.BASELINE and len(methods) == 1 + len(samplers)


def test_graph_exponents_over_two_sizes_are_not_shown():
    rows = [_row("a", L=n, t=n * 1e-6, edges=n) for n in (10_000, 100_000)]
    summary = bench_graph.summarise(rows, [10_000, 100_000])
    text = bench_graph.render_exponents(summary)
    assert "not enough points" in text and "2 sizes spanning 10x" in text
    assert summary["a"]["time_exponent"][1:] == (None, None)


def _memray_row(method, L, peak, analytic):
    return {"method": method, "L": L, "peak_bytes": peak, "analytic_bytes": analytic,
            "status": "ok"}  # fmt: skip


def test_memray_reading_uses_growth_between_two_lengths():
    # measured on 2 cores (working tree of this change): bytes per token at 16,384 / 65,536
    lisa = [_memray_row("lisa W=16", 16_384, 23_077_860, 11_534_336),
            _memray_row("lisa W=16", 65_536, 92_283_876, 36_700_160)]  # fmt: skip
    lsh = [_memray_row("lsh", 16_384, 269_338_666, 370_147_328),
           _memray_row("lsh", 65_536, 2_184_194_344, 1_477_443_584)]  # fmt: skip
    assert bench_report.memray_reading(lisa[1], lisa).endswith("~L^1.00, linear")
    # a ratio of 1.48 alone looks harmless; growth x8.1 for x4 L is not
    assert "SUPER-LINEAR" in bench_report.memray_reading(lsh[1], lsh)
    one = bench_report.memray_reading(lsh[1])
    assert "within the linear bound's constant" in one and "--lengths" in one
    big = _memray_row("x", 4_096, 5 * 2**20, 2**20)
    assert "super-linear" in bench_report.memray_reading(big)
    table = bench_report.render_memray([lisa[1], lsh[1], {"method": "o", "status": "oom"}], lsh)
    assert "2.51" in table and "SUPER-LINEAR" in table and "oom" in table
