"""An asv dashboard that works offline: its CDN scripts vendored from the npm registry.

``asv publish`` (asv 0.6) writes ``index.html`` with ten ``<script>``/``<link>`` tags that
load jQuery, flot and four of its plugins, stupidtable, blueimp-md5 and Bootstrap 3 from
CDNs (code.jquery.com, cdnjs, jsdelivr). Without network the page shows only its error
screen. :func:`make_offline` fetches the same libraries once, as npm registry tarballs
pinned by version and checked against their published ``sha512`` integrity, copies the
needed file of each into ``<html>/vendor/`` and rewrites every such tag to the local copy.
A tag it does not know (a newer asv) is reported by name, never left to fail silently.

Tarballs are cached in ``$LISA_BENCH_DATA/asv-vendor`` (default
``~/.cache/lisa-bench/asv-vendor``), so the network is needed once per machine; a cached
tarball is re-verified before every use.

One substitution: cdnjs served stupidtable 1.0.1, which is not on the npm registry; 1.1.3
(the same plugin, same ``$.fn.stupidtable`` API) is used instead. The flot files are the
npm package's unminified sources of the same 0.8.3 release that cdnjs minified.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness.results import write_bytes_atomic, write_text_atomic

__all__ = [
    "VENDOR",
    "VendorFile",
    "VendorIntegrityError",
    "external_references",
    "fetch_tarball",
    "make_offline",
    "vendor_cache",
]

REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class VendorFile:
    """One CDN reference of asv's ``index.html`` and the npm file that replaces it.

    ``cdn`` is the exact ``src``/``href`` in the page; ``package``/``version`` name the npm
    tarball, ``integrity`` its ``sha512-<base64>`` from the registry's metadata, ``member``
    the path inside the tarball (``package/...``) and ``local`` the name under ``vendor/``.
    """

    cdn: str
    package: str
    version: str
    integrity: str
    member: str
    local: str

    @property
    def tarball_url(self) -> str:
        bare = self.package.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.package}/-/{bare}-{self.version}.tgz"

    @property
    def tarball_name(self) -> str:
        return f"{self.package.replace('/', '_')}-{self.version}.tgz"


_JQUERY = (
    "jquery",
    "3.3.1",
    "sha512-Ubldcmxp5np52/ENotGxlLe6aGMvmF4R8S6tZjsP6Knsaxd/xp3Zrh50cG93lR6nPXyUFwzN3ZSOQI0wRJNdGg==",
)
_FLOT = (
    "flot",
    "0.8.3",
    "sha512-xg2otcTJDvS+ERK+my4wxG/ASq90QURXtoM4LhacCq0jQW2jbyjdttbRNqU2cPykrpMvJ6b2uSp6SAgYAzj9tQ==",
)
_ORDERBARS = (
    "flot-orderbars",
    "1.0.0",
    "sha512-Jv51fvzevUjNXEeozpwEKfPjhiZhfiJddv0WHjduUTCmSF+7T5K7C9c9Y1wIVmUhDBv5fLMjgbwKecT0GIKPZA==",
)
_STUPIDTABLE = (
    "stupid-table-plugin",
    "1.1.3",
    "sha512-2Vk7XouQPxUQPRe9w0Fu7ZZ8kHLK7rDoLMsCgtKxRNJ7f4dSOGvW9CkHsq5wD6QsaEnWoyLBYH3xOEsrK3yWBg==",
)
_MD5 = (
    "blueimp-md5",
    "2.19.0",
    "sha512-DRQrD6gJyy8FbiE4s+bDoXS9hiW3Vbx5uCdwvcCf3zLHL+Iv7LtGHLpr+GZV8rHG8tK766FGYBwRbu8pELTt+w==",
)
_BOOTSTRAP = (
    "bootstrap",
    "3.1.1",
    "sha512-TAzqS8E/ISpVHP29gYhy+1NSV+FJwApDVQhDfgLYsIuUDJiqJzH2DfORN5tiu+Ie2iBLrzEG34t4Rf465cigqg==",
)
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"

#: asv 0.6's CDN references, in page order, and their npm replacements.
VENDOR: tuple[VendorFile, ...] = (
    VendorFile("https://code.jquery.com/jquery-3.3.1.min.js", *_JQUERY,
               "package/dist/jquery.min.js", "jquery.min.js"),
    VendorFile(f"{_CDNJS}/flot/0.8.3/jquery.flot.min.js", *_FLOT,
               "package/jquery.flot.js", "jquery.flot.js"),
    VendorFile(f"{_CDNJS}/flot/0.8.3/jquery.flot.time.min.js", *_FLOT,
               "package/jquery.flot.time.js", "jquery.flot.time.js"),
    VendorFile(f"{_CDNJS}/flot/0.8.3/jquery.flot.selection.min.js", *_FLOT,
               "package/jquery.flot.selection.js", "jquery.flot.selection.js"),
    VendorFile(f"{_CDNJS}/flot/0.8.3/jquery.flot.categories.min.js", *_FLOT,
               "package/jquery.flot.categories.js", "jquery.flot.categories.js"),
    VendorFile("https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js",
               *_ORDERBARS, "package/js/jquery.flot.orderBars.js", "jquery.flot.orderBars.js"),
    VendorFile(f"{_CDNJS}/stupidtable/1.0.1/stupidtable.min.js", *_STUPIDTABLE,
               "package/stupidtable.min.js", "stupidtable.min.js"),
    VendorFile(f"{_CDNJS}/blueimp-md5/2.19.0/js/md5.min.js", *_MD5,
               "package/js/md5.min.js", "md5.min.js"),
    VendorFile("https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js",
               *_BOOTSTRAP, "package/dist/js/bootstrap.min.js", "bootstrap.min.js"),
    VendorFile("https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css",
               *_BOOTSTRAP, "package/dist/css/bootstrap.min.css", "bootstrap.min.css"),
)  # fmt: skip

# A whole <script ...src="http(s)://..."...></script> or <link ...href="http(s)://..."...>
# tag; group "url" is the external address.
_EXTERNAL_TAG = re.compile(
    r"<script\b[^>]*?\bsrc=\"(?P<url>https?://[^\"]+)\"[^>]*>\s*</script>"
    r"|<link\b[^>]*?\bhref=\"(?P<css>https?://[^\"]+)\"[^>]*>",
    re.IGNORECASE,
)


class VendorIntegrityError(ValueError):
    """A fetched or cached tarball whose sha512 is not the pinned one."""


def vendor_cache() -> Path:
    """``$LISA_BENCH_DATA/asv-vendor`` (default ``~/.cache/lisa-bench/asv-vendor``)."""
    from harness.datasets.cache import data_dir

    return data_dir() / "asv-vendor"


def _sri_sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_tarball(entry: VendorFile, cache: Path, *, offline: bool = False) -> bytes:
    """The tarball of ``entry``, from ``cache`` or the npm registry, integrity-checked.

    Raises VendorIntegrityError when the bytes' sha512 differs from ``entry.integrity``
    (a cached file is then named so it can be removed), FileNotFoundError when
    ``offline`` and the tarball is not cached, OSError when the registry cannot be read.
    """
    path = cache / entry.tarball_name
    if path.is_file():
        data = path.read_bytes()
        if _sri_sha512(data) != entry.integrity:
            raise VendorIntegrityError(
                f"cached {path} does not match {entry.package}@{entry.version}'s pinned "
                f"integrity; delete it and run again"
            )
        return data
    if offline:
        raise FileNotFoundError(
            f"{entry.package}@{entry.version} is not cached in {cache} (offline: not fetched)"
        )
    with urllib.request.urlopen(entry.tarball_url, timeout=60) as response:  # noqa: S310
        data = response.read()
    if _sri_sha512(data) != entry.integrity:
        raise VendorIntegrityError(
            f"{entry.tarball_url} does not match its pinned integrity {entry.integrity}"
        )
    write_bytes_atomic(path, data)
    return data


def _member(data: bytes, entry: VendorFile) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        try:
            handle = archive.extractfile(entry.member)
        except KeyError:
            handle = None
        if handle is None:
            raise VendorIntegrityError(
                f"{entry.package}@{entry.version} has no file {entry.member}"
            )
        return handle.read()


def external_references(html: str) -> list[str]:
    """Every http(s) address a ``<script src>`` or ``<link href>`` tag of ``html`` loads."""
    return [m.group("url") or m.group("css") for m in _EXTERNAL_TAG.finditer(html)]


def make_offline(
    html_dir: str | os.PathLike,
    *,
    cache: str | os.PathLike | None = None,
    vendor: tuple[VendorFile, ...] = VENDOR,
    offline: bool = False,
) -> list[str]:
    """Vendor the dashboard's CDN files into ``html_dir/vendor`` and point the page at them.

    ``html_dir`` is what ``asv publish`` wrote (``index.html`` in it). Every ``.html`` file
    directly in it is rewritten (atomically) so that each known CDN tag loads
    ``vendor/<local>`` instead, without the CDN's ``integrity``/``crossorigin``
    attributes. Returns the vendored local names. Raises FileNotFoundError when
    ``html_dir/index.html`` is missing and ValueError naming the addresses a page would
    still load from the network after the rewrite (unknown to ``vendor``).
    """
    folder = Path(html_dir)
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(
            f"html_dir: {folder / 'index.html'} not found; run `asv publish` first"
        )
    by_url = {entry.cdn: entry for entry in vendor}
    pages = sorted(folder.glob("*.html"))
    needed: dict[str, VendorFile] = {}
    for page in pages:
        for url in external_references(page.read_text(encoding="utf-8")):
            if url not in by_url:
                raise ValueError(
                    f"{page.name} loads {url}, which has no vendored copy; "
                    f"known addresses: {sorted(by_url)}"
                )
            needed[url] = by_url[url]
    cache_dir = Path(cache) if cache is not None else vendor_cache()
    target = folder / "vendor"
    target.mkdir(exist_ok=True)
    tarballs: dict[str, bytes] = {}
    for entry in needed.values():
        key = entry.tarball_name
        if key not in tarballs:
            tarballs[key] = fetch_tarball(entry, cache_dir, offline=offline)
        write_bytes_atomic(target / entry.local, _member(tarballs[key], entry))

    def local_tag(match: re.Match) -> str:
        url = match.group("url")
        if url is not None:
            return f'<script src="vendor/{by_url[url].local}"></script>'
        return f'<link rel="stylesheet" href="vendor/{by_url[match.group("css")].local}">'

    for page in pages:
        text = page.read_text(encoding="utf-8")
        rewritten = _EXTERNAL_TAG.sub(local_tag, text)
        if rewritten != text:
            write_text_atomic(page, rewritten)
    return sorted(entry.local for entry in needed.values())
