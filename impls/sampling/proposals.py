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
    "EdgeWeights",
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


class EdgeWeights:
    """Validated edge weights a_e, read per batch: ``get(rel, edge_ids)`` -> (len,) float64
    or None when ``rel`` has no weights.

    Built from a mapping relation -> (E_r,) tensor (checked whole, once) or from a
    callable ``fn(rel, edge_ids) -> (len,) tensor | None``: the callable form computes
    weights only for the edges a batch touches, so a learned a_e costs O(batch edges)
    per batch instead of O(E); its values are checked at each call."""

    def __init__(
        self,
        table: dict[Relation, Tensor] | None = None,
        fn: EdgeWeightFn | None = None,
        graph: HeteroGraph | None = None,
    ) -> None:
        self._table = table or {}
        self._fn = fn
        self._graph = graph

    def __bool__(self) -> bool:
        return bool(self._table) or self._fn is not None

    def get(self, rel: Relation, edge_ids: Tensor) -> Tensor | None:
        if self._fn is None:
            a = self._table.get(rel)
            return None if a is None else a[edge_ids]
        a = self._fn(rel, edge_ids)
        if a is None:
            return None
        n = edge_ids.numel()
        if not isinstance(a, Tensor) or not a.is_floating_point():
            raise TypeError(f"edge_weight({rel!r}, ids) must return a floating tensor or None")
        if a.shape != (n,):
            raise ValueError(
                f"edge_weight({rel!r}, ids) must return shape ({n},), got {tuple(a.shape)}"
            )
        a = a.detach().to(torch.float64)
        if not bool(torch.isfinite(a).all()) or bool((a < 0).any()):
            raise ValueError(f"edge_weight({rel!r}, ids) must be finite and non-negative")
        return a


def check_edge_weights(
    graph: HeteroGraph, edge_weight: Mapping[Relation, Tensor] | EdgeWeightFn | None
) -> EdgeWeights:
    """Validate optional edge weights a: a mapping relation -> (E_r,) tensor (finite,
    >= 0, CSR order) or a callable ``(rel, edge_ids) -> (len,) tensor | None``."""
    if edge_weight is None:
        return EdgeWeights()
    if callable(edge_weight) and not isinstance(edge_weight, Mapping):
        return EdgeWeights(fn=edge_weight, graph=graph)
    if not isinstance(edge_weight, Mapping):
        raise TypeError(
            "edge_weight must be a mapping relation -> (E_r,) tensor or a callable "
            f"(relation, edge_ids) -> tensor, got {type(edge_weight).__name__}"
        )
    out = {}
    for rel, a in edge_weight.items():
        graph.check_relation(rel)
        n = graph.relations[rel].num_edges
        if not isinstance(a, Tensor) or not a.is_floating_point():
            raise TypeError(f"edge_weight[{rel!r}] must be a floating tensor")
        if a.shape != (n,):
            raise ValueError(f"edge_weight[{rel!r}] must have shape ({n},), got {tuple(a.shape)}")
        a = a.detach().to(torch.float64)
        if not bool(torch.isfinite(a).all()) or bool((a < 0).any()):
            raise ValueError(f"edge_weight[{rel!r}] must be finite and non-negative")
        out[rel] = a
    return EdgeWeights(table=out, graph=graph)


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
