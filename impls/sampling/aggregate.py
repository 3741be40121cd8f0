"""Aggregation over a SampledBlock, through the oracle's own code.

    m_hat_v^r = sum_{kept e = (u -> v) in r} w_e a_e e_u
    h_hat_v   = sigmoid(sum_r m_hat_v^r W_r + b)

``weighted_neighbour_sum`` and ``combine_relation_aggregates`` are imported from
``reference.aggregation``: with every edge kept in CSR order and w_e = p_e (full budget
without replacement), the result equals the exhaustive oracle bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from impls.sampling.block import SampledBlock
from reference.aggregation import combine_relation_aggregates, weighted_neighbour_sum
from reference.graph import Relation

__all__ = ["aggregate_block", "hep_layer_block", "edge_weight_of"]


def aggregate_block(
    block: SampledBlock,
    weights: Mapping[Relation, Tensor],
    x: Mapping[str, Tensor] | Callable[[str, Tensor], Tensor],
    edge_weight: Mapping[Relation, Tensor]
    | Callable[[Relation, Tensor], Tensor | None]
    | None = None,
) -> dict[Relation, Tensor]:
    """m_hat^r (B_r, d) for every relation of the block. weights[r]: (K_r,) from an
    estimator; edge_weight[r]: (E_r,) per CSR edge, or a callable
    ``edge_weight(relation, edge_ids) -> (K,)`` (None for a relation without weights),
    or None.

    x is either a mapping node type -> (num_nodes[t], d) embeddings, or a callable
    ``x(node_type, ids) -> (len(ids), d)`` that embeds only the sources the sample
    kept (so memory follows the edges in computation, not the graph size)."""
    out = {}
    for rel, s in block.relations.items():
        if rel not in weights:
            raise ValueError(f"weights has no entry for relation {rel!r}")
        a = edge_weight_of(edge_weight, rel, s.edge_id)
        if callable(x):
            uniq, local = torch.unique(s.src, return_inverse=True)
            out[rel] = weighted_neighbour_sum(
                s.dst, local, weights[rel], x(rel[0], uniq), s.num_targets, a
            )
            continue
        if rel[0] not in x:
            raise ValueError(f"x has no embeddings for node type {rel[0]!r} (needed by {rel!r})")
        out[rel] = weighted_neighbour_sum(s.dst, s.src, weights[rel], x[rel[0]], s.num_targets, a)
    return out


def edge_weight_of(edge_weight, rel: Relation, edge_id: Tensor) -> Tensor | None:
    """The weights a_e of the edges ``edge_id`` of ``rel`` from a mapping of full
    per-relation tensors or a callable; None when the relation has none."""
    if edge_weight is None:
        return None
    if callable(edge_weight):
        return edge_weight(rel, edge_id)
    return edge_weight[rel][edge_id] if rel in edge_weight else None


def hep_layer_block(
    block: SampledBlock,
    target_type: str,
    weights: Mapping[Relation, Tensor],
    x: Mapping[str, Tensor] | Callable[[str, Tensor], Tensor],
    weight: Mapping[Relation, Tensor],
    bias: Tensor,
    edge_weight: Mapping[Relation, Tensor]
    | Callable[[Relation, Tensor], Tensor | None]
    | None = None,
) -> Tensor:
    """h_hat for the targets of ``target_type``: (B, d_out)."""
    sub = SampledBlock(
        targets=block.targets,
        relations={r: s for r, s in block.relations.items() if r[2] == target_type},
    )
    if not sub.relations:
        raise ValueError(f"target_type {target_type!r} has no incoming relation in the block")
    m = aggregate_block(sub, weights, x, edge_weight)
    return combine_relation_aggregates(m, weight, bias)
