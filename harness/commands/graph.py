"""``python -m harness graph``: train the HEP model with a sampler x estimator (or
exhaustively) on a heterogeneous graph and print one JSON record per epoch.

Data: seeded synthetic graph by default (``--edges``); MovieLens-100K + KG with
``--data movielens --data-dir DIR`` (recbole's atomic files, fetched at set-up; see
docs/data.md). Example:

    python -m harness graph --sampler type-fusion --estimator self-normalized --budget 32

A run whose training loss becomes NaN or inf stops; its last record has ``"status":
"diverged: non-finite loss at epoch E step S"`` and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
        default="node",
        help="node classification (Micro/Macro-F1) or link prediction (ROC-AUC)",
    )
    p.add_argument(
        "--data",
        choices=("synthetic", "movielens", "ml-1m"),
        default="synthetic",
        help="movielens: ML-100K + KG; ml-1m: MovieLens-1M typed graph (both need --data-dir)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding ml-100k.{inter,user,item,kg,link} or ml-1m.{inter,item,user} "
        "(default: the fetch-data cache)",
    )
    p.add_argument(
        "--edges", type=int, default=100_000, help="synthetic graph size (generated edges)"
    )
    p.add_argument("--epochs", type=int, default=5, help="training epochs")
    p.add_argument("--batch-size", type=int, default=1024, help="target nodes per batch")
    p.add_argument("--dim", type=int, default=64, help="hidden width of the HEP model")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the synthetic graph, model and sampling (default 0)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from harness.datasets import load_movielens_1m, load_movielens_100k_kg, make_synthetic_graph
    from harness.graph.hep_training import TrainConfig, num_batches, train_graph_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data in ("movielens", "ml-1m"):
        from harness.datasets.cache import data_dir

        name = "ml-100k" if args.data == "movielens" else "ml-1m"
        folder = args.data_dir or str(data_dir() / name)
        if not (Path(folder) / f"{name}.inter").is_file():
            print(
                f"error: {folder} has no {name}.inter; run `python -m harness fetch-data "
                f"{name}` or pass --data-dir (the folder of its atomic files)",
                file=sys.stderr,
            )
            return 2
        loader = load_movielens_100k_kg if args.data == "movielens" else load_movielens_1m
        try:
            task = loader(folder, seed=args.seed)
        except ValueError as exc:  # a file that fails its checksum names itself and the fix
            print(f"error: --data {args.data}: {exc}", file=sys.stderr)
            return 2
    else:
        task = make_synthetic_graph(args.edges, seed=args.seed)
    cfg = TrainConfig(
        task=args.task,
        sampler=args.sampler,
        estimator=args.estimator,
        budget=args.budget,
        replace=not args.without_replacement,
        epochs=args.epochs,
        batch_size=args.batch_size,
        dim=args.dim,
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
