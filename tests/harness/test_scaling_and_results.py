"""Scaling fits, crossover detection, atomic result files and the bench command."""

from __future__ import annotations

import json
import math

import pytest

from harness.cli import main
from harness.results import config_hash, write_json_atomic
from harness.scaling import crossover_length, fit_exponent


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
    expected = {v.label for v in variants("cpu")[0]}
    assert {"oracle", "sdpa", "lisa W=16", "lisa W=128"} <= expected
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
    with pytest.raises(SystemExit):
        main(["bench", "--methods", "nope"])


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
