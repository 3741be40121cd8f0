"""Command-line entry point. Each sub-command lives in its own module under
``harness/commands`` and exposes ``register(subparsers)``, which adds its parser and
sets ``func`` (a callable taking the parsed namespace and returning an exit code)."""

from __future__ import annotations

import argparse
import importlib

# One line per sub-command module; add yours here.
COMMAND_MODULES = (
    "harness.commands.bench",
    "harness.commands.memray_report",
    "harness.commands.regress",
    "harness.commands.methods",
    "harness.commands.graph",
    "harness.commands.fetch_data",
    "harness.commands.seqrec",
    "harness.commands.leaderboard",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Oracle harness and benchmark suite for efficient attention and "
        "heterogeneous neighbourhood sampling.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
