"""HeteroGraph: CSR layout, the batch-edge protocol, validation, HeteroData round trip."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from graph_strategies import graph_and_targets, hetero_graphs
from hypothesis import given

from reference.graph import HeteroGraph, RelationCSR


def _edge_multiset(ei: torch.Tensor) -> Counter:
    return Counter(map(tuple, ei.t().tolist()))


@given(hetero_graphs())
def test_csr_holds_exactly_the_input_edges(g):
    for rel, csr in g.relations.items():
        ei = g.edge_index(rel)
        assert ei.shape == (2, csr.num_edges)
        assert bool((csr.indptr[1:] >= csr.indptr[:-1]).all())
        # CSR order: destinations non-decreasing
        assert bool((ei[1][1:] >= ei[1][:-1]).all())


@given(graph_and_targets())
def test_batch_edges_are_exactly_the_edges_into_the_targets(case):
    g, t, targets = case
    for rel in g.relations_into(t):
        be = g.batch_edges(rel, targets)
        ei = g.edge_index(rel)
        expected = Counter()
        for pos, v in enumerate(targets.tolist()):
            for s in ei[0][ei[1] == v].tolist():
                expected[(pos, s)] += 1
        got = Counter(zip(be.dst.tolist(), be.src.tolist(), strict=True))
        assert got == expected
        assert be.degree.tolist() == [int((ei[1] == v).sum()) for v in targets.tolist()]
        # edge ids point at CSR entries holding the same source
        assert torch.equal(g.relations[rel].indices[be.edge_id], be.src)


def test_edge_list_order_is_kept_within_a_destination():
    ei = torch.tensor([[3, 1, 2, 0], [1, 0, 1, 1]])
    feats = torch.tensor([[30.0], [10.0], [20.0], [0.0]])
    g = HeteroGraph.from_edge_index(
        {"a": 4}, {("a", "r", "a"): ei}, edge_features={("a", "r", "a"): feats}
    )
    csr = g.relations[("a", "r", "a")]
    assert csr.indices.tolist() == [1, 3, 2, 0]  # dst 0: [1]; dst 1: [3, 2, 0] in input order
    assert csr.edge_features.flatten().tolist() == [10.0, 30.0, 20.0, 0.0]


def _ok_edges():
    return {("a", "r", "b"): torch.tensor([[0, 1], [1, 0]])}


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(num_nodes={"a": 2}, edge_index=_ok_edges()), ValueError, "unknown node type 'b'"),
        (
            dict(num_nodes={"a": 2, "b": 1}, edge_index=_ok_edges()),
            ValueError,
            "destination ids outside",
        ),
        (
            dict(num_nodes={"a": 1, "b": 2}, edge_index=_ok_edges()),
            ValueError,
            "source ids outside",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2}, edge_index={("a", "r", "b"): torch.tensor([[-1], [0]])}
            ),
            ValueError,
            "source ids outside",
        ),
        (dict(num_nodes={"a": -1, "b": 2}, edge_index={}), ValueError, "num_nodes['a']"),
        (dict(num_nodes={"a": 2.0, "b": 2}, edge_index={}), TypeError, "num_nodes['a']"),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index={("a", "b"): torch.zeros(2, 0, dtype=torch.int64)},
            ),
            TypeError,
            "edge_index keys",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index={("a", "r", "b"): torch.zeros(3, 1, dtype=torch.int64)},
            ),
            ValueError,
            "shape (2, E)",
        ),
        (
            dict(num_nodes={"a": 2, "b": 2}, edge_index={("a", "r", "b"): torch.zeros(2, 1)}),
            TypeError,
            "integer",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index=_ok_edges(),
                node_features={"a": torch.zeros(3, 2)},
            ),
            ValueError,
            "node_features['a'] has 3 rows",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index=_ok_edges(),
                node_features={"c": torch.zeros(2, 2)},
            ),
            ValueError,
            "unknown node type 'c'",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index=_ok_edges(),
                node_features={"a": torch.zeros(2, 2, dtype=torch.int64)},
            ),
            TypeError,
            "floating",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index=_ok_edges(),
                node_features={"a": torch.full((2, 2), float("nan"))},
            ),
            ValueError,
            "NaN",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index=_ok_edges(),
                edge_features={("a", "r", "b"): torch.zeros(5, 1)},
            ),
            ValueError,
            "has 5 rows",
        ),
        (
            dict(
                num_nodes={"a": 2, "b": 2},
                edge_index=_ok_edges(),
                edge_features={("a", "x", "b"): torch.zeros(2, 1)},
            ),
            ValueError,
            "not in edge_index",
        ),
    ],
)
def test_bad_edge_lists_raise_naming_the_argument(kwargs, exc, words):
    with pytest.raises(exc) as info:
        HeteroGraph.from_edge_index(**kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "csr, words",
    [
        (RelationCSR(torch.tensor([0, 1]), torch.tensor([0])), "indptr has 2 entries"),
        (RelationCSR(torch.tensor([0, 2, 2, 2]), torch.tensor([0])), "end at the edge count"),
        (RelationCSR(torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1])), "non-decreasing"),
        (RelationCSR(torch.tensor([0, 1, 1, 1]), torch.tensor([7])), "source ids outside"),
    ],
)
def test_bad_csr_raises(csr, words):
    with pytest.raises(ValueError) as info:
        HeteroGraph({"a": 3}, {("a", "r", "a"): csr})
    assert words in str(info.value)


@pytest.mark.parametrize(
    "targets, exc, words",
    [
        (torch.tensor([0, 5]), ValueError, "outside [0, 3)"),
        (torch.tensor([1, 1]), ValueError, "repeated"),
        (torch.tensor([0.0]), TypeError, "integer"),
        (torch.tensor([[0]]), ValueError, "1-D"),
        ([0, 1], TypeError, "torch.Tensor"),
    ],
)
def test_bad_targets_raise(targets, exc, words):
    g = HeteroGraph.from_edge_index({"a": 3}, {("a", "r", "a"): torch.tensor([[0], [1]])})
    with pytest.raises(exc) as info:
        g.batch_edges(("a", "r", "a"), targets)
    assert "targets" in str(info.value) and words in str(info.value)
    with pytest.raises(ValueError, match="not in the graph"):
        g.batch_edges(("a", "nope", "a"), torch.tensor([0]))


@given(hetero_graphs())
def test_hetero_data_round_trip(g):
    pytest.importorskip(
        "torch_geometric", reason="torch_geometric (the 'graph' extra) is not installed"
    )
    data = g.to_hetero_data()
    back = HeteroGraph.from_hetero_data(data)
    assert back.num_nodes == g.num_nodes
    assert set(back.relations) == set(g.relations)
    for rel, csr in g.relations.items():
        other = back.relations[rel]
        assert torch.equal(other.indptr, csr.indptr) and torch.equal(other.indices, csr.indices)
        assert (csr.edge_features is None) == (other.edge_features is None)
        if csr.edge_features is not None:
            assert torch.equal(other.edge_features, csr.edge_features)
    # and HeteroData -> HeteroGraph -> HeteroData keeps every edge (as a multiset)
    again = back.to_hetero_data()
    for rel in g.relations:
        assert _edge_multiset(again[rel].edge_index) == _edge_multiset(data[rel].edge_index)


def test_from_hetero_data_keeps_node_features_and_sorts_edges():
    pyg = pytest.importorskip(
        "torch_geometric.data", reason="torch_geometric (the 'graph' extra) is not installed"
    )
    data = pyg.HeteroData()
    data["a"].x = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    data["b"].num_nodes = 2
    data["a", "r", "b"].edge_index = torch.tensor([[2, 0, 1], [1, 0, 1]])
    g = HeteroGraph.from_hetero_data(data)
    assert torch.equal(g.node_features["a"], data["a"].x)
    assert g.relations[("a", "r", "b")].indices.tolist() == [0, 2, 1]
    with pytest.raises(TypeError, match="data must be a torch_geometric HeteroData"):
        HeteroGraph.from_hetero_data({"a": 1})


def test_hetero_data_conversion_without_torch_geometric_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch_geometric", None)
    monkeypatch.setitem(sys.modules, "torch_geometric.data", None)
    g = HeteroGraph.from_edge_index({"a": 2}, {("a", "r", "a"): torch.tensor([[0], [1]])})
    with pytest.raises(ImportError, match="needs torch_geometric"):
        g.to_hetero_data()
