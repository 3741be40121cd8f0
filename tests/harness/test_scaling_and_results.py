"""Scaling fits, crossover detection, atomic result files and the bench command."""

from __future__ import annotations

import json
import math

import pytest

from harness.cli import main
from harness.results import config_hash, write_json_atomic
from harness.scaling import (
    crossover_length,
    exponent_is_reportable,
    exponent_problem,
    fit_exponent,
    format_exponent,
)


def test_fit_recovers_a_known_exponent_and_brackets_it():
    sizes = [2**k for k in range(8, 16)]
    noise = [1.05, 0.97, 1.02, 0.99, 1.04, 0.96, 1.01, 1.0]
    values = [3e-9 * s**1.7 * e for s, e in zip(sizes, noise, strict=True)]
    slope, low, high = fit_exponent(sizes, values)
    assert low < 1.7 < high
    assert abs(slope - 1.7) < 0.05
    exact = fit_exponent(sizes, [s**2 for s in sizes])
    assert exact[0] == pytest.approx(2.0) and exact[2] - exact[1] == pytest.approx(0, abs=1e-9)


def test_fit_ignores_missing_points_and_needs_two():
    assert fit_exponent([1, 2, 4], [None, 5.0, None]) is None
    assert fit_exponent([1, 2, 4], [1.0, None, 16.0])[0] == pytest.approx(2.0)


def test_two_points_have_no_interval():
    """A line through two points has no error estimate: no interval, not a zero-width one;
    printed as such and null in JSON."""
    fit = fit_exponent([16_384, 65_536], [1.0, 0.945])
    assert fit[0] == pytest.approx(math.log(0.945) / math.log(4))
    assert fit[1:] == (None, None)
    assert format_exponent(fit) == "-0.04 (2 points, no interval)"
    assert json.loads(json.dumps(fit))[1:] == [None, None]
    assert format_exponent(fit_exponent([1, 2, 4], [1, 2, 4])) == "1.00 [1.00, 1.00]"
    assert format_exponent(None) == "-"


def test_fit_matches_a_hand_computed_t_interval():
    """x = log size = 0, 1, 2 and log value = 0, 1.5, 2: slope 1, residual sum of squares
    1/6, standard error sqrt(1/12), t(0.975, 1 df) = 12.7062 (tables)."""
    sizes = [1.0, math.e, math.e**2]
    slope, low, high = fit_exponent(sizes, [1.0, math.exp(1.5), math.exp(2.0)])
    half = 12.7062047 * math.sqrt(1 / 12)
    assert slope == pytest.approx(1.0)
    assert (low, high) == (pytest.approx(1 - half, rel=1e-7), pytest.approx(1 + half, rel=1e-7))
    # 8 points (6 df): t = 2.4469; 22 points (20 df): t = 2.0860, no longer the normal 1.96
    for n, t in ((8, 2.446912), (22, 2.085963)):
        xs = list(range(n))
        ys = [2 * x + (0.1 if x % 2 else -0.1) for x in xs]
        slope, low, high = fit_exponent([math.exp(x) for x in xs], [math.exp(y) for y in ys])
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        rss = sum((y - my - b * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
        se = math.sqrt(rss / (n - 2) / sxx)
        assert slope == pytest.approx(b, rel=1e-9)
        assert (high - low) / 2 == pytest.approx(t * se, rel=1e-5)


def test_exponents_need_four_sizes_spanning_sixteen_times():
    assert exponent_is_reportable([256, 1_024, 4_096, 16_384])
    assert exponent_is_reportable([1_024, 4_096, 16_384, 65_536], [1.0, 2.0, 3.0, 4.0])
    assert not exponent_is_reportable([256, 1_024, 4_096])  # 3 sizes
    assert not exponent_is_reportable([1_024, 2_048, 4_096, 8_192])  # 8x span
    # a size without a usable value does not count
    assert not exponent_is_reportable([256, 1_024, 4_096, 16_384], [None, 1.0, 2.0, 3.0])
    assert exponent_is_reportable([1, 2, 3], min_points=3, min_span=3)
    assert "2 sizes spanning 4x" in exponent_problem([16_384, 65_536])
    assert exponent_problem([256, 1_024, 4_096, 16_384]) is None


def test_summary_shows_not_enough_points_instead_of_a_fit():
    from harness.bench import tables as bench_report

    def row(method, n, t):
        return {"method": method, "L": n, "mode": "causal", "pass": "forward", "median_s": t,
                "q1_s": t, "q3_s": t, "runs": 3, "peak_bytes": 100 * n, "status": "ok"}  # fmt: skip

    few = [row(m, n, 1e-6 * n**k) for m, k in (("sdpa", 2), ("fast", 1)) for n in (256, 1_024)]
    summary = bench_report.summarise(few)
    entry = summary["causal/forward"]["fast"]
    assert entry["time_exponent"][0] == pytest.approx(1.0) and entry["time_exponent"][1] is None
    assert "not enough points" in entry["exponent_notes"]["time"]
    text = bench_report.render_summary(summary)
    assert "not enough points" in text and "1.00" not in text and "[" not in text
    assert "every method" in text
    many = [row("fast", n, 1e-6 * n) for n in (256, 1_024, 4_096, 16_384)]
    text = bench_report.render_summary(bench_report.summarise(many))
    assert "1.00 [1.00, 1.00]" in text and "not enough points" not in text


def test_crossover_is_interpolated_between_grid_points():
    sizes = [1000, 2000, 4000, 8000]
    base = [s**2 * 1e-9 for s in sizes]
    fast = [s * 2.5e-6 for s in sizes]  # equal at s = 2500
    kind, where = crossover_length(sizes, fast, base)
    assert kind == "at" and where == pytest.approx(2500, rel=1e-9)
    assert crossover_length(sizes, [b / 2 for b in base], base) == ("below", 1000)
    assert crossover_length(sizes, [b * 2 for b in base], base) == ("above", 8000)
    assert crossover_length(sizes, [None] * 4, base) == ("n/a", None)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"b": [1, 2]}  # the old result survives
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_bench_command_runs_a_tiny_grid_and_writes_results(tmp_path, capsys):
    from harness.workloads.attention import variants

    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--lengths",
            "64",
            "128",
            "--modes",
            "bidirectional",
            "--passes",
            "forward",
            "--repeats",
            "1",
            "--output",
            str(out),
            "--history-dir",
            str(tmp_path / "history"),
            "--no-plots",
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lisa W=16" in printed and "scaling, bidirectional/forward" in printed
    payload = json.loads(out.read_text())
    assert payload["machine"]["torch"] and payload["config_hash"]
    rows = payload["rows"]
    expected = {  # every method that accepts the bidirectional mode
        v.label for v in variants("cpu")[0] if v.spec is None or v.spec.capabilities.bidirectional
    }
    assert {"oracle", "sdpa", "lisa W=16", "lisa W=128"} <= expected
    assert "decay_linear" not in expected  # causal only
    assert {r["method"] for r in rows} == expected
    assert all(r["status"] == "ok" and r["median_s"] > 0 for r in rows)
    assert all(r["peak_bytes"] is None or r["peak_bytes"] > 0 for r in rows)
    assert len(rows) == 2 * len(expected)
    assert math.isfinite(payload["summary"]["bidirectional/forward"]["sdpa"]["time_exponent"][0])


def test_bench_rejects_bad_arguments(tmp_path):
    assert main(["bench", "--lengths", "0", "--output", str(tmp_path / "x.json")]) == 2
    assert main(["bench", "--threads", "0", "--output", str(tmp_path / "x.json")]) == 2
    assert (
        main(
            [
                "bench",
                "--family",
                "graph",
                "--graph-edges",
                "50",
                "--output",
                str(tmp_path / "x.json"),
            ]
        )
        == 2
    )
    # methods are resolved when the command runs (plugins included): an unknown label is
    # the command's error (exit status 2), no longer an argparse choice
    assert main(["bench", "--methods", "nope", "--output", str(tmp_path / "x.json")]) == 2


def test_memray_command_writes_captures_flamegraphs_and_peaks(tmp_path, capsys):
    pytest.importorskip("memray", reason="memray is not installed")
    code = main(
        [
            "memray",
            "--lengths",
            "128",
            "256",
            "--methods",
            "sdpa",
            "lisa W=16",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    payload = json.loads((tmp_path / "memray.json").read_text())
    assert [r["L"] for r in payload["rows"]] == [256, 256]
    for row in payload["rows"]:
        assert row["peak_bytes"] > 0
        assert "<html" in (tmp_path / row["flamegraph"].split("/")[-1]).read_text()
