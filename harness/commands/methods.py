"""``python -m harness methods``: print the method registry with availability.

Lists the built-in methods, those published through the ``lisa_bench.attention`` entry-point
group, and any ``module:attr`` given with ``--method`` (or in ``LISA_BENCH_METHODS``).
A bad ``module:attr`` reference is an error (one line naming it and why, exit status 2);
a broken entry point is skipped and reported on stderr. The default table has the
columns that fit in 100 characters (name, kind, modes, expected time and memory
exponents, budget hyperparameter, learned state, availability), with the reasons for
unavailability below it; ``-v`` prints every column.
"""

from __future__ import annotations

import argparse
import sys

from impls import registry


def run(args: argparse.Namespace) -> int:
    try:
        specs = registry.all_methods(args.plugin)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(registry.format_table(specs, verbose=args.verbose))
    _, failures = registry.entry_point_methods(
        reserved=[s.name for s in registry.builtin_methods()]
    )
    for name, reason in failures:
        print(f"entry point {name!r} could not be loaded: {reason}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "methods",
        help="list registered attention methods and whether they can run here",
        description=__doc__,
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="also list an unpublished method (a MethodSpec or a callable returning one); "
        "repeatable",
    )
    parser.add_argument(  # the old spelling, kept working; --plugin everywhere now
        "--method", action="append", dest="plugin", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="the wide table: every column (family, padding, dtypes, devices, max head dim, "
        "hyperparameters, why a method is unavailable), then each method's source, paper "
        "and oracle identity; without it, a table under 100 columns",
    )
    parser.set_defaults(func=run)
