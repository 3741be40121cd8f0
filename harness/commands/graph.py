"""``python -m harness graph``: train the HEP model with a sampler x estimator (or
exhaustively) on a heterogeneous graph and print one JSON record per epoch.

Data: a seeded synthetic graph by default (``--edges``); MovieLens-100K + knowledge graph
(``--data movielens``) or the MovieLens-1M typed graph (``--data ml-1m``), read from the
fetch-data cache or ``--data-dir`` (``python -m harness fetch-data ml-100k`` first); your
own graph with ``--dataset-card CARD.json`` (node tables and per-relation edge lists as
CSV, TSV or Parquet, or the arrays of a PyG HeteroData as .npz/.safetensors; see "Bring
your own data" in docs/data.md); or a data set an installed package registers in the
``lisa_bench.datasets`` entry-point group (``--data NAME``). Examples:

    python -m harness graph --sampler type-fusion --estimator self-normalized --budget 32
    python -m harness graph --dataset-card my-graph/card.json --epochs 2

``--task`` defaults to node classification, or to link prediction for a card whose only
task is link prediction. A run whose training loss becomes NaN or inf stops; its last
record has ``"status": "diverged: non-finite loss at epoch E step S"`` and the command
exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from impls.sampling import ESTIMATORS, SAMPLERS

    p = subparsers.add_parser(
        "graph",
        help="train the HEP model with a heterogeneous sampler and estimator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--sampler",
        choices=sorted(SAMPLERS),
        default="type-fusion",
        help="neighbourhood sampler (exhaustive: every edge, no sampling)",
    )
    p.add_argument(
        "--estimator",
        choices=sorted(ESTIMATORS),
        default="self-normalized",
        help="how sampled messages are weighted into the aggregate",
    )
    p.add_argument("--budget", type=int, default=32, help="draws per batch (fan-out for nodewise)")
    p.add_argument(
        "--without-replacement",
        action="store_true",
        help="layer-wise samplers draw without replacement",
    )
    p.add_argument(
        "--task",
        choices=("node", "link"),
        default=None,
        help="node classification (Micro/Macro-F1) or link prediction (ROC-AUC); default: "
        "node, or link for a data set that has link prediction only",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="NAME",
        help="synthetic (the default), movielens (ML-100K + KG), ml-1m (MovieLens-1M typed "
        "graph), or a name registered in the lisa_bench.datasets entry-point group",
    )
    p.add_argument(
        "--dataset-card",
        default=None,
        metavar="CARD",
        help="your own graph: a JSON graph card (node types, relations with their edge-list "
        "files or a tensors file, the task); see docs/data.md, 'Bring your own data'",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="--data movielens/ml-1m: the folder holding ml-100k.{inter,user,item,kg,link} or "
        "ml-1m.{inter,item,user} (default: the fetch-data cache, $LISA_BENCH_DATA/NAME)",
    )
    p.add_argument(
        "--edges", type=int, default=100_000, help="synthetic graph size (generated edges)"
    )
    p.add_argument("--epochs", type=int, default=5, help="training epochs")
    p.add_argument("--batch-size", type=int, default=1024, help="target nodes per batch")
    p.add_argument("--dim", type=int, default=64, help="hidden width of the HEP model")
    p.add_argument(
        "--layers",
        type=int,
        choices=(1, 2),
        default=1,
        help="HEP propagation steps; with 2, each hop is sampled (layer-wise: the second "
        "hop's targets are the sources the first kept)",
    )
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the synthetic graph, of a card's splits and held-out edges, of the "
        "model and of sampling (default 0)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _load_task(args: argparse.Namespace):
    """(task, None) or (None, error message) for the data the arguments name."""
    from harness.datasets import GraphTask, load_graph_card
    from harness.datasets.builtin_graphs import BUILTIN_GRAPHS, load_builtin_graph
    from harness.datasets.registry import DatasetPluginError, load_registered_dataset

    if args.dataset_card is not None:
        if args.data is not None:
            return None, "give --data or --dataset-card, not both"
        try:
            return load_graph_card(args.dataset_card, seed=args.seed), None
        except (OSError, ValueError) as exc:
            return None, str(exc)
    data = args.data or "synthetic"
    if data in BUILTIN_GRAPHS:
        try:
            return load_builtin_graph(
                data, edges=args.edges, data_dir=args.data_dir, seed=args.seed
            ), None
        except FileNotFoundError as exc:
            return None, str(exc)
        except ValueError as exc:  # a file that fails its checksum names itself and the fix
            return None, f"--data {data}: {exc}"
    try:
        return load_registered_dataset(data, seed=args.seed, kinds=(GraphTask,)), None
    except DatasetPluginError as exc:
        return None, f"--data {data}: {exc}; built in: {', '.join(BUILTIN_GRAPHS)}"


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from harness.graph.hep_training import TrainConfig, num_batches, train_graph_model

    if args.threads:
        torch.set_num_threads(args.threads)
    task, error = _load_task(args)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.task is None:
        args.task = "link" if task.labels is None and task.link_relation is not None else "node"
    if args.task == "node" and task.labels is None:
        print(
            f"error: --task node: {task.name} has no node labels; try --task link", file=sys.stderr
        )
        return 2
    if args.task == "link" and task.link_relation is None:
        print(
            f"error: --task link: {task.name} has no held-out edges for link prediction",
            file=sys.stderr,
        )
        return 2
    cfg = TrainConfig(
        task=args.task,
        sampler=args.sampler,
        estimator=args.estimator,
        budget=args.budget,
        replace=not args.without_replacement,
        epochs=args.epochs,
        batch_size=args.batch_size,
        dim=args.dim,
        layers=args.layers,
        lr=args.lr,
        seed=args.seed,
    )
    try:
        cfg.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = cfg.epochs * num_batches(task, cfg)
    with tqdm(
        total=total,
        disable=args.no_progress,
        desc=f"{cfg.sampler}/{cfg.estimator}",
        file=sys.stderr,
    ) as bar:
        _, records = train_graph_model(task, cfg, progress=bar.update)
    head = {"data": task.name, "graph_edges": task.graph.num_edges, **vars(cfg)}
    for r in records:
        print(json.dumps({**head, **r.as_dict()}))
    if records and records[-1].status != "ok":
        print(f"error: {records[-1].status}; training stopped, no score", file=sys.stderr)
        return 1
    return 0
