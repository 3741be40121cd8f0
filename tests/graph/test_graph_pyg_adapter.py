"""torch_geometric's own loaders through the adapter: only real edges of the right
relation, and a full fan-out reproduces exhaustive aggregation. The runtime path needs
torch_geometric's sampling backend (pyg-lib or torch-sparse) and skips with the reason
when it is missing; the missing-backend path is tested everywhere."""

from __future__ import annotations

import pytest
import torch

from harness.datasets import make_synthetic_graph
from impls.sampling import ESTIMATORS, aggregate_block
from impls.sampling.pyg_adapter import PyGLoaderSampler, backend_status
from reference.aggregation import mean_aggregate

AVAILABLE, WHY = backend_status()


def test_missing_backend_is_reported_not_hidden():
    if AVAILABLE:
        pytest.skip("torch_geometric's sampling backend is installed here")
    assert WHY
    task = make_synthetic_graph(2_000, seed=0)
    with pytest.raises(RuntimeError, match="pyg-neighbor: "):
        PyGLoaderSampler("neighbor").sample(task.graph, {task.node_type: torch.arange(8)}, 4)
    with pytest.raises(ValueError, match="loader must be"):
        PyGLoaderSampler("other")


@pytest.mark.skipif(not AVAILABLE, reason=f"torch_geometric loaders unavailable: {WHY}")
@pytest.mark.parametrize("loader", ["neighbor", "hgt"])
def test_adapter_keeps_only_real_edges(loader):
    task = make_synthetic_graph(5_000, seed=1)
    targets = {task.node_type: torch.arange(0, 64, 3)}
    block = PyGLoaderSampler(loader).sample(task.graph, targets, 3, torch.Generator())
    for rel, s in block.relations.items():
        csr = task.graph.relations[rel]
        t = targets[rel[2]][s.dst]
        assert (csr.indices[s.edge_id] == s.src).all()
        assert ((csr.indptr[t] <= s.edge_id) & (s.edge_id < csr.indptr[t + 1])).all()


@pytest.mark.skipif(not AVAILABLE, reason=f"torch_geometric loaders unavailable: {WHY}")
def test_full_fanout_reproduces_exhaustive_aggregation():
    task = make_synthetic_graph(5_000, seed=2)
    targets = {task.node_type: torch.arange(32)}
    block = PyGLoaderSampler("neighbor").sample(task.graph, targets, 10**6, torch.Generator())
    weights = ESTIMATORS["importance"]().weights(block)
    x = {t: torch.randn(n, 4, dtype=torch.float64) for t, n in task.graph.num_nodes.items()}
    got = aggregate_block(block, weights, x)
    for rel in block.relations:
        expected = mean_aggregate(task.graph, rel, x[rel[0]], targets[rel[2]])
        assert torch.allclose(got[rel], expected)
