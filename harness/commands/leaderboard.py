"""``python -m harness leaderboard``: rank efficient-attention methods.

Per method, in this order: the conformance suite (a method that fails gets no speed
score), error against exact attention on seeded workloads, time and memory on an L grid
as ratios against SDPA from the same run, fitted exponents, crossover length, and
downstream HR@10/NDCG@10 of the SASRec-style model. The speed cases are the bench's
(batch 1, one head of dim 128, float32, forward), on a named grid of
``harness.workloads.attention.GRIDS``. ``--quick``: L = 256 .. 16,384 (the float64 oracle
to 4,096), synthetic data (or ``--dataset ml-100k``); full: L = 256 .. 131,072 for
linear-time methods, exact ones to 65,536, MovieLens-1M at D = 128, max length 200 (fetch
it first: ``python -m harness fetch-data ml-1m``).

Writes ``results/leaderboard.{json,md,html}`` (``--output-dir``); ``--merge A.json B.json``
merges documents from several machines instead of measuring (each is checked against the
JSON Schema; rows of different data sets, L grids or configurations are refused unless
``--allow-mixed``). Examples:

    python -m harness leaderboard --quick --methods sdpa lisa-base performer
    python -m harness leaderboard --quick --plugin mypkg.attn:SPEC
"""

from __future__ import annotations

import argparse
import sys

from harness.runner.cli import add_isolation_arguments, limits_from_args

__all__ = ["register", "run"]


def _config(args):
    from harness.leaderboard import LeaderboardConfig

    cfg = LeaderboardConfig() if args.quick else LeaderboardConfig.full()
    overrides = {
        "lengths": tuple(args.lengths) if args.lengths else None,
        "repeats": args.repeats,
        "dataset": args.dataset,
        "dataset_card": args.dataset_card,
        "seqrec_dim": args.seqrec_dim,
        "seqrec_max_len": args.max_len,
        "seqrec_epochs": args.epochs,
        "seeds": tuple(args.seeds) if args.seeds else None,
        "mqar_lengths": () if args.no_mqar else (tuple(args.mqar_lengths) or None),
        "mqar_steps": args.mqar_steps,
        "mqar_seeds": tuple(args.mqar_seeds) if args.mqar_seeds else None,
        "long_history_len": args.long_history_len,
        "long_history_epochs": args.long_history_epochs,
        "synthetic_users": args.synthetic_users,
        "synthetic_items": args.synthetic_items,
        "threads": args.threads,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    if args.no_long_history:
        cfg.long_history_len = None
    return cfg


def run(args: argparse.Namespace) -> int:
    from harness.leaderboard import merge_documents, to_markdown, write_outputs

    if args.merge:
        from harness.leaderboard.store import load_document

        try:  # each file is checked against the JSON Schema; mixed rows need --allow-mixed
            docs = [load_document(p) for p in args.merge]
            doc = merge_documents(*docs, sources=args.merge, allow_mixed=args.allow_mixed)
        except (OSError, ValueError) as exc:
            print(f"error: --merge: {exc}", file=sys.stderr)
            return 2
    else:
        for flag in (
            "repeats",
            "seqrec_dim",
            "max_len",
            "epochs",
            "synthetic_users",
            "mqar_steps",
            "long_history_epochs",
        ):
            value = getattr(args, flag)
            if value is not None and value < 1:
                print(
                    f"error: --{flag.replace('_', '-')} must be >= 1, got {value}", file=sys.stderr
                )
                return 2
        if args.dataset is not None and args.dataset_card is not None:
            print("error: give one of --dataset and --dataset-card, not both", file=sys.stderr)
            return 2
        if args.lengths and any(n < 2 for n in args.lengths):
            print(f"error: --lengths must all be >= 2, got {args.lengths}", file=sys.stderr)
            return 2
        cfg = _config(args)
        try:
            cfg.check()
            limits = limits_from_args(args)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        cfg.stage_timeout_s = limits.timeout_s
        return _measure(args, cfg, limits)
    paths = write_outputs(doc, args.output_dir)
    print(to_markdown(doc))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _measure(args: argparse.Namespace, cfg, limits) -> int:
    """A measured board: isolated stages, journaled rows, one run per output at a time."""
    from dataclasses import asdict
    from pathlib import Path

    from harness.leaderboard import run_leaderboard, to_markdown, write_outputs
    from harness.results import config_hash
    from harness.runner.isolation import IsolatedRunner
    from harness.runner.journal import JournalError, OutputLock, RunJournal

    output = Path(args.output_dir) / "leaderboard.json"
    identity = {
        **{k: v for k, v in asdict(cfg).items() if k != "stage_timeout_s"},
        "methods": args.methods,
        "plugins": args.plugin,
        "conformance": not args.no_conformance,
    }
    journal = None
    try:
        with OutputLock(output), IsolatedRunner(limits) as runner:
            journal = RunJournal(output, config_hash(identity), resume=args.resume)
            if journal.resumed:
                print(f"resuming: {journal.resumed} method(s) already in {journal.path}")
            doc = run_leaderboard(
                cfg,
                methods=args.methods,
                plugins=args.plugin,
                progress=not args.no_progress,
                conformance=not args.no_conformance,
                runner=runner,
                journal=journal,
            )
            paths = write_outputs(doc, args.output_dir)
            journal.finish()
    except JournalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, TypeError) as exc:
        if journal is not None:  # refused before its first row: leave nothing behind
            journal.discard_if_empty()
        source = (
            f"--dataset-card {cfg.dataset_card}" if cfg.dataset_card else f"--dataset {cfg.dataset}"
        )
        where = f"{source}: " if isinstance(exc, FileNotFoundError) else ""
        print(f"error: {where}{exc}", file=sys.stderr)
        return 2
    print(to_markdown(doc))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    failed = [r for r in doc["rows"] if r.get("status") == "failed"]
    for r in failed:
        reasons = [n for n in r.get("notes", []) if n] or [r["conformance"].get("reason", "")]
        print(f"FAILED {r['method']}: {'; '.join(reasons)}", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="rank attention methods: conformance, error, speed, scaling, downstream quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="add (and submit) an unpublished registry method (repeatable)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="grid leaderboard-quick (L <= 16,384), synthetic data"
    )
    parser.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=None,
        help="your own L grid for the speed cases (the named grid's caps still apply: the "
        "float64 oracle stops at 4,096)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="most timed calls per length (default 3; full 5)"
    )
    parser.add_argument(
        "--dataset",
        choices=("synthetic", "ml-100k", "ml-1m"),
        default=None,
        help="downstream data (default: synthetic with --quick, else ml-1m)",
    )
    parser.add_argument(
        "--dataset-card",
        default=None,
        metavar="FILE",
        help="downstream data from your own interactions: a JSON dataset card (path, format, "
        "columns; see docs/data.md, 'Bring your own data')",
    )
    parser.add_argument("--seqrec-dim", type=int, default=None, help="model width D")
    parser.add_argument("--max-len", type=int, default=None, help="sequence window")
    parser.add_argument("--epochs", type=int, default=None, help="max training epochs")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="downstream training seeds (default 0)"
    )
    parser.add_argument(
        "--mqar-lengths",
        type=int,
        nargs="+",
        default=[],
        help="associative-recall column: lengths (default 256; 256 1024 without --quick)",
    )
    parser.add_argument(
        "--mqar-steps", type=int, default=None, help="associative-recall training steps (300)"
    )
    parser.add_argument(
        "--mqar-seeds",
        type=int,
        nargs="+",
        default=None,
        help="associative-recall seeds; with several, the column shows means with 95%% "
        "intervals and ties with sdpa (default: the first of --seeds)",
    )
    parser.add_argument("--no-mqar", action="store_true", help="leave out the MQAR column")
    parser.add_argument(
        "--long-history-len",
        type=int,
        default=None,
        help="long-history columns: the downstream model again with this window (must exceed "
        "--max-len; default: off with --quick, 1000 without)",
    )
    parser.add_argument(
        "--long-history-epochs",
        type=int,
        default=None,
        help="training epochs of the long-history run (5 with --quick, 25 without)",
    )
    parser.add_argument(
        "--no-long-history", action="store_true", help="leave out the long-history columns"
    )
    parser.add_argument(
        "--synthetic-users",
        type=int,
        default=None,
        help="users of the synthetic data (default 600)",
    )
    parser.add_argument(
        "--synthetic-items",
        type=int,
        default=None,
        help="items of the synthetic data (default 300)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--no-conformance", action="store_true", help="skip the suite (debug)")
    parser.add_argument(
        "--output-dir", default="results", help="folder for leaderboard.{json,md,html}"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="merge leaderboard documents (validated against the JSON Schema) instead of "
        "measuring; rows of different data sets, L grids or configurations are refused",
    )
    parser.add_argument(
        "--allow-mixed",
        action="store_true",
        help="with --merge: rank rows of different data sets, L grids or configurations "
        "together anyway (the merged document lists what differs under 'mixed')",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_isolation_arguments(parser, timeout_s=3600.0)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished board of this configuration from its journal",
    )
    parser.set_defaults(func=run)
