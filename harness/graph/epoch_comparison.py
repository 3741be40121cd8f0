"""Interleaved cost comparison of samplers against exhaustive aggregation.

Runs one training epoch per configuration, round-robin, ``repeats`` times (so machine
load affects every configuration alike), and reports per configuration the median
epoch wall time, edges in computation, saved-activation memory, and their reductions
against the exhaustive configuration measured in the same run, and the median test
metric after that one epoch (Micro-F1 for node classification, ROC-AUC for link
prediction; evaluation always aggregates exhaustively) with its difference from the
baseline's (``metric_delta``, in metric units).

    python -m harness.graph.epoch_comparison --edges 1000000 --repeats 5 --layers 2 \\
        --config exhaustive:importance --config type-fusion:self-normalized:512

``edges_in_computation`` counts the kept edges of every hop (two blocks per step with
``--layers 2``); its reduction is against the baseline's count in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from harness.datasets.builtin_graphs import BUILTIN_GRAPHS, load_builtin_graph
from harness.graph.hep_training import TrainConfig, train_graph_model

__all__ = ["compare", "main"]


def compare(task, configs: list[TrainConfig], repeats: int, progress=None) -> list[dict]:
    """One row per configuration (see the module docstring); ``progress(repeat, cfg,
    record)`` is called after every epoch run, e.g. to log it."""
    runs: dict[int, list] = {i: [] for i in range(len(configs))}
    for repeat in range(repeats):
        for i, cfg in enumerate(configs):
            _, rec = train_graph_model(task, cfg)
            runs[i].append(rec[0])
            if progress is not None:
                progress(repeat, cfg, rec[0])
    rows = []
    for i, cfg in enumerate(configs):
        recs = runs[i]
        rows.append(
            {
                "sampler": cfg.sampler,
                "estimator": cfg.estimator,
                "budget": cfg.budget,
                "layers": cfg.layers,
                "median_seconds": statistics.median(r.seconds for r in recs),
                "edges_in_computation": statistics.median(r.edges_in_computation for r in recs),
                "exhaustive_edges": recs[0].exhaustive_edges,
                "activation_mb": max(r.activation_mb for r in recs),
                "test_metric": statistics.median(r.test_metric for r in recs),
            }
        )
    base = rows[0]
    for r in rows:
        r["time_reduction"] = 1 - r["median_seconds"] / base["median_seconds"]
        r["edge_reduction"] = 1 - r["edges_in_computation"] / base["edges_in_computation"]
        r["activation_reduction"] = 1 - r["activation_mb"] / base["activation_mb"]
        r["metric_delta"] = r["test_metric"] - base["test_metric"]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.graph.epoch_comparison", description=__doc__
    )
    p.add_argument("--edges", type=int, default=100_000)
    p.add_argument("--data", choices=BUILTIN_GRAPHS, default="synthetic")
    p.add_argument(
        "--data-dir", default=None, help="movielens/ml-1m files (default: the fetch-data cache)"
    )
    p.add_argument("--task", choices=("node", "link"), default="node")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--layers", type=int, choices=(1, 2), default=1, help="HEP propagation steps")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--config",
        action="append",
        default=None,
        help="sampler:estimator[:budget]; the first one is the baseline",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = args.config or [
        "exhaustive:importance",
        "type-fusion:self-normalized:512",
        "type-dependent:self-normalized:512",
    ]
    configs = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            p.error(f"--config must be sampler:estimator[:budget], got {spec!r}")
        budget = int(parts[2]) if len(parts) == 3 else 32
        configs.append(
            TrainConfig(
                task=args.task,
                sampler=parts[0],
                estimator=parts[1],
                budget=budget,
                epochs=1,
                batch_size=args.batch_size,
                layers=args.layers,
            )
        )
    task = load_builtin_graph(args.data, edges=args.edges, data_dir=args.data_dir)

    def log(repeat, cfg, rec):  # progress on stderr, so a long run shows where it is
        print(
            f"repeat {repeat + 1}/{args.repeats} {cfg.sampler}:{cfg.estimator}:{cfg.budget} "
            f"{rec.seconds:.2f} s, {rec.edges_in_computation} edges, test {rec.test_metric:.4f}",
            file=sys.stderr,
            flush=True,
        )

    for row in compare(task, configs, args.repeats, progress=log):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
