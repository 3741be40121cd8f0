"""Task quality after a short training run, per sampler x estimator x budget, against
exhaustive aggregation on the same data, seeds and schedule.

Each configuration trains the HEP model (``harness.graph.hep_training``) for
``epochs`` epochs with ``seeds`` model/sampling seeds (the graph stays fixed) and
reports, over the seeds, the median, minimum and maximum of the test metric of the last
epoch (Micro-F1 for node classification, ROC-AUC for link prediction; evaluation always
aggregates exhaustively, so every row is scored by the same rule) and the median kept
edges per epoch. The exhaustive baseline is trained first with the same seeds; each
row's ``delta`` is its median minus the baseline's median, in metric units (x 100 for
points of Micro-F1). A diverged run counts with metric 0 and is listed in ``diverged``.

    python -m harness.graph.budget_quality --edges 100000 --epochs 3 --seeds 0 1 2 \\
        --budgets 8 32 128 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence

import torch

from harness.datasets.graph_task import GraphTask
from harness.graph.estimator_variance import DEFAULT_SAMPLERS, add_data_arguments, load_task
from harness.graph.hep_training import TrainConfig, train_graph_model
from impls.sampling.pairing import pairing_problem

__all__ = ["quality_row", "main"]


def quality_row(
    task: GraphTask,
    sampler: str,
    estimator: str,
    budget: int,
    seeds: Sequence[int],
    *,
    task_kind: str = "node",
    epochs: int = 3,
    batch_size: int = 1024,
    dim: int = 64,
    lr: float = 1e-2,
    layers: int = 1,
) -> dict:
    """Train one configuration once per seed; summary of the last epoch's test metric."""
    metrics, edges, diverged = [], [], []
    exhaustive_edges = 0
    for seed in seeds:
        cfg = TrainConfig(
            task=task_kind,
            sampler=sampler,
            estimator=estimator,
            budget=budget,
            epochs=epochs,
            batch_size=batch_size,
            dim=dim,
            lr=lr,
            seed=seed,
            layers=layers,
        )
        _, recs = train_graph_model(task, cfg)
        last = recs[-1]
        metrics.append(last.test_metric)
        edges.append(last.edges_in_computation)
        exhaustive_edges = last.exhaustive_edges
        if last.status != "ok":
            diverged.append(seed)
    return {
        "sampler": sampler,
        "estimator": estimator,
        "budget": budget,
        "seeds": list(seeds),
        "epochs": epochs,
        "layers": layers,
        "median": statistics.median(metrics),
        "min": min(metrics),
        "max": max(metrics),
        "metrics": metrics,
        "edges": statistics.median(edges),
        "exhaustive_edges": exhaustive_edges,
        "diverged": diverged,
        "status": "ok" if not diverged else f"diverged on seeds {diverged}",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.graph.budget_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p)
    p.add_argument("--task", choices=("node", "link"), default="node")
    p.add_argument("--budgets", type=int, nargs="+", default=[8, 32, 128, 512])
    p.add_argument("--samplers", nargs="+", default=list(DEFAULT_SAMPLERS))
    p.add_argument("--estimators", nargs="+", default=["importance", "self-normalized", "adaptive"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--layers", type=int, choices=(1, 2), default=1)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    task = load_task(args)
    common = dict(
        task_kind=args.task,
        epochs=args.epochs,
        batch_size=args.batch_size,
        dim=args.dim,
        lr=args.lr,
        layers=args.layers,
    )
    base = quality_row(task, "exhaustive", "importance", 1, args.seeds, **common)
    base["delta"] = 0.0
    base["data"] = task.name
    print(json.dumps(base), flush=True)
    for sampler in args.samplers:
        for budget in args.budgets:
            for est in args.estimators:
                problem = pairing_problem(sampler, est)
                if problem is not None:  # a row that says why, never a crashed sweep
                    row = {"sampler": sampler, "estimator": est, "budget": budget}
                    row.update(status=f"unsupported: {problem}", data=task.name)
                    print(json.dumps(row), flush=True)
                    continue
                row = quality_row(task, sampler, est, budget, args.seeds, **common)
                row["delta"] = row["median"] - base["median"]
                row["data"] = task.name
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
