"""The offline asv dashboard: CDN tags of asv's page rewritten to vendored npm files.

No test downloads: tarballs are built here, their integrity computed, and placed in a
temporary cache; ``offline=True`` makes any attempt to reach the registry an error.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.bench.asv_dashboard import (
    VENDOR,
    VendorFile,
    VendorIntegrityError,
    external_references,
    make_offline,
)


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _synthetic_vendor(cache: Path, entries: tuple[VendorFile, ...]) -> tuple[VendorFile, ...]:
    """Same entries, each package's tarball built here (member content = its local name)."""
    members: dict[str, dict[str, bytes]] = {}
    for entry in entries:
        members.setdefault(entry.tarball_name, {})[entry.member] = entry.local.encode()
    cache.mkdir(parents=True, exist_ok=True)
    integrity = {}
    for name, files in members.items():
        data = _tarball(files)
        (cache / name).write_bytes(data)
        integrity[name] = _integrity(data)
    return tuple(replace(e, integrity=integrity[e.tarball_name]) for e in entries)


PAGE = """<html><head>
<script src="https://cdn.example/lib.min.js" integrity="sha256-x" crossorigin="anonymous"
  onerror="js_load_failure()"></script>
<link rel="stylesheet" href="https://cdn.example/style.css" integrity="sha256-y">
<script src="local.js"></script>
</head><body>dashboard</body></html>
"""
ENTRIES = (
    VendorFile("https://cdn.example/lib.min.js", "lib", "1.0.0", "", "package/lib.js", "lib.js"),
    VendorFile("https://cdn.example/style.css", "lib", "1.0.0", "", "package/s.css", "s.css"),
)


def test_cdn_tags_become_local_files_with_the_tarball_content(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(PAGE)
    vendor = _synthetic_vendor(tmp_path / "cache", ENTRIES)
    names = make_offline(html, cache=tmp_path / "cache", vendor=vendor, offline=True)
    assert names == ["lib.js", "s.css"]
    page = (html / "index.html").read_text()
    assert external_references(page) == []
    assert '<script src="vendor/lib.js"></script>' in page
    assert '<link rel="stylesheet" href="vendor/s.css">' in page
    assert '<script src="local.js"></script>' in page  # local tags untouched
    assert (html / "vendor" / "lib.js").read_bytes() == b"lib.js"
    assert (html / "vendor" / "s.css").read_bytes() == b"s.css"
    # idempotent: a second run finds nothing left to vendor and changes nothing
    assert make_offline(html, cache=tmp_path / "cache", vendor=vendor, offline=True) == []
    assert (html / "index.html").read_text() == page


def test_a_cached_tarball_with_the_wrong_integrity_is_refused(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(PAGE)
    vendor = _synthetic_vendor(tmp_path / "cache", ENTRIES)
    tampered = tuple(replace(e, integrity=_integrity(b"other")) for e in vendor)
    with pytest.raises(VendorIntegrityError, match="pinned integrity"):
        make_offline(html, cache=tmp_path / "cache", vendor=tampered, offline=True)
    assert external_references((html / "index.html").read_text())  # page not rewritten


def test_an_unknown_external_address_is_named_and_the_page_kept(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(PAGE)
    with pytest.raises(ValueError, match=r"https://cdn\.example/style\.css"):
        make_offline(html, cache=tmp_path / "cache", vendor=ENTRIES[:1], offline=True)
    assert (html / "index.html").read_text() == PAGE


def test_offline_without_a_cached_tarball_says_so(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(PAGE)
    with pytest.raises(FileNotFoundError, match="lib@1.0.0 is not cached"):
        make_offline(html, cache=tmp_path / "empty", vendor=ENTRIES, offline=True)


def test_a_folder_without_a_published_page_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="asv publish"):
        make_offline(tmp_path, cache=tmp_path, vendor=ENTRIES, offline=True)


def test_the_table_covers_every_cdn_address_of_the_installed_asv_page(tmp_path):
    """Fails when an asv upgrade adds, drops or changes a CDN reference."""
    asv = pytest.importorskip("asv")
    page = Path(asv.__file__).parent / "www" / "index.html"
    if not page.is_file():
        pytest.skip(f"asv {asv.__version__} ships no www/index.html")
    addresses = external_references(page.read_text(encoding="utf-8"))
    assert sorted(addresses) == sorted(entry.cdn for entry in VENDOR)
    # and the real page is fully rewritten (tarballs built here, same members)
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    vendor = _synthetic_vendor(tmp_path / "cache", VENDOR)
    names = make_offline(html, cache=tmp_path / "cache", vendor=vendor, offline=True)
    assert len(names) == len(VENDOR)
    rewritten = (html / "index.html").read_text(encoding="utf-8")
    assert external_references(rewritten) == []
    assert "https://" not in rewritten.split("<body")[0].replace("https://github.com", "")
