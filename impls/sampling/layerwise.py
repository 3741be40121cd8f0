"""Layer-wise (batch-wise) heterogeneous samplers: one shared draw per mini-batch.

Every sampler: ``sample(graph, targets, budget, generator=None, edge_weight=None)``
with ``targets`` a mapping node type -> (B_t,) ids and ``budget`` the number n of draws
per batch; returns a :class:`SampledBlock`. Every batch edge (u -> v) whose source u was
drawn is kept (all its parallel edges too); targets left without a kept neighbour are
reported by ``RelationSample.uncovered``.

- ``TypeDependentSampler``: per relation r, candidates U_r = distinct sources of the
  batch edges of r; budget n_r = ceil(n |U_r| / sum_r' |U_r'|); q_r from squared column
  norms (see ``proposals``).
- ``UniformSampler``: as type-dependent, but q_r uniform over U_r. Its factors include
  1 / q (the authors' uniform baseline omitted it and was biased by a constant).
- ``TypeFusionSampler``: one pool of all candidate (type, id) pairs, q(u) proportional
  to sum_r sum_v P^r[v, u]^2, n draws; kept edges split back by relation. A weak type may
  get no draw.
- ``AdaptiveSampler``: pooled like type-fusion, q(u) proportional to
  sum_r sum_v a_e P^r[v, u] with a the (detached) learned edge weights.
  A candidate reached only through edges with a_e = 0 is never drawn: the
  importance-sampling estimator stays unbiased (those edges add 0 to m), while the
  self-normalised one then normalises over positive-weight edges only; pair it with
  the importance-sampling or adaptive estimator when weights can be exactly 0.
- ``LadiesSampler``: type-blind peer; one pool, q(u) proportional to squared column
  norms of the merged, row-normalised adjacency, ignoring relation types.
- ``ExhaustiveSampler``: keeps every batch edge with factor 1 (the oracle's edges).

``edge_weight`` (relation -> (E_r,) non-negative, CSR order, or a callable
``(relation, edge_ids) -> (len,)`` that computes a_e for the batch edges only) is
validated by every sampler and used only by the adaptive one.

``replace=True`` (default): n draws with replacement, factor c(u) / (n q(u)).
``replace=False``: systematic PPS without replacement, factor 1 / pi_u; with
n >= |pool| every candidate is kept with factor 1 exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from impls.sampling.aggregate import edge_weight_of
from impls.sampling.base import Sampler, SampleRequest
from impls.sampling.block import RelationSample, SampledBlock
from impls.sampling.draws import (
    capped_inclusion_probabilities,
    draw_systematic,
    draw_with_replacement,
)
from impls.sampling.proposals import EdgeWeightFn, pair_square_sum, unique_with_inverse
from reference.graph import BatchEdges, HeteroGraph, Relation

__all__ = [
    "TypeDependentSampler",
    "UniformSampler",
    "TypeFusionSampler",
    "AdaptiveSampler",
    "LadiesSampler",
    "ExhaustiveSampler",
    "split_budget",
]


def split_budget(budget: int, pool_sizes: Mapping[Relation, int]) -> dict[Relation, int]:
    """n_r = ceil(n |U_r| / sum_r' |U_r'|); relations without candidates get 0."""
    total = sum(pool_sizes.values())
    if total == 0:
        return {r: 0 for r in pool_sizes}
    return {r: math.ceil(budget * k / total) for r, k in pool_sizes.items()}


def _p(edges: BatchEdges) -> Tensor:
    return 1.0 / edges.degree.to(torch.float64)[edges.dst]


def _draw(score: Tensor, n: int, replace: bool, generator) -> tuple[Tensor, Tensor, Tensor]:
    """From unnormalised scores (K,) draw n; return (factor, count, q) per candidate;
    factor is 0 for candidates not drawn."""
    if score.numel() == 0 or n == 0:
        z = torch.zeros_like(score)
        return z, z, z
    total = score.sum()
    q = score / total if float(total) > 0 else torch.full_like(score, 1.0 / score.numel())
    if replace:
        count = draw_with_replacement(q, n, generator)
        factor = torch.where(count > 0, count / (n * q), torch.zeros_like(q))
        return factor, count, q
    pi = capped_inclusion_probabilities(q, n)
    kept = draw_systematic(pi, generator)
    factor = torch.where(
        kept, 1.0 / torch.where(kept, pi, torch.ones_like(pi)), torch.zeros_like(pi)
    )
    return factor, kept.to(torch.float64), q


def _keep(
    edges: BatchEdges, inv: Tensor, factor: Tensor, count: Tensor, q: Tensor
) -> RelationSample:
    """Keep the batch edges whose source (candidate index ``inv``) was drawn."""
    f = factor[inv]
    mask = f > 0
    return RelationSample(
        dst=edges.dst[mask],
        src=edges.src[mask],
        edge_id=edges.edge_id[mask],
        factor=f[mask],
        count=count[inv][mask],
        degree=edges.degree,
        draw_prob=q[inv][mask],
    )


class _PerRelationSampler(Sampler):
    """Independent draws per relation with budgets n_r (type-dependent, uniform)."""

    name = "per-relation"

    def __init__(self, replace: bool = True) -> None:
        self.replace = bool(replace)

    def _score(self, edges: BatchEdges, inv: Tensor, num_cand: int) -> Tensor:
        raise NotImplementedError

    def _sample(self, request: SampleRequest) -> SampledBlock:
        batch, budget, generator = request.batch, request.budget, request.generator
        pools = {r: unique_with_inverse(e.src) for r, e in batch.items()}
        n_r = split_budget(budget, {r: int(u.numel()) for r, (u, _) in pools.items()})
        block = SampledBlock(targets=request.targets, relations={})
        for rel, edges in batch.items():
            uniq, inv = pools[rel]
            score = self._score(edges, inv, uniq.numel())
            factor, count, q = _draw(score, n_r[rel], self.replace, generator)
            block.relations[rel] = _keep(edges, inv, factor, count, q)
            block.candidates[rel] = int(uniq.numel())
            block.draws[rel] = n_r[rel] if self.replace else int(count.sum())
        return block


class TypeDependentSampler(_PerRelationSampler):
    name = "type-dependent"

    def _score(self, edges, inv, num_cand):
        return pair_square_sum(edges.dst, inv, _p(edges), num_cand)


class UniformSampler(_PerRelationSampler):
    name = "uniform"

    def _score(self, edges, inv, num_cand):
        return torch.ones(num_cand, dtype=torch.float64)


class _PooledSampler(Sampler):
    """One pool over all candidate (source type, id) pairs and n draws from it."""

    name = "pooled"

    def __init__(self, replace: bool = True) -> None:
        self.replace = bool(replace)

    def _scores(
        self,
        graph: HeteroGraph,
        clean: dict[str, Tensor],
        batch: dict[Relation, BatchEdges],
        inv: dict[Relation, Tensor],
        sizes: dict[str, int],
        weights: dict[Relation, Tensor] | EdgeWeightFn,
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def _sample(self, request: SampleRequest) -> SampledBlock:
        graph, clean, batch = request.graph, request.targets, request.batch
        budget, generator, weights = request.budget, request.generator, request.edge_weight
        # candidates of each source type: distinct sources over all its relations
        src_types = list(dict.fromkeys(r[0] for r in batch))
        uniq: dict[str, Tensor] = {}
        inv: dict[Relation, Tensor] = {}
        for t in src_types:
            rels = [r for r in batch if r[0] == t]
            u, i = unique_with_inverse(torch.cat([batch[r].src for r in rels]))
            uniq[t] = u
            for r, part in zip(
                rels, torch.split(i, [batch[r].num_edges for r in rels]), strict=True
            ):
                inv[r] = part
        sizes = {t: int(u.numel()) for t, u in uniq.items()}
        scores = self._scores(graph, clean, batch, inv, sizes, weights)
        pool = (
            torch.cat([scores[t] for t in src_types])
            if src_types
            else torch.zeros(0, dtype=torch.float64)
        )
        factor, count, q = _draw(pool, budget, self.replace, generator)
        parts = dict(
            zip(
                src_types,
                zip(
                    torch.split(factor, [sizes[t] for t in src_types]),
                    torch.split(count, [sizes[t] for t in src_types]),
                    torch.split(q, [sizes[t] for t in src_types]),
                    strict=True,
                ),
                strict=True,
            )
        )
        block = SampledBlock(targets=clean, relations={})
        for rel, edges in batch.items():
            f, c, qq = parts[rel[0]]
            block.relations[rel] = _keep(edges, inv[rel], f, c, qq)
            reached = torch.unique(inv[rel])
            block.candidates[rel] = int(reached.numel())
            block.draws[rel] = int(c[reached].sum())
        return block


class TypeFusionSampler(_PooledSampler):
    name = "type-fusion"

    def _scores(self, graph, clean, batch, inv, sizes, weights):
        out = {t: torch.zeros(n, dtype=torch.float64) for t, n in sizes.items()}
        for rel, edges in batch.items():
            out[rel[0]] += pair_square_sum(edges.dst, inv[rel], _p(edges), sizes[rel[0]])
        return out


class AdaptiveSampler(_PooledSampler):
    name = "adaptive"

    def _scores(self, graph, clean, batch, inv, sizes, weights):
        out = {t: torch.zeros(n, dtype=torch.float64) for t, n in sizes.items()}
        for rel, edges in batch.items():
            v = _p(edges)
            a = edge_weight_of(weights, rel, edges.edge_id)
            if a is not None:
                v = v * a
            out[rel[0]].index_add_(0, inv[rel], v)
        return out


class LadiesSampler(_PooledSampler):
    name = "ladies"

    def _scores(self, graph, clean, batch, inv, sizes, weights):
        # merged degree of every target over all relations into its type
        offsets, total = {}, 0
        for t, ids in clean.items():
            offsets[t] = total
            total += ids.numel()
        merged_deg = torch.zeros(total, dtype=torch.float64)
        for rel, edges in batch.items():
            merged_deg[offsets[rel[2]] : offsets[rel[2]] + edges.degree.numel()] += edges.degree.to(
                torch.float64
            )
        out = {}
        for t, n in sizes.items():
            rels = [r for r in batch if r[0] == t]
            rows = torch.cat([batch[r].dst + offsets[r[2]] for r in rels])
            cols = torch.cat([inv[r] for r in rels])
            vals = 1.0 / merged_deg[rows]
            out[t] = pair_square_sum(rows, cols, vals, n)
        return out


class ExhaustiveSampler(Sampler):
    """Keeps every batch edge with factor 1: exhaustive aggregation as a SampledBlock."""

    name = "exhaustive"
    uses_budget = False
    has_draw_probabilities = False

    def _sample(self, request: SampleRequest) -> SampledBlock:
        block = SampledBlock(targets=request.targets, relations={})
        for rel, e in request.batch.items():
            ones = torch.ones(e.num_edges, dtype=torch.float64)
            block.relations[rel] = RelationSample(
                e.dst, e.src, e.edge_id, ones, ones, e.degree, None
            )
            block.candidates[rel] = int(torch.unique(e.src).numel())
            block.draws[rel] = 0
        return block
