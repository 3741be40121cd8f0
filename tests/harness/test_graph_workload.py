"""The graph benchmark workload: rows are consistent with the sampler's own counters,
exhaustive keeps every batch edge, and the bench command and asv benchmarks run."""

from __future__ import annotations

import json

from benchmarks import graph_sampling
from harness.cli import main
from harness.workloads import graph_sampling as workload


def test_configs_cover_every_sampler_and_estimator_with_exhaustive_first():
    labels = [c.label for c in workload.configs()]
    assert labels[0] == workload.BASELINE
    from impls.sampling import ESTIMATORS, SAMPLERS

    assert len(labels) == 1 + (len(SAMPLERS) - 1) * len(ESTIMATORS)
    assert len(set(labels)) == len(labels)


def test_exhaustive_keeps_every_batch_edge_and_samplers_keep_fewer():
    task = workload.graph_task(5_000)
    for config in workload.configs():
        step, info = workload.build_step(config, task)
        assert 0 < info["edges_in_computation"] <= info["batch_edges"]
        if config.sampler == "exhaustive":
            assert info["edges_in_computation"] == info["batch_edges"]
        out = step()
        assert out and all(v.shape[1] == workload.DIM for v in out.values())


def test_bench_graph_family_writes_rows_ratios_plots_and_compares(tmp_path, capsys):
    out = tmp_path / "graph.json"
    args = [
        "bench",
        "--family",
        "graph",
        "--graph-edges",
        "2000",
        "4000",
        "--repeats",
        "3",
        "--output",
        str(out),
        "--plots-dir",
        str(tmp_path / "plots"),
        "--history-dir",
        str(tmp_path / "history"),
        "--no-progress",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "speed-up vs exh." in printed and "fitted exponents" in printed
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert len(rows) == 2 * len(workload.configs())
    assert all(r["status"] == "ok" and r["median_s"] > 0 for r in rows)
    assert payload["config"]["family"] == "graph" and payload["machine"]["torch"]
    assert payload["plots"] and all(
        (tmp_path / "plots" / p.split("/")[-1]).is_file() for p in payload["plots"]
    )
    assert main(args) == 0  # the second run compares with the first, case by case
    again = json.loads(out.read_text())
    assert again["comparison"]["previous_created"] == payload["created"]
    assert len(again["comparison"]["changes"]) == len(rows)


def test_bench_graph_rejects_tiny_graphs(tmp_path):
    assert (
        main(
            [
                "bench",
                "--family",
                "graph",
                "--graph-edges",
                "10",
                "--output",
                str(tmp_path / "g.json"),
            ]
        )
        == 2
    )


def test_asv_graph_benchmarks_run_their_smallest_case():
    bench = graph_sampling.GraphAggregationStep()
    tasks = {n: workload.graph_task(n) for n in [2_000]}
    for config in list(graph_sampling.CONFIGS)[:4]:
        bench.setup(tasks, config, 2_000)
        bench.time_step(tasks, config, 2_000)
        bench.peakmem_step(tasks, config, 2_000)
        assert bench.track_edges_in_computation(tasks, config, 2_000) > 0
        assert 0 < bench.track_share_of_exhaustive_edges(tasks, config, 2_000) <= 1
