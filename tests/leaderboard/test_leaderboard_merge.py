"""``leaderboard --merge``: documents checked against the JSON Schema, rows of different
data sets / L grids / configurations refused unless ``--allow-mixed``, and standard JSON
out (no bare NaN)."""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from leaderboard_rows import document, row

from harness.cli import main
from harness.leaderboard.store import (
    LeaderboardDocumentError,
    _fast_check,
    _validator,
    merge_documents,
    sanitize_document,
    validate_document,
)
from harness.results import write_json_atomic


def _strict_json(text: str):
    """json.loads that fails on the non-standard constants NaN, Infinity, -Infinity."""

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name} in the output")

    return json.loads(text, parse_constant=refuse)


def _merge(tmp_path, *docs, extra=()):
    paths = []
    for n, doc in enumerate(docs):
        path = tmp_path / f"doc{n}.json"
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        paths.append(str(path))
    out = tmp_path / "out"
    code = main(["leaderboard", "--merge", *paths, "--output-dir", str(out), *extra])
    return code, out / "leaderboard.json"


def _good():
    return document([row("sdpa", ndcg=0.3, speedup=1.0), row("lsh", ndcg=0.2, speedup=2.0)])


def test_schema_accepts_the_documents_the_harness_writes():
    validate_document(_good())
    merged = merge_documents(_good(), document([row("sdpa", "m2", ndcg=0.3)], "m2"))
    validate_document(merged)  # merged output (ranks, pareto, speedup set) is valid too


@pytest.mark.parametrize(
    ("break_it", "path", "says"),
    [
        (lambda d: d["rows"][1].__setitem__("method", 5), "$.rows[1].method", "not of type"),
        (lambda d: d["rows"][0].pop("machine"), "$.rows[0]", "'machine' is a required"),
        (lambda d: d["rows"][0]["speed"].__setitem__("lengths", [64, "x"]), "lengths[1]", ""),
        (lambda d: d["rows"][0]["conformance"].pop("status"), "conformance", "'status'"),
        (lambda d: d.__setitem__("rows", {"a": 1}), "$.rows", "not of type 'array'"),
        (lambda d: d.pop("machines"), "$", "'machines' is a required"),
        (lambda d: d["data_checksums"].__setitem__("synthetic", 7), "$.data_checksums", ""),
    ],
)
def test_malformed_documents_exit_2_naming_file_path_and_problem(
    tmp_path, capsys, break_it, path, says
):
    bad = _good()
    break_it(bad)
    code, out = _merge(tmp_path, _good(), bad)
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "doc1.json" in err and path in err and says in err
    assert "doc0.json" not in err  # the good document is not blamed
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "is not of type 'object'"),
        ("", "not valid JSON"),
        ('{"schema_version": 1}', "is a required property"),
        ('{"schema_version": 2, "rows": []}', "$.schema_version is 2"),
    ],
)
def test_unreadable_documents_exit_2(tmp_path, capsys, text, says):
    code, _ = _merge(tmp_path, _good(), text)
    err = capsys.readouterr().err
    assert code == 2 and "doc1.json" in err and says in err and "Traceback" not in err


def test_a_file_that_is_not_text_exits_2(tmp_path, capsys):
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00{\x80")
    code = main(["leaderboard", "--merge", str(tmp_path / "bin.json")])
    err = capsys.readouterr().err
    assert code == 2 and "bin.json: not valid JSON" in err


def test_a_missing_file_exits_2(tmp_path, capsys):
    code = main(["leaderboard", "--merge", str(tmp_path / "nope.json")])
    assert code == 2 and "nope.json" in capsys.readouterr().err


def test_many_errors_are_capped_and_counted():
    doc = document([row(f"m{i}") for i in range(40)])
    for r in doc["rows"]:
        r["method"] = 1
    with pytest.raises(LeaderboardDocumentError) as info:
        validate_document(doc, "big.json")
    text = str(info.value)
    assert "$.rows[0].method" in text and "$.rows[19].method" in text
    assert "$.rows[25].method" not in text and "and 1 more" in text  # 21 rows examined


def _on(doc, dataset=None, checksum=None, lengths=None, config=None):
    """``doc`` with every row moved to another data set / L grid / configuration."""
    doc = copy.deepcopy(doc)
    for r in doc["rows"]:
        if dataset is not None:
            r["downstream"]["dataset"] = dataset
            r["data_checksum"] = checksum
        if lengths is not None:
            r["speed"]["lengths"] = lengths
        if config is not None:
            r["config_hash"] = config
    if dataset is not None:
        doc["data_checksums"] = {dataset: checksum}
    if config is not None:
        doc["configs"] = {config: {"quick": True, "dim": 32}}
    return doc


def test_rows_of_different_data_sets_grids_or_configs_are_refused(tmp_path, capsys):
    a = document([row("sdpa", "m1", ndcg=0.3, speedup=1.0)], "m1")
    b = document([row("sdpa", "m2", ndcg=0.3, speedup=1.0)], "m2")
    cases = [
        (_on(b, dataset="ml-1m", checksum="e4bc9b95" * 8), "data set differs", "ml-1m"),
        (_on(b, lengths=[256, 512]), "L grid differs", "L = 256, 512"),
        (_on(b, config="c2"), "config hash differs", "settings that differ: dim"),
    ]
    for other, what, value in cases:
        code, out = _merge(tmp_path, a, other)
        err = capsys.readouterr().err
        assert code == 2 and what in err and value in err, err
        assert "doc0.json" in err and "doc1.json" in err and "--allow-mixed" in err
        assert not out.exists()
        with pytest.raises(LeaderboardDocumentError, match=what):
            merge_documents(a, other)


def test_allow_mixed_ranks_them_together_and_records_what_differs(tmp_path):
    a = document([row("sdpa", "m1", ndcg=0.3, speedup=1.0)], "m1")
    b = _on(document([row("sdpa", "m2", ndcg=0.4, speedup=1.0)], "m2"), lengths=[256, 512])
    code, out = _merge(tmp_path, a, b, extra=["--allow-mixed"])
    assert code == 0
    merged = _strict_json(out.read_text())
    assert [r["machine"] for r in merged["rows"]] == ["m2", "m1"]
    assert merged["mixed"] == {"L grid": ["L = 64, 128", "L = 256, 512"]}
    validate_document(merged)


def test_same_data_set_name_with_another_checksum_is_refused_unless_allowed():
    a = document([row("sdpa", "m1", ndcg=0.3)], "m1", checksum="a" * 64)
    b = document([row("sdpa", "m2", ndcg=0.3)], "m2", checksum="b" * 64)
    with pytest.raises(LeaderboardDocumentError, match="checksum"):
        merge_documents(a, b)
    merged = merge_documents(a, b, allow_mixed=True)
    assert merged["data_checksums"] == {"synthetic": "a" * 64, "synthetic@" + "b" * 12: "b" * 64}
    assert "data set" in merged["mixed"]


def _nan_doc():
    doc = document([row("sdpa", ndcg=0.3, speedup=1.0), row("lsh", ndcg=0.2, speedup=2.0)])
    lsh = doc["rows"][1] if doc["rows"][1]["method"] == "lsh" else doc["rows"][0]
    lsh["downstream"]["NDCG@10"] = math.nan
    lsh["speed"]["time_exponent"] = [1.0, -math.inf, math.inf]
    lsh["speed"]["memory_ratio"] = [1.0, math.inf]
    lsh["notes"] = ["measured"]
    doc["machines"]["m1"]["clock"] = math.nan
    return doc


def test_no_bare_nan_is_written_and_each_null_says_why(tmp_path, capsys):
    code, out = _merge(tmp_path, json.dumps(_nan_doc()))  # json.dumps writes bare NaN
    assert code == 0, capsys.readouterr().err
    text = out.read_text()
    merged = _strict_json(text)  # fails on a bare NaN / Infinity
    lsh = next(r for r in merged["rows"] if r["method"] == "lsh")
    assert lsh["downstream"]["NDCG@10"] is None
    assert lsh["speed"]["memory_ratio"] == [1.0, None]
    assert lsh["speed"]["time_exponent"] is None  # a fit with an infinite bound is dropped
    notes = lsh["notes"]
    assert notes[0] == "measured"
    assert any("downstream.NDCG@10 was NaN" in n and "null" in n for n in notes)
    assert any("speed.memory_ratio[1] was Infinity" in n for n in notes)
    assert any("speed.time_exponent had -Infinity" in n for n in notes)
    assert any("machines.m1.clock was NaN" in n for n in merged["notes"])
    assert not lsh["pareto"] and lsh["rank"] == 2  # NaN quality ranks as no quality
    validate_document(merged)
    # the written board merges again to the same ranking
    (tmp_path / "again").mkdir()
    code, again = _merge(tmp_path / "again", text)
    assert code == 0
    assert [r["method"] for r in _strict_json(again.read_text())["rows"]] == [
        r["method"] for r in merged["rows"]
    ]


def test_sanitize_document_leaves_the_input_alone():
    doc = _nan_doc()
    before = json.dumps(doc)
    clean = sanitize_document(doc)
    assert json.dumps(doc) == before
    _strict_json(json.dumps(clean, allow_nan=False))


def test_the_json_writer_never_writes_bare_nan(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": [1.0, math.nan], "b": {"c": -math.inf}, "d": "NaN"})
    data = _strict_json(path.read_text())
    assert data["a"] == [1.0, None] and data["b"] == {"c": None} and data["d"] == "NaN"
    assert data["nonfinite_as_null"] == {"$.a[1]": "NaN", "$.b.c": "-Infinity"}
    write_json_atomic(path, {"a": 1.5})
    assert _strict_json(path.read_text()) == {"a": 1.5}  # nothing added when all finite


# The compiled fast check must answer exactly as jsonschema does.

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, 1.0, 64.0, 2.5, -1.0])
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def test_the_schema_compiles_to_the_fast_check():
    assert _fast_check() is not None


@given(data=st.data())
def test_fast_check_agrees_with_jsonschema(data):
    doc = _good()
    doc["rows"][0]["downstream"]["dataset"] = "synthetic"
    for _ in range(data.draw(st.integers(1, 3))):
        paths = sorted(_paths(doc), key=repr)
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            key = data.draw(st.sampled_from(["extra", "lengths", "status", "NDCG@10", "rank"]))
            parent[path[-1]][key] = data.draw(_json_values)
        else:
            parent[path[-1]] = data.draw(_json_values)
    assert _fast_check()(doc) == _validator().is_valid(doc)


def test_merged_board_is_complete_only_if_every_part_is():
    a = {**document([row("sdpa", "m1", ndcg=0.3)], "m1"), "complete": True}
    b = {**document([row("sdpa", "m2", ndcg=0.3)], "m2"), "complete": False}
    assert merge_documents(a, a)["complete"] is True
    assert merge_documents(a, b)["complete"] is False
    assert "complete" not in merge_documents(document([row("sdpa", ndcg=0.3)]))
    with pytest.raises(LeaderboardDocumentError, match=r"\$\.complete"):
        validate_document({**a, "complete": "yes"})
