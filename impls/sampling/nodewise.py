"""Node-wise per-relation fan-out sampler (the scheme of torch_geometric's hetero
NeighborLoader, written from its description, one hop).

For every target v and relation r, keep k = min(budget, |N_r(v)|) of v's type-r edges,
chosen uniformly without replacement among its edges. Each edge is kept with
probability k / |N_r(v)|, so its expansion factor is |N_r(v)| / k (Horvitz-Thompson);
with budget >= max degree every edge is kept with factor 1. ``budget`` is the fan-out.
"""

from __future__ import annotations

import torch

from impls.sampling.base import Sampler, SampleRequest
from impls.sampling.block import RelationSample, SampledBlock

__all__ = ["NodewiseFanoutSampler"]


class NodewiseFanoutSampler(Sampler):
    """Up to ``budget`` uniformly chosen edges per target and relation (GraphSAGE-style
    fan-out), factor deg / min(deg, budget)."""

    name = "nodewise"
    has_draw_probabilities = False  # per-target fan-out: no pooled q(u)

    def _sample(self, request: SampleRequest) -> SampledBlock:
        budget, generator = request.budget, request.generator
        block = SampledBlock(targets=request.targets, relations={})
        for rel, e in request.batch.items():
            # random rank of each edge among the edges of its target
            key = torch.rand(e.num_edges, generator=generator, dtype=torch.float64)
            order = torch.sort(key).indices
            order = order[torch.sort(e.dst[order], stable=True).indices]  # by target, random within
            group_start = torch.cumsum(e.degree, 0) - e.degree
            rank = torch.empty(e.num_edges, dtype=torch.int64)
            rank[order] = torch.arange(e.num_edges, dtype=torch.int64) - group_start[e.dst[order]]
            mask = rank < budget
            deg = e.degree.to(torch.float64)[e.dst]
            factor = deg / torch.clamp(deg, max=float(budget))
            ones = torch.ones(int(mask.sum()), dtype=torch.float64)
            block.relations[rel] = RelationSample(
                e.dst[mask], e.src[mask], e.edge_id[mask], factor[mask], ones, e.degree, None
            )
            block.candidates[rel] = int(torch.unique(e.src).numel())
            block.draws[rel] = int(mask.sum())
        return block
