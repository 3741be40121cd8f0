"""The exhaustive oracle against an independent dense-matrix computation."""

from __future__ import annotations

import pytest
import torch
from graph_strategies import features, graph_and_targets
from hypothesis import given

from reference.aggregation import edge_weight_from_features, hep_layer, mean_aggregate
from reference.graph import HeteroGraph


def _dense_mean(g, rel, x_src, targets, a=None):
    """m = D^-1 A x with A[v, u] = sum of edge weights of the edges u -> v (dense)."""
    ei = g.edge_index(rel)
    n_dst = g.num_nodes[rel[2]]
    a = torch.ones(ei.shape[1], dtype=torch.float64) if a is None else a
    A = torch.zeros(n_dst, g.num_nodes[rel[0]], dtype=torch.float64)
    D = torch.zeros(n_dst, dtype=torch.float64)
    for e in range(ei.shape[1]):
        A[ei[1, e], ei[0, e]] += a[e]
        D[ei[1, e]] += 1
    inv = torch.where(D > 0, 1.0 / D.clamp(min=1), torch.zeros_like(D))
    return (inv[:, None] * (A @ x_src))[targets]


@given(graph_and_targets())
def test_mean_aggregate_matches_dense_formula(case):
    g, t, targets = case
    x = features(g)
    for rel in g.relations_into(t):
        m = mean_aggregate(g, rel, x[rel[0]], targets)
        assert m.dtype == torch.float64 and m.shape == (targets.numel(), 3)
        torch.testing.assert_close(
            m, _dense_mean(g, rel, x[rel[0]], targets), rtol=1e-12, atol=1e-12
        )
        # isolated targets aggregate to exactly zero
        deg = g.relations[rel].in_degree()[targets]
        assert bool((m[deg == 0] == 0).all())


@given(graph_and_targets())
def test_edge_weights_and_hep_layer_match_dense_formula(case):
    g, t, targets = case
    rels = g.relations_into(t)
    x = features(g, dim=2)
    gen = torch.Generator().manual_seed(5)
    a = {r: torch.rand(g.relations[r].num_edges, generator=gen, dtype=torch.float64) for r in rels}
    W = {r: torch.randn(2, 4, generator=gen, dtype=torch.float64) for r in rels}
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    if not rels:
        with pytest.raises(ValueError, match="no incoming relation"):
            hep_layer(g, t, targets, x, W, b)
        return
    h = hep_layer(g, t, targets, x, W, b, edge_weight=a)
    z = sum(_dense_mean(g, r, x[r[0]], targets, a[r]) @ W[r] for r in rels)
    torch.testing.assert_close(h, torch.sigmoid(z + b), rtol=1e-12, atol=1e-12)


def test_float32_oracle_is_close_to_float64():
    g = HeteroGraph.from_edge_index(
        {"a": 50},
        {
            ("a", "r", "a"): torch.randint(
                0, 50, (2, 300), generator=torch.Generator().manual_seed(0)
            )
        },
    )
    x = torch.randn(50, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    m64 = mean_aggregate(g, ("a", "r", "a"), x)
    m32 = mean_aggregate(g, ("a", "r", "a"), x.float())
    assert m32.dtype == torch.float32
    torch.testing.assert_close(m32.double(), m64, rtol=1e-5, atol=1e-5)


def test_edge_weight_from_features_is_sigmoid_of_projection():
    f = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=torch.float64)
    theta = torch.tensor([0.5, -0.25], dtype=torch.float64)
    assert torch.equal(edge_weight_from_features(f, theta), torch.sigmoid(f @ theta))
    with pytest.raises(ValueError, match="theta"):
        edge_weight_from_features(f, torch.zeros(3))


def test_oracle_bad_inputs():
    g = HeteroGraph.from_edge_index({"a": 3}, {("a", "r", "a"): torch.tensor([[0, 1], [1, 2]])})
    rel = ("a", "r", "a")
    with pytest.raises(ValueError, match="x_src must have shape"):
        mean_aggregate(g, rel, torch.zeros(4, 2))
    with pytest.raises(TypeError, match="x_src must be a floating"):
        mean_aggregate(g, rel, torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="edge_weight must have shape"):
        mean_aggregate(g, rel, torch.zeros(3, 2), edge_weight=torch.ones(5))
    with pytest.raises(ValueError, match="edge_weight must be finite and non-negative"):
        mean_aggregate(g, rel, torch.zeros(3, 2), edge_weight=torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="not in the graph"):
        mean_aggregate(g, ("a", "q", "a"), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="weight has no matrix"):
        hep_layer(g, "a", torch.tensor([0]), {"a": torch.zeros(3, 2)}, {}, torch.zeros(2))
    with pytest.raises(ValueError, match="bias must have shape"):
        hep_layer(
            g,
            "a",
            torch.tensor([0]),
            {"a": torch.zeros(3, 2)},
            {rel: torch.zeros(2, 2)},
            torch.zeros(3),
        )
