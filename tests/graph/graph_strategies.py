"""Hypothesis strategies and small fixed graphs shared by the graph tests.

Imported by basename (pytest puts this folder on sys.path; the test modules are named
``test_graph_*`` so their basenames stay unique across the test tree).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from reference.graph import HeteroGraph


@st.composite
def hetero_graphs(draw, max_types: int = 3, max_nodes: int = 6, max_edges: int = 14):
    """Small heterogeneous graphs: 1-3 node types (some possibly empty), 1-4 relations
    (self-relations allowed, some possibly without edges), duplicate edges likely,
    optional edge features."""
    n_types = draw(st.integers(1, max_types))
    types = [f"t{i}" for i in range(n_types)]
    num_nodes = {t: draw(st.integers(0, max_nodes)) for t in types}
    if all(n == 0 for n in num_nodes.values()):
        num_nodes[types[0]] = 1
    edges, feats = {}, {}
    for k in range(draw(st.integers(1, 4))):
        s, d = draw(st.sampled_from(types)), draw(st.sampled_from(types))
        rel = (s, f"r{k}", d)
        n_e = 0 if num_nodes[s] == 0 or num_nodes[d] == 0 else draw(st.integers(0, max_edges))
        src = draw(st.lists(st.integers(0, max(num_nodes[s] - 1, 0)), min_size=n_e, max_size=n_e))
        dst = draw(st.lists(st.integers(0, max(num_nodes[d] - 1, 0)), min_size=n_e, max_size=n_e))
        edges[rel] = torch.tensor([src, dst], dtype=torch.int64).reshape(2, n_e)
        if draw(st.booleans()):
            feats[rel] = torch.arange(n_e * 2, dtype=torch.float64).reshape(n_e, 2)
    return HeteroGraph.from_edge_index(num_nodes, edges, edge_features=feats)


@st.composite
def graph_and_targets(draw, **kwargs):
    """A graph, a target type with nodes, a non-empty batch of distinct targets of it."""
    g = draw(hetero_graphs(**kwargs))
    t = draw(st.sampled_from([t for t, n in g.num_nodes.items() if n > 0]))
    ids = draw(st.lists(st.integers(0, g.num_nodes[t] - 1), min_size=1, unique=True))
    return g, t, torch.tensor(ids, dtype=torch.int64)


def features(g: HeteroGraph, dim: int = 3, seed: int = 0, dtype=torch.float64) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {t: torch.randn(n, dim, generator=gen, dtype=dtype) for t, n in g.num_nodes.items()}


def skewed_graph() -> HeteroGraph:
    """A fixed graph for the statistical tests: two target types, four relations with
    varied degrees, duplicate edges, an isolated target and a relation without edges."""
    gen = torch.Generator().manual_seed(1234)
    num_nodes = {"user": 12, "item": 10, "tag": 5}
    edges = {}
    # user -> item: skewed sources (low ids popular), duplicates likely
    src = torch.minimum(
        torch.randint(0, 12, (40,), generator=gen), torch.randint(0, 12, (40,), generator=gen)
    )
    dst = torch.randint(0, 9, (40,), generator=gen)  # item 9 has no user
    edges[("user", "rates", "item")] = torch.stack([src, dst])
    edges[("tag", "labels", "item")] = torch.stack(
        [torch.randint(0, 5, (15,), generator=gen), torch.randint(0, 9, (15,), generator=gen)]
    )
    edges[("item", "rated_by", "user")] = edges[("user", "rates", "item")].flip(0)
    edges[("tag", "follows", "user")] = torch.zeros(2, 0, dtype=torch.int64)
    return HeteroGraph.from_edge_index(num_nodes, edges)
