"""Heterogeneous neighbourhood samplers and the estimators that weight their samples.

Samplers (``SAMPLERS``, name -> factory): each is a :class:`Sampler` (``base``), whose
``sample(graph, targets, budget, generator=None, edge_weight=None) -> SampledBlock``
checks the request once and passes it to the subclass's ``_sample``.
Estimators (``ESTIMATORS``, name -> factory): each has ``weights(block)``; any sampler
works with any estimator. ``aggregate_block`` sums a weighted sample with the oracle's
code (``reference.aggregation``).
"""

from impls.sampling.aggregate import aggregate_block, hep_layer_block
from impls.sampling.base import Sampler, SampleRequest
from impls.sampling.block import RelationSample, SampledBlock
from impls.sampling.estimators import ESTIMATORS, Adaptive, ImportanceSampling, SelfNormalized
from impls.sampling.layerwise import (
    AdaptiveSampler,
    ExhaustiveSampler,
    LadiesSampler,
    TypeDependentSampler,
    TypeFusionSampler,
    UniformSampler,
)
from impls.sampling.nodewise import NodewiseFanoutSampler

SAMPLERS = {
    "type-dependent": TypeDependentSampler,
    "type-fusion": TypeFusionSampler,
    "adaptive": AdaptiveSampler,
    "uniform": UniformSampler,
    "nodewise": NodewiseFanoutSampler,
    "ladies": LadiesSampler,
    "exhaustive": ExhaustiveSampler,
}

__all__ = [
    "SAMPLERS",
    "Sampler",
    "SampleRequest",
    "ESTIMATORS",
    "SampledBlock",
    "RelationSample",
    "aggregate_block",
    "hep_layer_block",
    "ImportanceSampling",
    "SelfNormalized",
    "Adaptive",
    "TypeDependentSampler",
    "TypeFusionSampler",
    "AdaptiveSampler",
    "UniformSampler",
    "NodewiseFanoutSampler",
    "LadiesSampler",
    "ExhaustiveSampler",
]
