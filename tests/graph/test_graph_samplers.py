"""Sampler properties: real neighbours only, budgets, determinism, full budget = oracle,
edge cases (isolated targets, relations without edges, types without candidates,
duplicate edges) and clear errors."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from graph_strategies import features, graph_and_targets, skewed_graph
from hypothesis import given
from hypothesis import strategies as st

from impls.sampling import (
    SAMPLERS,
    ImportanceSampling,
    NodewiseFanoutSampler,
    SelfNormalized,
    aggregate_block,
    hep_layer_block,
)
from impls.sampling.layerwise import split_budget
from impls.sampling.proposals import gather_batch
from reference.aggregation import hep_layer, mean_aggregate
from reference.graph import HeteroGraph

LAYERWISE = ["type-dependent", "type-fusion", "adaptive", "uniform", "ladies"]
ALL = [*LAYERWISE, "nodewise", "exhaustive"]


def _make(name, replace=True):
    return SAMPLERS[name](replace=replace) if name in LAYERWISE else SAMPLERS[name]()


def _edge_weights(g, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return {
        r: torch.rand(c.num_edges, generator=gen, dtype=torch.float64) + 0.1
        for r, c in g.relations.items()
    }


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("replace", [True, False])
@given(case=graph_and_targets(), budget=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_only_real_neighbours_of_the_right_relation(name, replace, case, budget, seed):
    g, t, targets = case
    block = _make(name, replace).sample(
        g, {t: targets}, budget, torch.Generator().manual_seed(seed), _edge_weights(g)
    )
    assert set(block.relations) == set(g.relations_into(t))
    for rel, s in block.relations.items():
        csr = g.relations[rel]
        # each kept edge is a real CSR edge of this relation, ending at its target
        assert torch.equal(csr.indices[s.edge_id], s.src)
        v = targets[s.dst]
        assert bool(((csr.indptr[v] <= s.edge_id) & (s.edge_id < csr.indptr[v + 1])).all())
        assert s.edge_id.unique().numel() == s.edge_id.numel()  # no edge kept twice
        assert bool((s.factor > 0).all()) and bool(torch.isfinite(s.factor).all())
        # layer-wise: every batch edge from a drawn source is kept, parallel edges included
        if name in LAYERWISE:
            be = g.batch_edges(rel, targets)
            drawn = set(s.src.tolist())
            assert s.num_edges == sum(1 for u in be.src.tolist() if u in drawn)


@given(case=graph_and_targets(), budget=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_per_type_budgets_are_honoured(case, budget, seed):
    g, t, targets = case
    gen = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    pools = {r: g.batch_edges(r, targets).src.unique().numel() for r in g.relations_into(t)}
    n_r = split_budget(budget, pools)
    assert sum(n_r.values()) <= budget + len(n_r)
    for name in ("type-dependent", "uniform"):
        for replace in (True, False):
            block = _make(name, replace).sample(g, {t: targets}, budget, gen())
            for rel, s in block.relations.items():
                assert n_r[rel] == (
                    math.ceil(budget * pools[rel] / sum(pools.values())) if pools[rel] else 0
                )
                kept_sources = s.src.unique().numel()
                if replace:
                    assert block.draws[rel] == n_r[rel]
                    per_source = dict(zip(s.src.tolist(), s.count.tolist(), strict=True))
                    assert sum(per_source.values()) <= n_r[rel]  # draws that landed on kept sources
                    assert kept_sources <= n_r[rel]
                else:
                    assert kept_sources == min(n_r[rel], pools[rel])
    for name in ("type-fusion", "adaptive", "ladies"):
        for replace in (True, False):
            block = _make(name, replace).sample(g, {t: targets}, budget, gen())
            kept = {(r[0], u) for r, s in block.relations.items() for u in s.src.tolist()}
            total = len({(r[0], u) for r in pools for u in g.batch_edges(r, targets).src.tolist()})
            assert len(kept) <= budget
            if not replace:
                assert len(kept) == min(budget, total)
    block = NodewiseFanoutSampler().sample(g, {t: targets}, budget, gen())
    for s in block.relations.values():
        per_target = torch.bincount(s.dst, minlength=s.num_targets)
        assert torch.equal(per_target, torch.clamp(s.degree, max=budget))


@pytest.mark.parametrize("name", ALL)
@given(case=graph_and_targets(), seed=st.integers(0, 2**16))
def test_same_seed_same_sample(name, case, seed):
    g, t, targets = case
    a = _make(name).sample(
        g, {t: targets}, 5, torch.Generator().manual_seed(seed), _edge_weights(g)
    )
    b = _make(name).sample(
        g, {t: targets}, 5, torch.Generator().manual_seed(seed), _edge_weights(g)
    )
    for rel in a.relations:
        for field in ("dst", "src", "edge_id", "factor", "count"):
            assert torch.equal(getattr(a.relations[rel], field), getattr(b.relations[rel], field))


@pytest.mark.parametrize("name", LAYERWISE)
def test_different_seeds_give_different_samples(name):
    g = skewed_graph()
    targets = {"item": torch.arange(10)}
    samples = {
        tuple(
            _make(name)
            .sample(g, targets, 4, torch.Generator().manual_seed(s))
            .relations[("user", "rates", "item")]
            .src.unique()
            .tolist()
        )
        for s in range(20)
    }
    assert len(samples) > 1


@pytest.mark.parametrize("name", [*LAYERWISE, "nodewise", "exhaustive"])
@pytest.mark.parametrize("estimator", [ImportanceSampling, SelfNormalized])
@given(case=graph_and_targets(), seed=st.integers(0, 2**16), weighted=st.booleans())
def test_full_budget_without_replacement_reproduces_the_oracle_exactly(
    name, estimator, case, seed, weighted
):
    g, t, targets = case
    x = features(g)
    a = _edge_weights(g) if weighted else None
    full = max(1, g.num_edges)  # >= every candidate pool, every fan-out
    block = _make(name, replace=False).sample(
        g, {t: targets}, full, torch.Generator().manual_seed(seed), a
    )
    m = aggregate_block(block, estimator().weights(block), x, a)
    for rel in g.relations_into(t):
        exact = mean_aggregate(g, rel, x[rel[0]], targets, None if a is None else a[rel])
        assert torch.equal(m[rel], exact)  # bit for bit, float64
    if block.relations:
        gen = torch.Generator().manual_seed(1)
        W = {r: torch.randn(3, 2, generator=gen, dtype=torch.float64) for r in block.relations}
        bias = torch.randn(2, generator=gen, dtype=torch.float64)
        h = hep_layer_block(block, t, estimator().weights(block), x, W, bias, a)
        assert torch.equal(h, hep_layer(g, t, targets, x, W, bias, a))
    assert block.edges_in_computation == block.batch_edges


def test_isolated_targets_empty_relations_and_types_without_candidates():
    g = skewed_graph()
    # user 0..11; relation ("tag","follows","user") has no edges; item 9 has no user edge
    for name in ALL:
        for est in (ImportanceSampling(), SelfNormalized()):
            block = _make(name).sample(
                g,
                {"user": torch.tensor([0, 5]), "item": torch.tensor([9, 1])},
                3,
                torch.Generator().manual_seed(0),
            )
            assert block.relations[("tag", "follows", "user")].num_edges == 0
            assert block.candidates[("tag", "follows", "user")] == 0
            x = features(g)
            m = aggregate_block(block, est.weights(block), x)
            for rel, s in block.relations.items():
                assert bool(torch.isfinite(m[rel]).all())
                isolated = s.degree == 0
                assert bool((m[rel][isolated] == 0).all())
                unc = s.uncovered()
                assert bool((m[rel][unc] == 0).all())
                assert bool((s.degree[unc] > 0).all())
            # item 9 has no user neighbour: zero, not NaN
            assert bool((m[("user", "rates", "item")][0] == 0).all())


def test_batch_with_no_incoming_relation_gives_empty_block():
    g = HeteroGraph.from_edge_index({"a": 2, "b": 2}, {("a", "r", "b"): torch.tensor([[0], [1]])})
    for name in ALL:
        block = _make(name).sample(
            g, {"a": torch.tensor([0, 1])}, 4, torch.Generator().manual_seed(0)
        )
        assert block.relations == {} and block.edges_in_computation == 0


def test_duplicate_edges_are_counted_like_the_oracle():
    # item 0 has neighbours [u0, u0, u1]: the oracle weights u0 by 2/3
    g = HeteroGraph.from_edge_index(
        {"u": 2, "i": 1}, {("u", "r", "i"): torch.tensor([[0, 0, 1], [0, 0, 0]])}
    )
    x = {
        "u": torch.tensor([[3.0], [6.0]], dtype=torch.float64),
        "i": torch.zeros(1, 1, dtype=torch.float64),
    }
    exact = mean_aggregate(g, ("u", "r", "i"), x["u"])
    assert exact.item() == pytest.approx(4.0)
    for name in ALL:
        block = _make(name, replace=False).sample(
            g, {"i": torch.tensor([0])}, 10, torch.Generator().manual_seed(0)
        )
        s = block.relations[("u", "r", "i")]
        assert Counter(s.src.tolist()) == Counter({0: 2, 1: 1})
        m = aggregate_block(block, SelfNormalized().weights(block), x)
        assert m[("u", "r", "i")].item() == pytest.approx(4.0, abs=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_raise_clear_errors(name):
    g = skewed_graph()
    s = _make(name)
    t = {"item": torch.tensor([0, 1])}
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="graph must be a HeteroGraph"):
        s.sample("graph", t, 4, gen)
    with pytest.raises(ValueError, match="unknown node type 'movie'"):
        s.sample(g, {"movie": torch.tensor([0])}, 4, gen)
    with pytest.raises(TypeError, match="targets must be a non-empty mapping"):
        s.sample(g, torch.tensor([0]), 4, gen)
    with pytest.raises(ValueError, match=r"targets\['item'\] holds ids outside"):
        s.sample(g, {"item": torch.tensor([10])}, 4, gen)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        s.sample(g, t, 4, 123)
    with pytest.raises(ValueError, match="edge_weight.*shape"):
        s.sample(g, t, 4, gen, {("user", "rates", "item"): torch.ones(3, dtype=torch.float64)})
    with pytest.raises(ValueError, match="edge_weight.*non-negative"):
        s.sample(g, t, 4, gen, {("user", "rates", "item"): -torch.ones(40, dtype=torch.float64)})
    if name != "exhaustive":
        with pytest.raises(ValueError, match="budget must be >= 1"):
            s.sample(g, t, 0, gen)
        with pytest.raises(TypeError, match="budget must be an int"):
            s.sample(g, t, 2.5, gen)
        with pytest.raises(TypeError, match="budget must be an int"):
            s.sample(g, t, True, gen)


def test_every_sampler_shares_the_base_class_checks():
    from impls.sampling import SAMPLERS, SampledBlock, Sampler, SampleRequest

    assert all(issubclass(factory, Sampler) for factory in SAMPLERS.values())

    class KeepsNothing(Sampler):  # a new sampler writes _sample only
        name = "keeps-nothing"

        def _sample(self, request: SampleRequest):
            seen.append(request)
            return SampledBlock(targets=request.targets, relations={})

    seen: list[SampleRequest] = []
    g = skewed_graph()
    with pytest.raises(ValueError, match="budget must be >= 1"):
        KeepsNothing().sample(g, {"item": torch.tensor([0])}, 0)
    with pytest.raises(ValueError, match=r"targets\['item'\] holds ids outside"):
        KeepsNothing().sample(g, {"item": torch.tensor([10])}, 4)
    assert not seen  # bad requests never reach the subclass
    KeepsNothing().sample(g, {"item": torch.tensor([1, 0])}, 4)
    (request,) = seen
    assert request.budget == 4 and request.edge_weight == {}
    assert set(request.batch) and all(r[2] == "item" for r in request.batch)


@pytest.mark.parametrize("replace", [True, False])
@given(case=graph_and_targets(), budget=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_callable_edge_weights_match_the_full_table(replace, case, budget, seed):
    """The callable form (a_e for batch edges only) draws exactly what the table does,
    and is asked only for edges that end at a target."""
    g, t, targets = case
    table = _edge_weights(g)
    asked: list[int] = []

    def fn(rel, ids):
        asked.append(ids.numel())
        return table[rel][ids]

    s = _make("adaptive", replace)
    a = s.sample(g, {t: targets}, budget, torch.Generator().manual_seed(seed), table)
    b = s.sample(g, {t: targets}, budget, torch.Generator().manual_seed(seed), fn)
    for rel in a.relations:
        assert torch.equal(a.relations[rel].edge_id, b.relations[rel].edge_id)
        assert torch.equal(a.relations[rel].factor, b.relations[rel].factor)
    _, batch = gather_batch(g, {t: targets})
    # one call per relation into t, each for exactly that relation's batch edges
    assert sorted(asked) == sorted(e.num_edges for e in batch.values())


def test_callable_edge_weights_are_checked_per_call():
    g = skewed_graph()
    s, t, gen = SAMPLERS["adaptive"](), {"item": torch.tensor([0, 1])}, torch.Generator()
    with pytest.raises(ValueError, match=r"edge_weight\(.*must have shape"):
        s.sample(g, t, 4, gen, lambda rel, ids: torch.ones(ids.numel() + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"edge_weight\(.*non-negative"):
        s.sample(g, t, 4, gen, lambda rel, ids: -torch.ones(ids.numel(), dtype=torch.float64))
    with pytest.raises(TypeError, match=r"edge_weight\(.*floating tensor"):
        s.sample(g, t, 4, gen, lambda rel, ids: ids)
    block = s.sample(g, t, 4, gen, lambda rel, ids: None)  # no weights: plain proposal
    assert set(block.relations) == set(g.relations_into("item"))
