"""Batch edges, candidate sets and proposal scores for the layer-wise samplers.

For a batch V_B and relation r, every batch edge e = (u -> v) has p_e = 1 / |N_r(v)|.
P^r[v, u] = sum of p_e over the (possibly duplicate) edges from u to v.
Unnormalised proposal scores (q = score / sum(score) over the pool):

    type-dependent, per relation r:      s_r(u) = sum_v P^r[v, u]^2
    type-fusion, per source type:        s(u)   = sum_r sum_v P^r[v, u]^2
    adaptive, per source type:           s(u)   = sum_r sum_v a_e P^r[v, u]  (a = edge weight)
    LADIES, type-blind:                  s(u)   = sum_v P[v, u]^2, P the adjacency of all
                                         relations merged, row-normalised over all of them
    uniform, per relation:               s_r(u) = 1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from reference.graph import BatchEdges, HeteroGraph, Relation, check_targets

__all__ = [
    "gather_batch",
    "check_edge_weights",
    "pair_square_sum",
    "unique_with_inverse",
]

EdgeWeightFn = Callable[[Relation, Tensor], "Tensor | None"]


def gather_batch(
    graph: HeteroGraph, targets: Mapping[str, Tensor]
) -> tuple[dict[str, Tensor], dict[Relation, BatchEdges]]:
    """Validate ``targets`` (node type -> (B_t,) ids) and collect the batch edges of every
    relation into a target type."""
    if not isinstance(graph, HeteroGraph):
        raise TypeError(f"graph must be a HeteroGraph, got {type(graph).__name__}")
    if not isinstance(targets, Mapping) or not targets:
        raise TypeError(
            "targets must be a non-empty mapping node type -> id tensor, "
            f"got {type(targets).__name__}"
        )
    clean = {}
    for t, ids in targets.items():
        if t not in graph.num_nodes:
            raise ValueError(
                f"targets has unknown node type {t!r}; known: {sorted(graph.num_nodes)}"
            )
        clean[t] = check_targets(f"targets[{t!r}]", ids, graph.num_nodes[t])
    batch = {
        rel: graph.batch_edges(rel, clean[rel[2]], validate=False)
        for rel in graph.relations
        if rel[2] in clean
    }
    return clean, batch


def _checked_weight(name: str, a: object, n: int) -> Tensor:
    """``a`` as a detached float64 (n,) tensor of finite non-negative values, or an error
    naming ``name``."""
    if not isinstance(a, Tensor) or not a.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor")
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(a.shape)}")
    a = a.detach().to(torch.float64)
    if not bool(torch.isfinite(a).all()) or bool((a < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    return a


def check_edge_weights(
    graph: HeteroGraph, edge_weight: Mapping[Relation, Tensor] | EdgeWeightFn | None
) -> dict[Relation, Tensor] | EdgeWeightFn:
    """Validate optional edge weights a, in either form ``aggregate.edge_weight_of``
    reads: a mapping relation -> (E_r,) tensor (finite, >= 0, CSR order; checked whole,
    returned as float64, empty without weights), or a callable ``(rel, edge_ids) -> (len,)
    tensor | None`` that computes a_e for a batch's edges only (O(batch edges) per batch,
    not O(E)); it is returned wrapped so that each result is checked the same way."""
    if edge_weight is None:
        return {}
    if callable(edge_weight) and not isinstance(edge_weight, Mapping):
        fn = edge_weight

        def checked(rel: Relation, edge_ids: Tensor) -> Tensor | None:
            a = fn(rel, edge_ids)
            return (
                None
                if a is None
                else _checked_weight(f"edge_weight({rel!r}, ids)", a, edge_ids.numel())
            )

        return checked
    if not isinstance(edge_weight, Mapping):
        raise TypeError(
            "edge_weight must be a mapping relation -> (E_r,) tensor or a callable "
            f"(relation, edge_ids) -> tensor, got {type(edge_weight).__name__}"
        )
    out = {}
    for rel, a in edge_weight.items():
        graph.check_relation(rel)
        out[rel] = _checked_weight(f"edge_weight[{rel!r}]", a, graph.relations[rel].num_edges)
    return out


def unique_with_inverse(ids: Tensor) -> tuple[Tensor, Tensor]:
    """Sorted distinct ids (K,) and, for every entry, its position among them."""
    uniq, inv = torch.unique(ids, sorted=True, return_inverse=True)
    return uniq, inv


def pair_square_sum(row: Tensor, col: Tensor, value: Tensor, num_cols: int) -> Tensor:
    """s[c] = sum_r (sum_{e: row[e]=r, col[e]=c} value[e])^2, i.e. squared column norms
    of the sparse matrix with (possibly repeated) entries (row, col, value)."""
    out = torch.zeros(num_cols, dtype=torch.float64)
    if row.numel() == 0:
        return out
    key = row * num_cols + col
    uniq, inv = torch.unique(key, return_inverse=True)
    merged = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inv, value)
    return out.index_add_(0, uniq % num_cols, merged * merged)
