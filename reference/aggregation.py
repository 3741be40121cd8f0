"""Exhaustive heterogeneous neighbourhood aggregation: the oracle for the samplers.

Notation (see ``docs/hig-sampling.md``): batch of targets V_B of one node type; relation
r = (src_type, name, dst_type) with dst_type the targets' type; N_r(v) the multiset of
type-r neighbours of v (duplicate edges counted, see ``reference.graph``); e_u the
embedding of u (a row of ``x[src_type]``); a_e an optional non-negative edge weight.

    p_e^r   = 1 / |N_r(v)|                    for every edge e = (u -> v) of r
    m_v^r   = sum_{e = (u -> v) in r} p_e^r a_e e_u            (per-type mean aggregate)
    z_v     = sum_r m_v^r W_r
    h_v     = sigmoid(z_v + b)                                   (the HEP layer)

A target with no type-r neighbour has m_v^r = 0. Shapes: ``x[t]`` (num_nodes[t], d);
``W_r`` (d, d_out); ``b`` (d_out,); results (B, d) and (B, d_out).

All sums go through :func:`weighted_neighbour_sum`, which the sampled path
(``impls.sampling``) calls too, so that a sample keeping every edge with weight p_e
reproduces this oracle exactly. Run it in float64 for oracle use; any floating dtype
works. Written to be checked by eye, not to be fast.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from reference.graph import HeteroGraph, Relation, check_targets

__all__ = [
    "weighted_neighbour_sum",
    "mean_aggregate",
    "combine_relation_aggregates",
    "hep_layer",
    "edge_weight_from_features",
]


def weighted_neighbour_sum(
    dst: Tensor,
    src: Tensor,
    weight: Tensor,
    x_src: Tensor,
    num_dst: int,
    edge_weight: Tensor | None = None,
) -> Tensor:
    """out[v] = sum_{e : dst[e] == v} weight[e] * edge_weight[e] * x_src[src[e]].

    dst, src: (K,) int64; weight: (K,) floating (p_e for the oracle, an estimator's
    weight for a sample); edge_weight: (K,) or None (= 1); x_src: (N_src, d).
    Returns (num_dst, d) in x_src's dtype. Edges are added in the order given.
    """
    if not isinstance(x_src, Tensor) or x_src.dim() != 2:
        raise ValueError(
            f"x_src must be a 2-D tensor (nodes, dim), got {getattr(x_src, 'shape', x_src)!r}"
        )
    if not (dst.shape == src.shape == weight.shape) or dst.dim() != 1:
        raise ValueError(
            f"dst, src and weight must be 1-D of one length, got {tuple(dst.shape)}, "
            f"{tuple(src.shape)}, {tuple(weight.shape)}"
        )
    coef = weight
    if edge_weight is not None:
        if edge_weight.shape != weight.shape:
            raise ValueError(
                f"edge_weight must have shape {tuple(weight.shape)}, got {tuple(edge_weight.shape)}"
            )
        coef = coef * edge_weight
    out = x_src.new_zeros((num_dst, x_src.shape[1]))
    if dst.numel() == 0:
        return out
    return out.index_add(0, dst, coef.to(x_src.dtype).unsqueeze(1) * x_src[src])


def _check_x(name: str, x: object, rows: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() != 2 or x.shape[0] != rows:
        raise ValueError(f"{name} must have shape ({rows}, d), got {tuple(x.shape)}")
    return x


def _check_edge_weight(name: str, a: object, num_edges: int) -> Tensor:
    if not isinstance(a, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(a).__name__}")
    if not a.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {a.dtype}")
    if a.shape != (num_edges,):
        raise ValueError(
            f"{name} must have shape ({num_edges},) (one per edge, CSR order), got {tuple(a.shape)}"
        )
    if not bool(torch.isfinite(a).all()) or bool((a < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    return a


def mean_aggregate(
    graph: HeteroGraph,
    relation: Relation,
    x_src: Tensor,
    targets: Tensor | None = None,
    edge_weight: Tensor | None = None,
) -> Tensor:
    """Exhaustive m_v^r for every v in ``targets`` (default: all nodes of dst_type).

    x_src: (num_nodes[src_type], d); edge_weight: (E_r,) per CSR edge, or None.
    Returns (B, d); rows of targets without a type-r neighbour are zero.
    """
    rel = graph.check_relation(relation)
    src_t, _, dst_t = rel
    x_src = _check_x("x_src", x_src, graph.num_nodes[src_t])
    if targets is None:
        targets = torch.arange(graph.num_nodes[dst_t], dtype=torch.int64)
    targets = check_targets("targets", targets, graph.num_nodes[dst_t])
    edges = graph.batch_edges(rel, targets)
    p = 1.0 / edges.degree.to(torch.float64)[edges.dst]
    a = None
    if edge_weight is not None:
        a = _check_edge_weight("edge_weight", edge_weight, graph.relations[rel].num_edges)[
            edges.edge_id
        ]
    return weighted_neighbour_sum(edges.dst, edges.src, p, x_src, targets.numel(), a)


def combine_relation_aggregates(
    aggregates: Mapping[Relation, Tensor], weight: Mapping[Relation, Tensor], bias: Tensor
) -> Tensor:
    """h = sigmoid(sum_r m^r W_r + b). aggregates[r]: (B, d); weight[r]: (d, d_out);
    bias: (d_out,). Returns (B, d_out). Relations are summed in the mapping's order."""
    if not aggregates:
        raise ValueError("aggregates is empty: the target type has no incoming relation")
    z = None
    for rel, m in aggregates.items():
        if rel not in weight:
            raise ValueError(f"weight has no matrix for relation {rel!r}")
        w = weight[rel]
        if w.dim() != 2 or w.shape[0] != m.shape[1]:
            raise ValueError(
                f"weight[{rel!r}] must have shape ({m.shape[1]}, d_out), got {tuple(w.shape)}"
            )
        term = m @ w
        z = term if z is None else z + term
    if bias.shape != (z.shape[1],):
        raise ValueError(f"bias must have shape ({z.shape[1]},), got {tuple(bias.shape)}")
    return torch.sigmoid(z + bias)


def hep_layer(
    graph: HeteroGraph,
    target_type: str,
    targets: Tensor,
    x: Mapping[str, Tensor],
    weight: Mapping[Relation, Tensor],
    bias: Tensor,
    edge_weight: Mapping[Relation, Tensor] | None = None,
) -> Tensor:
    """Exhaustive HEP layer: h_v = sigmoid(sum_r m_v^r W_r + b) for v in ``targets``.

    Sums over every relation whose dst_type is ``target_type``. x[t]: (num_nodes[t], d);
    weight[r]: (d, d_out); bias: (d_out,); edge_weight[r]: (E_r,) optional.
    Returns (B, d_out).
    """
    rels = graph.relations_into(target_type)
    aggregates = {}
    for rel in rels:
        if rel[0] not in x:
            raise ValueError(f"x has no embeddings for node type {rel[0]!r} (needed by {rel!r})")
        a = None if edge_weight is None else edge_weight.get(rel)
        aggregates[rel] = mean_aggregate(graph, rel, x[rel[0]], targets, a)
    return combine_relation_aggregates(aggregates, weight, bias)


def edge_weight_from_features(edge_features: Tensor, theta: Tensor) -> Tensor:
    """a_e = sigmoid(x_e . theta). edge_features: (E, F); theta: (F,). Returns (E,)."""
    if edge_features.dim() != 2:
        raise ValueError(f"edge_features must be 2-D (E, F), got {tuple(edge_features.shape)}")
    if theta.shape != (edge_features.shape[1],):
        raise ValueError(
            f"theta must have shape ({edge_features.shape[1]},) matching edge_features "
            f"{tuple(edge_features.shape)}, got {tuple(theta.shape)}"
        )
    return torch.sigmoid(edge_features @ theta)
