"""Bring your own interactions: CSV/TSV/Parquet files with a column mapping, dataset cards,
and data sets registered through the ``lisa_bench.datasets`` entry points (all on tiny
files written here; nothing is downloaded)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
import types

import pytest

from harness.cli import main
from harness.datasets import registry
from harness.datasets.cache import read_interactions
from harness.datasets.user_files import (
    DataFileError,
    InteractionColumns,
    load_interactions,
    read_interactions_file,
    read_table,
)
from harness.seqrec.sequences import SeqRecData, build_sequences

# the worked example of docs/data.md: two listeners, five plays each, ISO times
PLAYS = """uid,song,ts
ana,intro,2024-05-01T10:00:00
ana,blue,2024-05-01T10:04:00
ana,dawn,2024-05-01T10:09:00
ana,echo,2024-05-01T10:13:00
ana,fern,2024-05-01T10:18:00
ben,blue,2024-05-02T20:00:00
ben,dawn,2024-05-02T20:03:00
ben,gold,2024-05-02T20:07:00
ben,haze,2024-05-02T20:12:00
"""
COLUMNS = "user=uid,item=song,time=ts"
FAST = ["--negatives", "2", "--epochs", "1", "--dim", "8", "--max-len", "4", "--no-progress"]


@pytest.fixture
def plays(tmp_path):
    path = tmp_path / "plays.csv"
    path.write_text(PLAYS)
    return path


def test_csv_with_a_column_mapping_gives_the_protocols_sequences(plays):
    events = read_interactions_file(plays, columns=InteractionColumns.parse(COLUMNS))
    assert events[0][:2] == ("ana", "intro") and len(events) == 9
    data = load_interactions(plays, columns=InteractionColumns.parse(COLUMNS))
    assert data.users == ["ana", "ben"] and data.num_items == 7
    assert data.item_tokens[:3] == ["intro", "blue", "dawn"]
    assert data.checksum == hashlib.sha256(plays.read_bytes()).hexdigest()
    assert data.name == "plays.csv"


def test_times_may_be_numbers_or_iso_dates_and_ties_keep_file_order(tmp_path):
    f = tmp_path / "mixed.csv"
    f.write_text("u,i,t\nx,late,2024-01-02\nx,first,1\nx,tie-a,5\nx,tie-b,5.0\n")
    events = read_interactions_file(f, columns=InteractionColumns("u", "i", "t"))
    assert [e[2] for e in events[1:]] == [1.0, 5.0, 5.0] and events[0][2] > 1e9
    data = build_sequences(events)
    assert data.item_tokens == ["first", "tie-a", "tie-b", "late"]  # stable sort on time


def test_no_time_column_keeps_the_file_order(tmp_path):
    f = tmp_path / "order.csv"
    f.write_text("user,item\nu,c\nu,a\nu,b\n")
    cols = InteractionColumns.parse("user=user,item=item,time=")
    assert cols.time is None
    assert [e[1] for e in read_interactions_file(f, columns=cols)] == ["c", "a", "b"]


def test_atomic_tsv_files_still_read_with_the_default_columns(tmp_path):
    f = tmp_path / "x.inter"
    f.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\tA B\t5\t10\n")
    assert read_interactions_file(f) == [("u1", "A B", 10.0)]
    g = tmp_path / "x.data"  # an unknown suffix: the header decides (a tab means TSV)
    g.write_text('user_id\titem_id\ttimestamp\nu\t"quoted, kept"\t3\n')
    assert read_interactions_file(g) == [("u", '"quoted, kept"', 3.0)]
    odd = tmp_path / "odd.inter"  # CRLF, a padded title, quotes, a blank line
    odd.write_bytes(
        b"user_id:token\titem_id:token\ttimestamp:float\r\n"
        b'1m_1\t "Heat" (1995) \t3\r\n\r\n1m_2\tit\'s\t1e9\r\n'
    )
    assert read_interactions_file(odd) == read_interactions(odd)  # as the atomic reader
    h = tmp_path / "q.csv"
    h.write_text('user_id,item_id,timestamp\nu,"a, b",3\n')
    assert read_interactions_file(h) == [("u", "a, b", 3.0)]


def test_errors_name_the_argument_and_what_was_expected(tmp_path, plays):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataFileError, match=rf"^--inter: no such file {missing}$"):
        read_interactions_file(missing)
    with pytest.raises(DataFileError) as raised:
        read_interactions_file(plays, columns=InteractionColumns.parse("user=user_id"))
    text = str(raised.value)
    assert text.startswith(f"--inter {plays}: no column 'user_id' (the user column)")
    assert "columns found: 'uid', 'song', 'ts'" in text
    bad = tmp_path / "bad.csv"
    bad.write_text("u,i,t\nx,y,noon\n")
    with pytest.raises(DataFileError, match=r"bad.csv:2: the time column 't' holds 'noon'"):
        read_interactions_file(bad, columns=InteractionColumns("u", "i", "t"))
    bad.write_text("u,i,t\nx,y\n")
    with pytest.raises(DataFileError, match=r"bad.csv:2: 2 fields, expected 3"):
        read_interactions_file(bad, columns=InteractionColumns("u", "i", "t"))
    for text in ("user", "who=uid", "user=a,user=b", "item="):
        with pytest.raises(DataFileError, match=r"^--columns: "):
            InteractionColumns.parse(text)


def _no_parquet_readers(monkeypatch):
    for name in ("pyarrow", "pyarrow.parquet", "pandas"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def test_parquet_without_pyarrow_names_the_missing_package(tmp_path, monkeypatch):
    _no_parquet_readers(monkeypatch)
    f = tmp_path / "plays.parquet"
    f.write_bytes(b"PAR1")
    with pytest.raises(DataFileError, match=r"^--inter .*plays.parquet: reading Parquet needs "):
        read_interactions_file(f)
    with pytest.raises(DataFileError, match=r"'pyarrow' package \(pip install pyarrow\)"):
        read_table(f, source="--inter")


def test_parquet_is_read_through_pyarrow(tmp_path, monkeypatch):
    import datetime as dt

    columns = {
        "uid": [7, 7, 7],
        "song": ["a", "b", "c"],
        "ts": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 3), dt.datetime(2024, 1, 2)],
    }
    table = types.SimpleNamespace(to_pydict=lambda: columns)
    parquet = types.ModuleType("pyarrow.parquet")
    parquet.read_table = lambda path: table
    pyarrow = types.ModuleType("pyarrow")
    pyarrow.parquet = parquet
    monkeypatch.setitem(sys.modules, "pyarrow", pyarrow)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", parquet)
    f = tmp_path / "plays.pq"
    f.write_bytes(b"PAR1")
    events = read_interactions_file(f, columns=InteractionColumns.parse(COLUMNS))
    assert [(u, i) for u, i, _ in events] == [("7", "a"), ("7", "b"), ("7", "c")]
    assert events[1][2] - events[0][2] == 2 * 86400.0


def _card(tmp_path, **fields):
    card = tmp_path / "card.json"
    card.write_text(json.dumps(fields))
    return card


def test_a_dataset_card_names_file_format_columns_and_name(tmp_path, plays):
    renamed = plays.rename(tmp_path / "plays.data")  # the card's format wins over the suffix
    card = _card(
        tmp_path,
        name="my-plays",
        path="plays.data",
        format="csv",
        columns={"user": "uid", "item": "song", "time": "ts"},
    )
    data = load_interactions(card=card)
    assert data.name == "my-plays" and data.users == ["ana", "ben"]
    assert data.checksum == hashlib.sha256(renamed.read_bytes()).hexdigest()


def test_dataset_card_errors(tmp_path, plays):
    with pytest.raises(DataFileError, match=r"^--dataset-card: no such file "):
        load_interactions(card=tmp_path / "none.json")
    card = _card(tmp_path, path="plays.csv", colums={})
    with pytest.raises(DataFileError, match=r"unknown key\(s\) \['colums'\]"):
        load_interactions(card=card)
    card = _card(tmp_path, path="gone.csv")
    with pytest.raises(DataFileError, match=r"card.json: path: no such file .*gone.csv"):
        load_interactions(card=card)
    card = _card(tmp_path, relations=[], node_types={}, task={})
    with pytest.raises(DataFileError, match=r"this is a graph card .*harness graph"):
        load_interactions(card=card)
    card.write_text("{not json")
    with pytest.raises(DataFileError, match=r"not valid JSON \(line 1 column 2"):
        load_interactions(card=card)


@pytest.mark.parametrize("form", ["inter", "card"])
def test_seqrec_command_trains_on_ones_own_file(tmp_path, plays, capsys, form):
    if form == "inter":
        given = ["--inter", str(plays), "--columns", COLUMNS]
    else:
        card = _card(
            tmp_path, name="my-plays", path="plays.csv", columns={"user": "uid", "item": "song"}
        )
        given = ["--dataset-card", str(card)]
        (tmp_path / "plays.csv").write_text(PLAYS.replace("uid,song,ts", "uid,song,timestamp"))
    assert main(["seqrec", "--method", "sdpa", *given, *FAST]) == 0
    out = capsys.readouterr().out
    assert ("plays.csv" if form == "inter" else "my-plays") in out
    assert "2 users, 7 items" in out and "HR@10" in out


def test_seqrec_command_reports_bad_data_arguments(tmp_path, plays, capsys):
    cases = [
        (["--inter", str(tmp_path / "x.csv")], f"error: --inter: no such file {tmp_path}"),
        (["--inter", str(plays), "--columns", "user=who"], "columns found: 'uid', 'song', 'ts'"),
        (["--columns", COLUMNS], "--columns applies to --inter"),
        (["--inter", str(plays), "--dataset", "ml-1m"], "not --dataset and --inter"),
        (["--inter", str(plays), "--columns", COLUMNS, "--negatives", "5"], "lower --negatives"),
        (["--dataset", "nope"], "--dataset nope: no data set 'nope'"),
    ]
    for args, expected in cases:
        assert main(["seqrec", *args, "--epochs", "1", "--no-progress"]) == 2, args
        assert expected in capsys.readouterr().err, args


class FakeEntryPoint:
    def __init__(self, name, obj):
        self.name, self.value, self.group, self._obj = name, f"fake_pkg:{name}", "g", obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def _register(monkeypatch, **objects):
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        if kwargs.get("group") != registry.ENTRY_POINT_GROUP:
            return real(**kwargs)
        return [FakeEntryPoint(name, obj) for name, obj in objects.items()]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _tiny_sequences(seed=0) -> SeqRecData:
    events = [(f"u{u}", f"i{(u + t) % 9}", float(t)) for u in range(6) for t in range(5)]
    return build_sequences(events, name=f"tiny-{seed}")


def test_registered_data_sets_are_found_through_entry_points(monkeypatch):
    _register(
        monkeypatch,
        tiny=_tiny_sequences,
        ready=_tiny_sequences(),
        broken=ImportError("no module fake_pkg"),
        wrong=lambda: 42,
    )
    assert sorted(registry.registered_datasets()) == ["broken", "ready", "tiny", "wrong"]
    data = registry.load_registered_dataset("tiny", seed=3, kinds=(SeqRecData,))
    assert data.name == "tiny-3"  # a callable taking seed gets it
    assert registry.load_registered_dataset("ready", kinds=(SeqRecData,)).name == "tiny-0"
    with pytest.raises(registry.DatasetPluginError, match=r"'broken' \(fake_pkg:broken\) failed"):
        registry.load_registered_dataset("broken")
    with pytest.raises(registry.DatasetPluginError, match=r"returned int; .* needs SeqRecData"):
        registry.load_registered_dataset("wrong", kinds=(SeqRecData,))
    with pytest.raises(registry.DatasetPluginError, match=r"registered: broken, ready, tiny"):
        registry.load_registered_dataset("other")


def test_seqrec_command_runs_a_registered_data_set(monkeypatch, capsys):
    _register(monkeypatch, tiny=_tiny_sequences)
    assert main(["seqrec", "--method", "sdpa", "--dataset", "tiny", *FAST]) == 0
    assert "sdpa on tiny-0 (seed 0; 6 users, 9 items" in capsys.readouterr().out


def test_the_worked_example_in_the_docs_is_this_one():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    section = text[text.index("## Bring your own data") :]
    assert PLAYS.strip() in section
    assert "--columns user=uid,item=song,time=ts --negatives 2" in section
