"""Command-line entry point. Each sub-command lives in its own module under
``harness/commands`` and exposes ``register(subparsers)``, which adds its parser and
sets ``func`` (a callable taking the parsed namespace and returning an exit code).

``register`` must not resolve the method registry (no ``registry.all_methods()``, no
import of a module that calls it at import time): plugins named in ``LISA_BENCH_METHODS``
are imported only by the commands that use methods, when they run. A bad plugin reference
that reaches :func:`main` (an ``impls.registry.PluginError``) is printed as one line,
``error: method plugin 'mod:attr' (from LISA_BENCH_METHODS): <reason>``, exit status 2.

Help output is formatted centrally (:class:`HelpParser`, the class of every sub-command
parser): each option's default is shown (``argparse.ArgumentDefaultsHelpFormatter``,
except where the help text already names it or the default is empty), options without
help text still show their default, and reStructuredText markup in descriptions and help
(double backticks, ``:func:`` roles) is shown as plain single backticks. The package is
also installed as the console script ``lisa-bench``; ``--version`` prints its version.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib
import importlib.metadata
import os
import re
import sys

# One line per sub-command module; add yours here.
COMMAND_MODULES = (
    "harness.commands.bench",
    "harness.commands.memray_report",
    "harness.commands.regress",
    "harness.commands.methods",
    "harness.commands.graph",
    "harness.commands.fetch_data",
    "harness.commands.seqrec",
    "harness.commands.seqrec_table",
    "harness.commands.leaderboard",
    "harness.commands.conformance",
    "harness.commands.gpu_run",
    "harness.commands.associative_recall",
    "harness.commands.mqar_summary",
    "harness.commands.asv_dashboard",
)


_RST_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|obj|exc):`")


def plain_text(text: str) -> str:
    """Help text as a terminal shows it: ``x`` and :func:`x` become `x`."""
    return _RST_ROLE.sub("`", text).replace("``", "`")


def _shows_default(action: argparse.Action) -> bool:
    default = action.default
    if not action.option_strings or default is argparse.SUPPRESS:
        return False
    return default not in (None, False, "", [], ())


class _PlainHelp:
    """Formatter mix-in: plain backticks, and every option's default shown once."""

    def _format_text(self, text):
        return super()._format_text(plain_text(text))

    def _expand_help(self, action):
        return plain_text(super()._expand_help(action))

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower() or not _shows_default(action):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def add_argument(self, action):
        if not action.help and action.help is not argparse.SUPPRESS and _shows_default(action):
            action = copy.copy(action)  # an option without help still shows its default
            action.help = "default: %(default)s"
        super().add_argument(action)


@functools.cache
def plain_formatter(base: type[argparse.HelpFormatter]) -> type[argparse.HelpFormatter]:
    """``base`` (e.g. a command's ``RawDescriptionHelpFormatter``) with defaults shown
    (``ArgumentDefaultsHelpFormatter``) and reStructuredText backticks made plain."""
    if issubclass(base, _PlainHelp):
        return base
    defaults = argparse.ArgumentDefaultsHelpFormatter
    bases = (_PlainHelp, base) if issubclass(base, defaults) else (_PlainHelp, defaults, base)
    return type(f"Plain{base.__name__}", bases, {})


class HelpParser(argparse.ArgumentParser):
    """An ArgumentParser whose help formatter, whatever a command asks for, is wrapped by
    :func:`plain_formatter`; ``add_subparsers`` makes every sub-command parser one too."""

    def __init__(self, *args, formatter_class=argparse.HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=plain_formatter(formatter_class), **kwargs)


def version() -> str:
    """``lisa-bench <version>`` of the installed distribution."""
    try:
        return f"lisa-bench {importlib.metadata.version('lisa-bench')}"
    except importlib.metadata.PackageNotFoundError:
        return "lisa-bench (version unknown: the package is not installed)"


def build_parser() -> argparse.ArgumentParser:
    script = os.path.basename(sys.argv[0] or "")
    parser = HelpParser(
        prog="lisa-bench" if script == "lisa-bench" else "python -m harness",
        description="Oracle harness and benchmark suite for efficient attention and "
        "heterogeneous neighbourhood sampling.",
    )
    parser.add_argument("--version", action="version", version=version())
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from impls.registry import PluginError

    try:
        return int(args.func(args) or 0)
    except PluginError as exc:  # a bad module:attr method reference: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
