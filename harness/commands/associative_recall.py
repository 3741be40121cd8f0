"""``python -m harness mqar``: multi-query associative recall, a long-range probe.

Trains the small fixed model of :mod:`harness.tasks.associative_recall` (2 pre-norm
blocks, the attention of each registry method, causal) on seeded MQAR sequences of each
length, evaluates exact-match accuracy on a held-out seeded set, prints a table of
accuracy by L (rows methods, columns L) and writes every row (status ok / skipped / error,
accuracy, final loss, train seconds, settings) as JSON to ``--output``. A method that
cannot attend causally here (linformer, CUDA-only methods on a CPU) is a skipped row with
the registry's reason. Each row trains in an isolated worker process: a method that
raises, returns NaN, hangs past ``--timeout`` (default 4 h per row), aborts the
interpreter or allocates past ``--memory-cap-gb`` is a row with that status, and the grid
goes on.
"""

from __future__ import annotations

import argparse
import sys

from harness.runner.cli import add_isolation_arguments


def run(args: argparse.Namespace) -> int:
    from harness.runner.cli import limits_from_args
    from harness.runner.isolation import IsolatedRunner
    from harness.tasks.associative_recall import format_table, run_grid

    def progress(row: dict) -> None:
        if row["status"] == "ok":
            text = (
                f"accuracy {row['accuracy']:.3f}  loss {row['final_loss']:.3f}  "
                f"train {row['train_seconds']:.1f} s"
            )
        else:
            text = f"{row['status']}: {row.get('reason') or row.get('error')}"
        print(f"{row['method']:>14} L={row['length']:<6} {text}", file=sys.stderr, flush=True)

    try:
        limits = limits_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with IsolatedRunner(limits) as runner:
            rows = run_grid(
                args.methods,
                args.lengths,
                output=args.output,
                progress=progress,
                runner=runner,
                num_pairs=args.num_pairs,
                vocab_size=args.vocab_size,
                steps=args.steps,
                batch=args.batch,
                dim=args.dim,
                heads=args.heads,
                lr=args.lr,
                eval_examples=args.eval_examples,
                seeds=args.seeds,
            )
    except ValueError as exc:  # bad task settings (e.g. length < 4 * num_pairs)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"wrote {args.output}")
    return 1 if any(r["status"] not in ("ok", "skipped") for r in rows) else 0


# (flag, type, help) of the task's numeric settings; defaults come from DEFAULTS.
_SETTINGS = (
    ("--num-pairs", int, "key-value pairs stored and queried per sequence"),
    ("--vocab-size", int, "tokens available for keys and values"),
    ("--steps", int, "optimiser steps"),
    ("--batch", int, "sequences per training step"),
    ("--dim", int, "model width"),
    ("--heads", int, "attention heads per block"),
    ("--lr", float, "AdamW learning rate"),
    ("--eval-examples", int, "held-out sequences scored for accuracy"),
)


def register(subparsers) -> None:
    from harness.tasks.associative_recall import DEFAULT_LENGTHS, DEFAULT_METHODS, DEFAULTS

    parser = subparsers.add_parser(
        "mqar",
        help="multi-query associative recall: accuracy of a small model per method and L",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        metavar="NAME",
        help="registry methods to train (default: %(default)s)",
    )
    parser.add_argument(
        "--lengths",
        nargs="+",
        type=int,
        default=list(DEFAULT_LENGTHS),
        metavar="L",
        help="sequence lengths; each must be at least 4 x --num-pairs (default: %(default)s)",
    )
    for flag, kind, text in _SETTINGS:
        key = flag[2:].replace("-", "_")
        parser.add_argument(
            flag, type=kind, default=DEFAULTS[key], help=f"{text} (default: %(default)s)"
        )
    parser.add_argument(
        "--seeds",
        "--seed",
        nargs="+",
        type=int,
        default=[DEFAULTS["seed"]],
        metavar="S",
        help="seeds for data, initialisation and order; each (method, L) trains once per "
        "seed, and several seeds print means with 95%% intervals (default: %(default)s)",
    )
    parser.add_argument("--output", default="results/mqar.json", help="JSON file to write")
    add_isolation_arguments(parser, timeout_s=4 * 3600.0)
    parser.set_defaults(func=run)
