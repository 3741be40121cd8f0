"""Bring your own graph: JSON graph cards over node tables and edge lists (form a) or
over the arrays of a HeteroData in an .npz (form b), the graph command on them, and graphs
registered through the ``lisa_bench.datasets`` entry points (tiny files written here)."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.datasets import (
    GraphTask,
    load_graph_card,
    make_synthetic_graph,
    registry,
    write_graph_arrays,
)
from harness.datasets.user_files import DataFileError

# the worked example of docs/data.md: artists with a genre, tags, similar artists
ARTISTS = """id,genre,listeners
radiohead,rock,9.1
muse,rock,7.4
coldplay,rock,8.8
blur,rock,5.2
oasis,rock,6.0
daft punk,electronic,8.0
aphex twin,electronic,3.9
justice,electronic,4.1
air,electronic,4.7
moby,electronic,5.5
"""
ARTIST_TAGS = """src,dst,weight
radiohead,alternative,100
radiohead,britpop,20
muse,alternative,80
coldplay,britpop,60
blur,britpop,100
oasis,britpop,100
daft punk,french house,100
justice,french house,90
air,downtempo,70
moby,downtempo,50
aphex twin,idm,100
moby,alternative,10
"""
SIMILAR = """src,dst
radiohead,muse
muse,coldplay
blur,oasis
coldplay,oasis
daft punk,justice
air,moby
aphex twin,air
justice,moby
"""
NODE_TASK = {"type": "node", "node_type": "artist", "label": "genre"}
LINK_TASK = {"type": "link", "relation": ["artist", "similar", "artist"], "holdout_fraction": 0.25}
FAST = ["--epochs", "1", "--dim", "8", "--budget", "4", "--batch-size", "4", "--no-progress"]


def write_card(folder, **overrides):
    (folder / "artists.csv").write_text(ARTISTS)
    (folder / "artist_tags.csv").write_text(ARTIST_TAGS)
    (folder / "similar.csv").write_text(SIMILAR)
    card = {
        "kind": "graph",
        "name": "lastfm-tiny",
        "node_types": {"artist": {"file": "artists.csv", "features": ["listeners"]}, "tag": {}},
        "relations": [
            {"src_type": "artist", "name": "tagged", "dst_type": "tag", "file": "artist_tags.csv"},
            {"src_type": "artist", "name": "similar", "dst_type": "artist", "file": "similar.csv"},
        ],
        "task": [NODE_TASK, LINK_TASK],
    }
    card.update(overrides)
    path = folder / "card.json"
    path.write_text(json.dumps(card))
    return path


def pair_set(edges: torch.Tensor) -> set[tuple[int, int]]:
    return set(zip(edges[0].tolist(), edges[1].tolist(), strict=True))


def pairs(edges: torch.Tensor) -> Counter:
    """The (src, dst) pairs of a (2, E) edge list, with multiplicity."""
    return Counter(zip(edges[0].tolist(), edges[1].tolist(), strict=True))


def test_tables_card_gives_typed_graph_features_weights_and_labels(tmp_path):
    task = load_graph_card(write_card(tmp_path, task=NODE_TASK))
    g = task.graph
    assert task.name == "lastfm-tiny" and g.num_nodes == {"artist": 10, "tag": 5}
    assert set(g.relations) == {
        ("artist", "tagged", "tag"),
        ("tag", "rev_tagged", "artist"),
        ("artist", "similar", "artist"),
        ("artist", "rev_similar", "artist"),
    }
    # tags have no table: ids in order of first appearance (alternative, britpop, ...)
    tagged = pair_set(g.edge_index(("artist", "tagged", "tag")))
    assert (0, 0) in tagged and (0, 1) in tagged and (6, 4) in tagged
    assert pair_set(g.edge_index(("tag", "rev_tagged", "artist"))) == {(d, s) for s, d in tagged}
    # the weight column is a one-column edge feature, shared with the reverse
    csr = g.relations[("artist", "tagged", "tag")]
    assert csr.edge_features.shape == (12, 1) and float(csr.edge_features.max()) == 100.0
    assert g.relations[("artist", "similar", "artist")].edge_features is None
    assert g.node_features["artist"][:, 0].tolist() == pytest.approx(
        [9.1, 7.4, 8.8, 5.2, 6.0, 8.0, 3.9, 4.1, 4.7, 5.5]
    )
    # classes in sorted order; a seeded 60/20/20 split of the labelled artists
    assert task.num_classes == 2 and task.labels.tolist() == [1] * 5 + [0] * 5
    sizes = {k: v.numel() for k, v in task.split.items()}
    assert sizes == {"train": 6, "val": 2, "test": 2}
    assert torch.equal(torch.cat(list(task.split.values())).sort().values, torch.arange(10))
    again = load_graph_card(tmp_path / "card.json")
    assert all(torch.equal(task.split[k], again.split[k]) for k in task.split)
    assert task.link_relation is None


def test_split_column_and_unlabelled_nodes(tmp_path):
    write_card(tmp_path, task=NODE_TASK)
    rows = ARTISTS.strip().splitlines()
    splits = ["train", "train", "val", "test", "", "train", "train", "valid", "test", ""]
    lines = [rows[0] + ",split"] + [f"{r},{s}" for r, s in zip(rows[1:], splits, strict=True)]
    lines[5] = "oasis,,6.0,"  # unlabelled
    (tmp_path / "artists.csv").write_text("\n".join(lines) + "\n")
    task = load_graph_card(tmp_path / "card.json")
    assert task.labels[4] == -1
    assert task.split["train"].tolist() == [0, 1, 5, 6]
    assert task.split["val"].tolist() == [2, 7] and task.split["test"].tolist() == [3, 8]
    lines[5] = "oasis,,6.0,test"
    (tmp_path / "artists.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"artists.csv:6: the node is in split 'test' but"):
        load_graph_card(tmp_path / "card.json")


def test_link_task_holds_out_edges_in_both_directions(tmp_path):
    task = load_graph_card(write_card(tmp_path, task=LINK_TASK), seed=1)
    rel = ("artist", "similar", "artist")
    assert task.link_relation == rel and task.labels is None
    pos, neg = task.heldout_pos, task.heldout_neg
    assert pos.shape == (2, 2) and neg.shape == (2, 2)
    kept = pair_set(task.graph.edge_index(rel))
    assert len(kept) == 6 and not pair_set(pos) & kept
    rev = pair_set(task.graph.edge_index(("artist", "rev_similar", "artist")))
    assert rev == {(d, s) for s, d in kept}
    all_edges = kept | pair_set(pos)
    assert not pair_set(neg) & all_edges


def test_card_errors_name_the_card_the_part_and_what_was_expected(tmp_path):
    card = write_card(tmp_path)
    with pytest.raises(DataFileError, match=r"^--dataset-card: no such file "):
        load_graph_card(tmp_path / "nope.json")
    (tmp_path / "similar.csv").write_text(SIMILAR + "muse,bjork\n")
    with pytest.raises(DataFileError) as raised:
        load_graph_card(card)
    assert "similar.csv:10: dst id 'bjork' is not in the node table of 'artist'" in str(
        raised.value
    )
    (tmp_path / "similar.csv").write_text("from,to\nmuse,blur\n")
    with pytest.raises(DataFileError, match=r"no column 'src' .*columns found: 'from', 'to'"):
        load_graph_card(card)
    cases = [
        ({"colour": 1}, r"unknown key\(s\) \['colour'\] in a graph card"),
        ({"node_types": ["artist"]}, r"node type 'tag' is not in node_types \(artist\)"),
        ({"node_types": ["artist", "t.ag"]}, r"'t.ag' contains '.'"),
        ({"task": {"type": "graph"}}, r"task.type must be 'node' .* or 'link'"),
        ({"task": {**NODE_TASK, "label": "mood"}}, r"no column 'mood' \(the label column"),
        ({"task": {**LINK_TASK, "holdout_fraction": 0.05}}, r"leaves fewer than 2"),
        ({"task": {**LINK_TASK, "relation": ["a", "b", "c"]}}, r"not one of the card's"),
    ]
    for overrides, message in cases:
        write_card(tmp_path, **overrides)
        with pytest.raises(DataFileError, match=message):
            load_graph_card(tmp_path / "card.json")


def test_parquet_edge_list_without_pyarrow_names_the_package(tmp_path, monkeypatch):
    for name in ("pyarrow", "pyarrow.parquet", "pandas"):
        monkeypatch.setitem(sys.modules, name, None)
    relations = [{"src_type": "artist", "name": "similar", "dst_type": "artist", "file": "s.pq"}]
    card = write_card(tmp_path, relations=relations, node_types={"artist": {}}, task=LINK_TASK)
    (tmp_path / "s.pq").write_bytes(b"PAR1")
    with pytest.raises(DataFileError, match=r"relation .* reading Parquet needs the 'pyarrow'"):
        load_graph_card(card)


def _hetero_data():
    tg = pytest.importorskip("torch_geometric")
    from torch_geometric.data import HeteroData

    gen = torch.Generator().manual_seed(0)
    data = HeteroData()
    data["paper"].x = torch.randn(30, 4, generator=gen)
    data["paper"].y = torch.arange(30) % 3
    data["author"].num_nodes = 12
    edges = torch.stack(
        [torch.randint(0, 12, (60,), generator=gen), torch.randint(0, 30, (60,), generator=gen)]
    )
    data["author", "writes", "paper"].edge_index = edges
    data["author", "writes", "paper"].edge_weight = torch.rand(60, generator=gen)
    return tg.transforms.ToUndirected()(data)


def test_tensors_card_round_trips_a_hetero_data(tmp_path):
    data = _hetero_data()
    tasks = [
        {"type": "node", "node_type": "paper"},
        {"type": "link", "relation": ["author", "writes", "paper"]},
    ]
    card = write_graph_arrays(data, tmp_path / "toy", name="toy", task=tasks)
    assert json.loads(card.read_text())["tensors"] == "graph.npz"
    task = load_graph_card(card)
    g = task.graph
    assert g.num_nodes == {"paper": 30, "author": 12}
    assert set(g.relations) == {("author", "writes", "paper"), ("paper", "rev_writes", "author")}
    assert torch.equal(g.node_features["paper"], data["paper"].x)
    assert task.num_classes == 3 and torch.equal(task.labels, data["paper"].y)
    # held-out edges left both the relation and the stored reverse (parallel edges are
    # kept as such: a pair listed twice may be held out once and kept once)
    held = pairs(task.heldout_pos)
    fwd = pairs(g.edge_index(("author", "writes", "paper")))
    back = pairs(g.edge_index(("paper", "rev_writes", "author")).flip(0))
    assert sum(held.values()) == 6 and sum(fwd.values()) == 54
    assert fwd == back and fwd + held == pairs(data["author", "writes", "paper"].edge_index)
    assert g.relations[("author", "writes", "paper")].edge_features.shape == (54, 1)


def test_tensors_card_with_masks_and_keys_read_off_the_file(tmp_path):
    y = np.array([0, 1, 0, 1, -1, 1, 0, 1])
    arrays = {
        "item.y": y,
        "item.train_mask": np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool),
        "item.val_mask": np.array([0, 0, 0, 0, 0, 1, 1, 0], dtype=bool),
        "item.test_mask": np.array([0, 0, 0, 0, 0, 0, 0, 1], dtype=bool),
        "user__likes__item.edge_index": np.array([[0, 1, 2, 2, 3], [0, 1, 5, 7, 4]]),
        "item__liked_by__user.edge_index": np.array([[0, 1, 5, 7, 4], [0, 1, 2, 2, 3]]),
    }
    np.savez(tmp_path / "g.npz", **arrays)
    card = tmp_path / "g.json"
    card.write_text(json.dumps({"tensors": "g.npz", "task": {"type": "node", "node_type": "item"}}))
    task = load_graph_card(card)
    assert task.graph.num_nodes == {"user": 4, "item": 8}
    assert task.split["train"].tolist() == [0, 1, 2, 3] and task.split["test"].tolist() == [7]
    assert task.num_classes == 2 and task.labels[4] == -1
    np.savez(tmp_path / "g.npz", **{**arrays, "item.extra": np.array([object()], dtype=object)})
    with pytest.raises(DataFileError, match=r"never pickled objects"):
        load_graph_card(card)


def test_safetensors_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("safetensors", "safetensors.numpy"):
        monkeypatch.setitem(sys.modules, name, None)
    (tmp_path / "g.safetensors").write_bytes(b"{}")
    card = tmp_path / "g.json"
    card.write_text(json.dumps({"tensors": "g.safetensors", "task": LINK_TASK}))
    with pytest.raises(DataFileError, match=r"needs the 'safetensors' package .* numpy.savez"):
        load_graph_card(card)


def test_graph_command_on_a_card(tmp_path, capsys):
    card = write_card(tmp_path)
    assert main(["graph", "--dataset-card", str(card), *FAST]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["data"] == "lastfm-tiny" and record["task"] == "node"
    assert record["status"] == "ok" and record["test_macro_f1"] is not None
    write_card(tmp_path, task=LINK_TASK)  # the only task: --task defaults to link
    assert main(["graph", "--dataset-card", str(card), *FAST]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["task"] == "link"
    assert main(["graph", "--dataset-card", str(card), "--task", "node", *FAST]) == 2
    assert "--task node: lastfm-tiny has no node labels" in capsys.readouterr().err


def test_graph_command_reports_bad_data_arguments(tmp_path, capsys):
    card = write_card(tmp_path)
    missing = tmp_path / "none.json"
    cases = [
        (["--dataset-card", str(missing)], f"error: --dataset-card: no such file {missing}"),
        (["--dataset-card", str(card), "--data", "synthetic"], "--data or --dataset-card"),
        (["--data", "nope"], "--data nope: no data set 'nope' in the lisa_bench.datasets"),
    ]
    for args, expected in cases:
        assert main(["graph", *args, *FAST]) == 2, args
        assert expected in capsys.readouterr().err, args


class FakeEntryPoint:
    def __init__(self, name, obj):
        self.name, self.value, self.group, self._obj = name, f"fake_pkg:{name}", "g", obj

    def load(self):
        return self._obj


def test_graph_command_runs_a_registered_graph(monkeypatch, capsys):
    real = importlib.metadata.entry_points
    seeds = []

    def small(seed):
        seeds.append(seed)
        return make_synthetic_graph(400, seed=seed)

    def entry_points(**kwargs):
        if kwargs.get("group") != registry.ENTRY_POINT_GROUP:
            return real(**kwargs)
        return [FakeEntryPoint("small", small), FakeEntryPoint("words", lambda: "not a graph")]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert isinstance(registry.load_registered_dataset("small", kinds=(GraphTask,)), GraphTask)
    assert main(["graph", "--data", "small", "--seed", "2", *FAST]) == 0
    assert seeds == [0, 2] and '"data": "synthetic-400"' in capsys.readouterr().out
    assert main(["graph", "--data", "words", *FAST]) == 2
    assert "(fake_pkg:words) returned str; this command needs GraphTask" in (
        capsys.readouterr().err
    )


def test_the_worked_example_in_the_docs_is_this_one(tmp_path):
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    section = text[text.index("## Bring your own data") :]
    for block in (ARTISTS, ARTIST_TAGS, SIMILAR):
        assert block.strip() in section
    card_text = section.split("`card.json`:\n\n```json\n", 1)[1].split("```", 1)[0]
    write_card(tmp_path)
    (tmp_path / "card.json").write_text(card_text)
    task = load_graph_card(tmp_path / "card.json")
    assert task.name == "lastfm-tiny" and task.num_classes == 2 and task.link_relation
