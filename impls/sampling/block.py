"""SampledBlock: what every sampler returns, and what every estimator reads.

For each relation r whose destination type has targets in the batch, a
:class:`RelationSample` lists the kept edges (u -> v) of r with v in the batch:

    dst:    (K,) int64  position of v in ``targets[dst_type]``
    src:    (K,) int64  global id of u
    edge_id:(K,) int64  the edge's index in the relation's CSR arrays
    factor: (K,) float64 expansion factor f_e with E[f_e * 1{e kept}] = 1 for every
            batch edge e, e.g. c(u) / (n q(u)) for n draws with replacement, or
            1 / pi_u for a without-replacement sample with inclusion probability pi_u
    count:  (K,) float64 number of draws of u (1 for without-replacement samples)
    draw_prob: (K,) float64 or None  the proposal q(u) of one draw (None if the sampler
            has no per-draw proposal, e.g. node-wise fan-out)
    degree: (B,) int64  |N_r(v)| of every target, from the full graph

Counters: ``candidates`` (distinct candidate sources per relation), ``draws`` (draws
per relation; for pooled samplers, the draws of the shared pool that landed on it),
``edges_in_computation`` (kept edges) and ``batch_edges`` (edges exhaustive aggregation
would use for the same batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from reference.graph import Relation

__all__ = ["RelationSample", "SampledBlock"]


@dataclass(frozen=True)
class RelationSample:
    dst: Tensor
    src: Tensor
    edge_id: Tensor
    factor: Tensor
    count: Tensor
    degree: Tensor
    draw_prob: Tensor | None = None

    @property
    def num_targets(self) -> int:
        return int(self.degree.numel())

    @property
    def num_edges(self) -> int:
        return int(self.src.numel())

    def uncovered(self) -> Tensor:
        """Targets (batch positions) with at least one type-r neighbour in the graph but
        none kept: an estimator returns m_v^r = 0 for them; they are reported, never
        silently dropped from the batch."""
        kept = torch.zeros(self.num_targets, dtype=torch.bool)
        kept[self.dst] = True
        return torch.nonzero((self.degree > 0) & ~kept).flatten()


@dataclass
class SampledBlock:
    targets: dict[str, Tensor]
    relations: dict[Relation, RelationSample]
    candidates: dict[Relation, int] = field(default_factory=dict)
    draws: dict[Relation, int] = field(default_factory=dict)

    @property
    def edges_in_computation(self) -> int:
        return sum(s.num_edges for s in self.relations.values())

    @property
    def batch_edges(self) -> int:
        return sum(int(s.degree.sum()) for s in self.relations.values())

    def uncovered(self) -> dict[Relation, Tensor]:
        return {r: s.uncovered() for r, s in self.relations.items()}
