"""``python -m harness seqrec``: train the SASRec-style model with one attention method and
print HR@5/10, NDCG@5/10 (validation and test), time per epoch and peak memory.

Methods: ``lisa-base``, ``lisa-soft``, ``lisa-mini`` (LISA layers), ``exact`` (= ``sdpa``)
or any registry method / ``module:attr`` (through a one-head q/k/v adapter, causal), and
``none``: the no-attention ablation, the floor any attention layer should beat.
Data: ``synthetic`` (seeded, the default), ``ml-100k`` or ``ml-1m`` (fetch them first with
``python -m harness fetch-data``), or ``--inter FILE`` (an atomic file). A run whose training
loss becomes NaN or inf stops, prints ``diverged: non-finite loss at epoch E step S`` and
exits with status 1 (no score is printed for it). Training runs in an isolated worker
(``--timeout`` per seed, ``--memory-cap-gb``): a method that crashes, hangs or exhausts
memory gives a record with that status and exit status 1, never a score. Example:

    python -m harness seqrec --method lisa-base --dataset ml-1m   # D = 128, max length 200
    python -m harness seqrec --method performer --seeds 0 1 2    # synthetic, three seeds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from harness.runner.cli import add_isolation_arguments, limits_from_args

__all__ = ["register", "run"]


def _fmt_bytes(n) -> str:
    return "n/a (memray missing)" if n is None else f"{n / 2**20:.1f} MiB"


def run(args: argparse.Namespace) -> int:
    import torch

    from harness.results import write_json_atomic
    from harness.seqrec.training import TrainConfig, load_task, train_and_evaluate

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
    try:
        limits = limits_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from harness.runner.isolation import IsolatedRunner

    records = []
    with IsolatedRunner(limits) as runner:
        for seed in args.seeds:
            cfg.seed = seed
            outcome = runner.call(
                train_and_evaluate,
                task,
                args.method,
                cfg,
                extra=tuple(args.plugin),
                progress=not args.no_progress,
            )
            if outcome.status == "error":
                first = outcome.message.splitlines()[0]
                kind, _, text = first.partition(": ")
                if kind in ("PluginError", "PluginTypeError"):  # names the plugin reference
                    print(f"error: {text}", file=sys.stderr)
                    return 2
                if kind == "ValueError":
                    print(f"error: --method {args.method}: {text}", file=sys.stderr)
                    return 2
            if outcome.ok:
                rec = outcome.value
            else:  # crashed, hung, out of memory or raised: a record with that status
                rec = {
                    "method": args.method,
                    "dataset": task.data.name,
                    "seed": seed,
                    "status": outcome.describe().splitlines()[0][:300],
                    "message": outcome.message[-2000:],
                }
            records.append(rec)
            if rec["status"] != "ok":
                # a diverged run has no score: say so, keep the record, exit non-zero
                print(
                    f"error: {rec['method']} on {rec['dataset']} (seed {seed}): {rec['status']}; "
                    "no score reported",
                    file=sys.stderr,
                )
                break
            t = rec["test"]
            print(
                f"{rec['method']} on {rec['dataset']} (seed {seed}; {rec['users']} users, "
                f"{rec['items']} items; D={cfg.d_model}, max_len={cfg.max_len}; best epoch "
                f"{rec['best_epoch']}/{rec['epochs_run']})\n"
                f"  test   HR@5 {t['HR@5']:.4f}  NDCG@5 {t['NDCG@5']:.4f}  "
                f"HR@10 {t['HR@10']:.4f}  NDCG@10 {t['NDCG@10']:.4f}\n"
                f"  valid  HR@10 {rec['valid']['HR@10']:.4f}  "
                f"NDCG@10 {rec['valid']['NDCG@10']:.4f}\n"
                f"  epoch time {rec['epoch_time_s']:.2f} s (median of {rec['epochs_run']} training "
                f"passes, {rec['threads']} threads)\n"
                f"  peak heap during one training step {_fmt_bytes(rec['train_step_peak_bytes'])} "
                f"(memray); process max RSS {rec['process_max_rss_bytes'] / 2**20:.0f} MiB"
            )
    diverged = [r for r in records if r["status"] != "ok"]
    if len(records) > 1 and not diverged:
        for key in ("HR@10", "NDCG@10"):
            values = [r["test"][key] for r in records]
            print(
                f"  test {key} over {len(values)} seeds: mean {statistics.mean(values):.4f} "
                f"sd {statistics.stdev(values):.4f}"
            )
    if args.output:
        write_json_atomic(args.output, json.loads(json.dumps({"runs": records}, default=str)))
    return 1 if diverged else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "seqrec",
        help="train SASRec with a pluggable attention layer; print HR/NDCG, time, memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", default="lisa-base", help="attention method (see above)")
    parser.add_argument(
        "--dataset",
        choices=("synthetic", "ml-100k", "ml-1m"),
        default="synthetic",
        help="interactions to train on (MovieLens needs `python -m harness fetch-data` first)",
    )
    parser.add_argument("--inter", default=None, help="an atomic .inter file instead of --dataset")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="add an unpublished registry method, usable as --method (repeatable)",
    )
    parser.add_argument(
        "--dim", type=int, default=None, help="model width D (default: 128 on ml-1m, else 64)"
    )
    parser.add_argument(
        "--max-len", type=int, default=None, help="window (default: 200 on ml-1m, else 50)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="sequences per batch")
    parser.add_argument("--epochs", type=int, default=30, help="most training epochs")
    parser.add_argument(
        "--patience",
        type=int,
        default=3,
        help="stop after this many epochs without a better validation NDCG@10",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout rate")
    parser.add_argument(
        "--negatives", type=int, default=100, help="sampled negatives each target is ranked against"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="one training run per seed"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--output", default=None, help="also write the records as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_isolation_arguments(parser, timeout_s=24 * 3600.0)
    parser.set_defaults(func=run)
