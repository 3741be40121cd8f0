"""``python -m harness seqrec``: train the SASRec-style model with one attention method and
print HR@5/10, NDCG@5/10 (validation and test), time per epoch and peak memory.

Methods: ``lisa-base``, ``lisa-soft``, ``lisa-mini`` (LISA layers), ``exact`` (= ``sdpa``)
or any registry method / ``module:attr`` (through a one-head q/k/v adapter, causal), and
``none``: the no-attention ablation, the floor any attention layer should beat.
Data: ``synthetic`` (seeded, the default), ``ml-100k`` or ``ml-1m`` (fetch them first with
``python -m harness fetch-data``), or ``--inter FILE`` (an atomic file). Example:

    python -m harness seqrec --method lisa-base --dataset ml-1m   # D = 128, max length 200
    python -m harness seqrec --method performer --seeds 0 1 2    # synthetic, three seeds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

__all__ = ["register", "run"]


def _fmt_bytes(n) -> str:
    return "n/a (memray missing)" if n is None else f"{n / 2**20:.1f} MiB"


def run(args: argparse.Namespace) -> int:
    import torch

    from harness.results import write_json_atomic
    from harness.tasks.seqrec_train import TrainConfig, load_task, train_and_evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    authors = args.dataset == "ml-1m" and args.inter is None
    cfg = TrainConfig(
        d_model=args.dim if args.dim is not None else (128 if authors else 64),
        max_len=args.max_len if args.max_len is not None else (200 if authors else 50),
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        dropout=args.dropout,
    )
    for flag, value in (
        ("--dim", cfg.d_model),
        ("--max-len", cfg.max_len),
        ("--batch-size", cfg.batch_size),
        ("--epochs", cfg.epochs),
        ("--patience", cfg.patience),
        ("--negatives", args.negatives),
    ):
        if value < 1:
            print(f"error: {flag} must be >= 1, got {value}", file=sys.stderr)
            return 2
    try:
        cfg.check()
        task = load_task(args.dataset, path=args.inter, num_negatives=args.negatives, seed=0)
    except FileNotFoundError as exc:
        print(f"error: --dataset {args.dataset}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    records = []
    for seed in args.seeds:
        cfg.seed = seed
        try:
            rec = train_and_evaluate(
                task, args.method, cfg, extra=tuple(args.plugin), progress=not args.no_progress
            )
        except ValueError as exc:
            print(f"error: --method {args.method}: {exc}", file=sys.stderr)
            return 2
        records.append(rec)
        t = rec["test"]
        print(
            f"{rec['method']} on {rec['dataset']} (seed {seed}; {rec['users']} users, "
            f"{rec['items']} items; D={cfg.d_model}, max_len={cfg.max_len}; best epoch "
            f"{rec['best_epoch']}/{rec['epochs_run']})\n"
            f"  test   HR@5 {t['HR@5']:.4f}  NDCG@5 {t['NDCG@5']:.4f}  "
            f"HR@10 {t['HR@10']:.4f}  NDCG@10 {t['NDCG@10']:.4f}\n"
            f"  valid  HR@10 {rec['valid']['HR@10']:.4f}  NDCG@10 {rec['valid']['NDCG@10']:.4f}\n"
            f"  epoch time {rec['epoch_time_s']:.2f} s (median of {rec['epochs_run']} training "
            f"passes, {rec['threads']} threads)\n"
            f"  peak heap during one training step {_fmt_bytes(rec['train_step_peak_bytes'])} "
            f"(memray); process max RSS {rec['process_max_rss_bytes'] / 2**20:.0f} MiB"
        )
    if len(records) > 1:
        for key in ("HR@10", "NDCG@10"):
            values = [r["test"][key] for r in records]
            print(
                f"  test {key} over {len(values)} seeds: mean {statistics.mean(values):.4f} "
                f"sd {statistics.stdev(values):.4f}"
            )
    if args.output:
        write_json_atomic(args.output, json.loads(json.dumps({"runs": records}, default=str)))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "seqrec",
        help="train SASRec with a pluggable attention layer; print HR/NDCG, time, memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", default="lisa-base", help="attention method (see above)")
    parser.add_argument("--dataset", choices=("synthetic", "ml-100k", "ml-1m"), default="synthetic")
    parser.add_argument("--inter", default=None, help="an atomic .inter file instead of --dataset")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:ATTR")
    parser.add_argument(
        "--dim", type=int, default=None, help="model width D (default: 128 on ml-1m, else 64)"
    )
    parser.add_argument(
        "--max-len", type=int, default=None, help="window (default: 200 on ml-1m, else 50)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default=None, help="also write the records as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)
