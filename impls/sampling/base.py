"""The sampler contract and the one place its inputs are checked.

Every sampler is a :class:`Sampler`: ``sample(graph, targets, budget, generator=None,
edge_weight=None) -> SampledBlock``. The base class validates the request once (budget,
generator, edge weights against the graph, targets gathered into the batch's edges) and
hands a :class:`SampleRequest` to the subclass's ``_sample``; a subclass only decides
which batch edges to keep and with which factors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from impls.sampling.block import SampledBlock
from impls.sampling.proposals import EdgeWeightFn, check_edge_weights, gather_batch
from reference.graph import BatchEdges, HeteroGraph, Relation

__all__ = ["Sampler", "SampleRequest", "check_budget", "check_generator"]


def check_budget(budget: object) -> int:
    """``budget``: the number of draws per batch, an int >= 1."""
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget must be an int, got {type(budget).__name__}")
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    return budget


def check_generator(generator: object) -> torch.Generator | None:
    """``generator``: a ``torch.Generator`` or None (the global one)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    return generator


@dataclass
class SampleRequest:
    """A checked sampling request: the graph, the targets per node type (deduplicated, in
    order), the batch edges into them per relation (``reference.graph.BatchEdges``, CSR
    order), the budget n (None for samplers without one), the generator and the
    validated edge weights (``proposals.check_edge_weights``: a mapping relation -> (E_r,)
    float64, empty without weights, or a checking callable; read them with
    ``aggregate.edge_weight_of``)."""

    graph: HeteroGraph
    targets: dict[str, Tensor]
    batch: dict[Relation, BatchEdges]
    budget: int | None
    generator: torch.Generator | None
    edge_weight: dict[Relation, Tensor] | EdgeWeightFn


class Sampler:
    """Base of every sampler. Class attributes: ``name`` (the registry key),
    ``uses_budget`` (False: ``budget`` is ignored and may be None) and
    ``takes_edge_weight`` (False: passing ``edge_weight`` is an error) and
    ``has_draw_probabilities`` (False: its blocks carry no q, so estimators that need q,
    such as the adaptive one's variance penalty, cannot be paired with it)."""

    name = "sampler"
    uses_budget = True
    takes_edge_weight = True
    has_draw_probabilities = True

    def sample(
        self,
        graph: HeteroGraph,
        targets: Mapping[str, Tensor],
        budget: int | None = None,
        generator: torch.Generator | None = None,
        edge_weight: Mapping[Relation, Tensor] | EdgeWeightFn | None = None,
    ) -> SampledBlock:
        """Check the request (see the module docstring), then :meth:`_sample` it."""
        if self.uses_budget:
            budget = check_budget(budget)
        generator = check_generator(generator)
        if not self.takes_edge_weight and edge_weight is not None:
            raise ValueError(f"{self.name} samples without edge weights; pass edge_weight=None")
        weights = check_edge_weights(graph, edge_weight)
        clean, batch = gather_batch(graph, targets)
        return self._sample(SampleRequest(graph, clean, batch, budget, generator, weights))

    def _sample(self, request: SampleRequest) -> SampledBlock:
        raise NotImplementedError
