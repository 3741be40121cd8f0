"""``python -m harness methods``: print the method registry with availability.

Lists the built-in methods, those published through the ``lisa_bench.attention`` entry-point
group, and any ``module:attr`` given with ``--method`` (or in ``LISA_BENCH_METHODS``).
"""

from __future__ import annotations

import argparse
import sys

from impls import registry


def run(args: argparse.Namespace) -> int:
    try:
        specs = registry.all_methods(args.method)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(registry.format_table(specs, verbose=args.verbose))
    _, failures = registry.entry_point_methods()
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
        "--method",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="also list an unpublished method (a MethodSpec or a callable returning one); "
        "repeatable",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="add oracle identities and sources"
    )
    parser.set_defaults(func=run)
