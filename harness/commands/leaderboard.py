"""``python -m harness leaderboard``: rank efficient-attention methods.

Per method, in this order: the conformance suite (a method that fails gets no speed
score), error against exact attention on seeded workloads, time and memory on an L grid
as ratios against SDPA from the same run, fitted exponents, crossover length, and
downstream HR@10/NDCG@10 of the SASRec-style model. ``--quick``: L = 256..1024, synthetic
data (or ``--dataset ml-100k``); full: L = 1024..8192, MovieLens-1M at D = 128, max length
200 (fetch it first: ``python -m harness fetch-data ml-1m``).

Writes ``results/leaderboard.{json,md,html}`` (``--output-dir``); ``--merge A.json B.json``
merges documents from several machines instead of measuring. Examples:

    python -m harness leaderboard --quick --methods sdpa lisa-base performer
    python -m harness leaderboard --quick --plugin mypkg.attn:SPEC
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "run"]


def _config(args):
    from harness.leaderboard import LeaderboardConfig

    cfg = LeaderboardConfig() if args.quick else LeaderboardConfig.full()
    overrides = {
        "lengths": tuple(args.lengths) if args.lengths else None,
        "dim": args.dim,
        "repeats": args.repeats,
        "dataset": args.dataset,
        "seqrec_dim": args.seqrec_dim,
        "seqrec_max_len": args.max_len,
        "seqrec_epochs": args.epochs,
        "seeds": tuple(args.seeds) if args.seeds else None,
        "synthetic_users": args.synthetic_users,
        "synthetic_items": args.synthetic_items,
        "threads": args.threads,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def run(args: argparse.Namespace) -> int:
    from harness.leaderboard import merge_documents, run_leaderboard, to_markdown, write_outputs

    if args.merge:
        try:
            docs = [json.loads(Path(p).read_text()) for p in args.merge]
            doc = merge_documents(*docs)
        except (OSError, ValueError) as exc:
            print(f"error: --merge: {exc}", file=sys.stderr)
            return 2
    else:
        for flag in ("dim", "repeats", "seqrec_dim", "max_len", "epochs", "synthetic_users"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                print(
                    f"error: --{flag.replace('_', '-')} must be >= 1, got {value}", file=sys.stderr
                )
                return 2
        if args.lengths and any(n < 2 for n in args.lengths):
            print(f"error: --lengths must all be >= 2, got {args.lengths}", file=sys.stderr)
            return 2
        cfg = _config(args)
        try:
            cfg.check()
            doc = run_leaderboard(
                cfg,
                methods=args.methods,
                plugins=args.plugin,
                progress=not args.no_progress,
                conformance=not args.no_conformance,
            )
        except FileNotFoundError as exc:
            print(f"error: --dataset {cfg.dataset}: {exc}", file=sys.stderr)
            return 2
        except (ValueError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    paths = write_outputs(doc, args.output_dir)
    print(to_markdown(doc))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="rank attention methods: conformance, error, speed, scaling, downstream quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:ATTR")
    parser.add_argument("--quick", action="store_true", help="small grid, synthetic data")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="the L grid")
    parser.add_argument("--dim", type=int, default=None, help="head dim for the speed grid")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--dataset", choices=("synthetic", "ml-100k", "ml-1m"), default=None)
    parser.add_argument("--seqrec-dim", type=int, default=None, help="model width D")
    parser.add_argument("--max-len", type=int, default=None, help="sequence window")
    parser.add_argument("--epochs", type=int, default=None, help="max training epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--synthetic-users", type=int, default=None)
    parser.add_argument("--synthetic-items", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-conformance", action="store_true", help="skip the suite (debug)")
    parser.add_argument("--output-dir", default="results")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)
