"""``python -m harness asv-dashboard``: make ``asv publish``'s dashboard work offline.

asv 0.6 writes a page that loads jQuery, flot (and four plugins), stupidtable,
blueimp-md5 and Bootstrap 3 from CDNs; offline it shows only its error screen. This
command fetches those libraries once from the npm registry (version-pinned tarballs,
checked against their sha512 integrity, cached in ``$LISA_BENCH_DATA/asv-vendor``),
copies them into ``HTML/vendor/`` and rewrites the page's tags to load them from there.
Run it after ``asv publish``; ``python -m http.server -d .asv/html`` then serves a
dashboard that needs no network. ``--offline`` uses only the cache.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    from harness.bench.asv_dashboard import VendorIntegrityError, make_offline, vendor_cache

    cache = args.cache or vendor_cache()
    try:
        names = make_offline(args.html, cache=cache, offline=args.offline)
    except (OSError, ValueError, VendorIntegrityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    listed = ", ".join(names) if names else "nothing (no CDN references left)"
    print(f"{args.html}: vendored {listed} (cache {cache})")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "asv-dashboard",
        help="vendor the asv dashboard's CDN scripts so the published site works offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--html",
        default=".asv/html",
        help="folder written by `asv publish` (default: %(default)s)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help="tarball cache (default: $LISA_BENCH_DATA/asv-vendor)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="use only cached tarballs; fail naming any that is missing",
    )
    parser.set_defaults(func=run)
