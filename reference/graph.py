"""HeteroGraph: a heterogeneous graph stored as one CSR per relation.

A relation is a triple ``(src_type, name, dst_type)``; its edges point from a node of
``src_type`` to a node of ``dst_type``, and messages flow along them, so the neighbours
of a target ``v`` under relation ``r`` are the *sources* of the edges ending at ``v``:

    N_r(v) = multiset { src[e] : dst[e] == v, e an edge of r }

Duplicate edges are kept: a neighbour reached by two parallel edges counts twice in
``|N_r(v)|`` and in every sum over ``N_r(v)``.

Storage, per relation ``r`` (``D`` = number of ``dst_type`` nodes, ``E_r`` = edges):
    indptr:  (D + 1,) int64, non-decreasing; the edges ending at v are
             ``indptr[v] : indptr[v + 1]`` (a CSR whose rows are destinations)
    indices: (E_r,) int64, the source node of each edge, in CSR order
    edge_features (optional): (E_r, F_r) floating, row e belongs to CSR edge e
Node features (optional): (num_nodes[t], F_t) floating per node type.

Edges given as an edge list are put into CSR order by a *stable* sort on the
destination, so edges ending at the same node keep their input order.

This is plain data read by the oracle (``reference.aggregation``) and by the samplers
(``impls.sampling``), which reach it only through :meth:`HeteroGraph.batch_edges`.
Conversion to and from torch_geometric's ``HeteroData`` is optional: the functions
import torch_geometric lazily and raise ImportError with a clear message without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Relation", "RelationCSR", "BatchEdges", "HeteroGraph", "check_targets"]

Relation = tuple[str, str, str]


@dataclass(frozen=True)
class RelationCSR:
    """One relation's edges in CSR order (rows = destination nodes).

    indptr: (num_dst + 1,) int64; indices: (E,) int64 source ids;
    edge_features: (E, F) floating or None.
    """

    indptr: Tensor
    indices: Tensor
    edge_features: Tensor | None = None

    @property
    def num_edges(self) -> int:
        return int(self.indices.numel())

    def in_degree(self) -> Tensor:
        """(num_dst,) int64: |N_r(v)| for every destination node v (duplicates counted)."""
        return self.indptr[1:] - self.indptr[:-1]


@dataclass(frozen=True)
class BatchEdges:
    """All edges of one relation that end at a batch of targets, in CSR order.

    dst: (K,) int64, position of the edge's target inside the batch (0..B-1)
    src: (K,) int64, global id of the source node (a node of ``src_type``)
    edge_id: (K,) int64, index of the edge in the relation's CSR arrays
    degree: (B,) int64, |N_r(v)| of every target (so ``degree.sum() == K``)
    """

    dst: Tensor
    src: Tensor
    edge_id: Tensor
    degree: Tensor

    @property
    def num_edges(self) -> int:
        return int(self.src.numel())


def _check_int_vector(name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    return t.to(torch.int64)


def _check_features(name: str, t: object, rows: int) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {tuple(t.shape)}")
    if t.shape[0] != rows:
        raise ValueError(f"{name} has {t.shape[0]} rows, expected {rows}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf; expected finite values")
    return t


def check_targets(name: str, targets: object, num_nodes: int) -> Tensor:
    """Validate a batch of target ids: 1-D integer, in [0, num_nodes), no repeats.

    Returns the ids as int64. Raises TypeError/ValueError naming ``name``.
    """
    t = _check_int_vector(name, targets)
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"{name} holds ids outside [0, {num_nodes}): min {lo}, max {hi}")
        if torch.unique(t).numel() != t.numel():
            raise ValueError(f"{name} holds repeated ids; a batch lists each target once")
    return t


class HeteroGraph:
    """A heterogeneous graph: node types with counts, relations stored as CSR.

    Build it with :meth:`from_edge_index` (edge lists) or directly from CSR arrays:

        HeteroGraph(num_nodes={"user": 3, "item": 4},
                    relations={("user", "rates", "item"): RelationCSR(indptr, indices)},
                    node_features={"user": x_user})

    Every input is validated; errors name the offending argument.
    """

    def __init__(
        self,
        num_nodes: Mapping[str, int],
        relations: Mapping[Relation, RelationCSR],
        node_features: Mapping[str, Tensor] | None = None,
    ) -> None:
        if not isinstance(num_nodes, Mapping):
            raise TypeError(
                f"num_nodes must be a mapping type -> count, got {type(num_nodes).__name__}"
            )
        self.num_nodes: dict[str, int] = {}
        for t, n in num_nodes.items():
            if not isinstance(t, str) or not t:
                raise TypeError(f"num_nodes keys must be non-empty str node types, got {t!r}")
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"num_nodes[{t!r}] must be an int, got {type(n).__name__}")
            if n < 0:
                raise ValueError(f"num_nodes[{t!r}] must be >= 0, got {n}")
            self.num_nodes[t] = n
        if not isinstance(relations, Mapping):
            raise TypeError(
                "relations must be a mapping relation -> RelationCSR, "
                f"got {type(relations).__name__}"
            )
        self.relations: dict[Relation, RelationCSR] = {}
        for rel, csr in relations.items():
            rel = self._check_relation_key("relations", rel)
            if not isinstance(csr, RelationCSR):
                raise TypeError(
                    f"relations[{rel!r}] must be a RelationCSR, got {type(csr).__name__}"
                )
            self.relations[rel] = self._check_csr(rel, csr)
        self.node_features: dict[str, Tensor] = {}
        for t, x in (node_features or {}).items():
            if t not in self.num_nodes:
                raise ValueError(
                    f"node_features has unknown node type {t!r}; known: {sorted(self.num_nodes)}"
                )
            self.node_features[t] = _check_features(f"node_features[{t!r}]", x, self.num_nodes[t])

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(
        cls,
        num_nodes: Mapping[str, int],
        edge_index: Mapping[Relation, Tensor],
        node_features: Mapping[str, Tensor] | None = None,
        edge_features: Mapping[Relation, Tensor] | None = None,
    ) -> HeteroGraph:
        """Build from edge lists: ``edge_index[rel]`` is (2, E) int, row 0 source ids,
        row 1 destination ids. ``edge_features[rel]`` is (E, F), in edge-list order."""
        if not isinstance(num_nodes, Mapping):
            raise TypeError(
                f"num_nodes must be a mapping type -> count, got {type(num_nodes).__name__}"
            )
        if not isinstance(edge_index, Mapping):
            raise TypeError(
                "edge_index must be a mapping relation -> (2, E) tensor, "
                f"got {type(edge_index).__name__}"
            )
        edge_features = dict(edge_features or {})
        for rel in edge_features:
            if rel not in edge_index:
                raise ValueError(f"edge_features has relation {rel!r} that is not in edge_index")
        relations: dict[Relation, RelationCSR] = {}
        for rel, ei in edge_index.items():
            rel = cls._check_relation_key("edge_index", rel)
            name = f"edge_index[{rel!r}]"
            if not isinstance(ei, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(ei).__name__}")
            if ei.dtype.is_floating_point or ei.dtype.is_complex or ei.dtype == torch.bool:
                raise TypeError(f"{name} must be an integer tensor, got {ei.dtype}")
            if ei.dim() != 2 or ei.shape[0] != 2:
                raise ValueError(f"{name} must have shape (2, E), got {tuple(ei.shape)}")
            src_t, _, dst_t = rel
            for t in (src_t, dst_t):
                if t not in num_nodes:
                    raise ValueError(
                        f"{name} uses unknown node type {t!r}; known: {sorted(num_nodes)}"
                    )
            ei = ei.to(torch.int64)
            src, dst = ei[0], ei[1]
            n_src, n_dst = int(num_nodes[src_t]), int(num_nodes[dst_t])
            for row, ids, n, t in (
                ("source", src, n_src, src_t),
                ("destination", dst, n_dst, dst_t),
            ):
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
                    raise ValueError(
                        f"{name} has {row} ids outside [0, {n}) for node type {t!r}: "
                        f"min {int(ids.min())}, max {int(ids.max())}"
                    )
            order = torch.sort(dst, stable=True).indices
            counts = torch.bincount(dst, minlength=n_dst)
            indptr = torch.zeros(n_dst + 1, dtype=torch.int64)
            indptr[1:] = torch.cumsum(counts, 0)
            feats = edge_features.get(rel)
            if feats is not None:
                feats = _check_features(f"edge_features[{rel!r}]", feats, src.numel())[order]
            relations[rel] = RelationCSR(indptr, src[order].contiguous(), feats)
        return cls(num_nodes, relations, node_features)

    @staticmethod
    def _check_relation_key(arg: str, rel: object) -> Relation:
        if (
            not isinstance(rel, tuple)
            or len(rel) != 3
            or not all(isinstance(p, str) and p for p in rel)
        ):
            raise TypeError(
                f"{arg} keys must be (src_type, name, dst_type) tuples of str, got {rel!r}"
            )
        return rel  # type: ignore[return-value]

    def _check_csr(self, rel: Relation, csr: RelationCSR) -> RelationCSR:
        src_t, _, dst_t = rel
        for t in (src_t, dst_t):
            if t not in self.num_nodes:
                raise ValueError(
                    f"relations[{rel!r}] uses unknown node type {t!r}; "
                    f"known: {sorted(self.num_nodes)}"
                )
        indptr = _check_int_vector(f"relations[{rel!r}].indptr", csr.indptr)
        indices = _check_int_vector(f"relations[{rel!r}].indices", csr.indices)
        n_dst, n_src = self.num_nodes[dst_t], self.num_nodes[src_t]
        if indptr.numel() != n_dst + 1:
            raise ValueError(
                f"relations[{rel!r}].indptr has {indptr.numel()} entries, expected "
                f"num_nodes[{dst_t!r}] + 1 = {n_dst + 1}"
            )
        if int(indptr[0]) != 0 or int(indptr[-1]) != indices.numel():
            raise ValueError(
                f"relations[{rel!r}].indptr must start at 0 and end at the edge count "
                f"{indices.numel()}, got {int(indptr[0])} .. {int(indptr[-1])}"
            )
        if bool((indptr[1:] < indptr[:-1]).any()):
            raise ValueError(f"relations[{rel!r}].indptr must be non-decreasing")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n_src):
            raise ValueError(
                f"relations[{rel!r}].indices has source ids outside [0, {n_src}) for node "
                f"type {src_t!r}: min {int(indices.min())}, max {int(indices.max())}"
            )
        feats = csr.edge_features
        if feats is not None:
            feats = _check_features(f"relations[{rel!r}].edge_features", feats, indices.numel())
        return RelationCSR(indptr.contiguous(), indices.contiguous(), feats)

    # ------------------------------------------------------------------ queries
    @property
    def node_types(self) -> list[str]:
        return list(self.num_nodes)

    @property
    def num_edges(self) -> int:
        return sum(csr.num_edges for csr in self.relations.values())

    def relations_into(self, dst_type: str) -> list[Relation]:
        """Relations whose destination type is ``dst_type``, in insertion order."""
        if dst_type not in self.num_nodes:
            raise ValueError(
                f"dst_type {dst_type!r} is not a node type; known: {sorted(self.num_nodes)}"
            )
        return [r for r in self.relations if r[2] == dst_type]

    def check_relation(self, relation: object) -> Relation:
        """Return ``relation`` if the graph has it, else raise ValueError naming it."""
        if relation not in self.relations:
            raise ValueError(
                f"relation {relation!r} is not in the graph; known: {list(self.relations)}"
            )
        return relation  # type: ignore[return-value]

    def batch_edges(
        self, relation: Relation, targets: Tensor, *, validate: bool = True
    ) -> BatchEdges:
        """Every edge of ``relation`` ending at one of ``targets`` (ids of its dst type).

        The narrow protocol through which samplers and the oracle read the graph.
        Returns :class:`BatchEdges` in CSR order: targets in batch order, and for each
        target its edges in CSR order. ``validate=False`` skips the target checks, for
        callers that ran :func:`check_targets` on this batch already.
        """
        rel = self.check_relation(relation)
        csr = self.relations[rel]
        t = check_targets("targets", targets, self.num_nodes[rel[2]]) if validate else targets
        start = csr.indptr[t]
        degree = csr.indptr[t + 1] - start
        total = int(degree.sum())
        dst = torch.repeat_interleave(
            torch.arange(t.numel(), dtype=torch.int64), degree, output_size=total
        )
        group_start = torch.cumsum(degree, 0) - degree  # offset of each target's first edge
        offset = torch.arange(total, dtype=torch.int64) - group_start[dst]
        edge_id = start[dst] + offset
        return BatchEdges(dst=dst, src=csr.indices[edge_id], edge_id=edge_id, degree=degree)

    def edge_index(self, relation: Relation) -> Tensor:
        """(2, E) int64 edge list of ``relation`` in CSR order (row 0 source, row 1 dest)."""
        csr = self.relations[self.check_relation(relation)]
        dst = torch.repeat_interleave(
            torch.arange(csr.indptr.numel() - 1, dtype=torch.int64),
            csr.in_degree(),
            output_size=csr.num_edges,
        )
        return torch.stack([csr.indices, dst])

    def __repr__(self) -> str:
        rels = ", ".join(f"{r}: {c.num_edges}" for r, c in self.relations.items())
        return f"HeteroGraph(num_nodes={self.num_nodes}, edges={{{rels}}})"

    # ------------------------------------------------------------------ torch_geometric
    def to_hetero_data(self):
        """Convert to ``torch_geometric.data.HeteroData`` (edges in CSR order).

        Node features go to ``data[t].x``, edge lists to ``data[rel].edge_index`` and
        edge features to ``data[rel].edge_attr``. Needs torch_geometric.
        """
        HeteroData = _import_hetero_data()
        data = HeteroData()
        for t, n in self.num_nodes.items():
            data[t].num_nodes = n
            if t in self.node_features:
                data[t].x = self.node_features[t]
        for rel, csr in self.relations.items():
            data[rel].edge_index = self.edge_index(rel)
            if csr.edge_features is not None:
                data[rel].edge_attr = csr.edge_features
        return data

    @classmethod
    def from_hetero_data(cls, data) -> HeteroGraph:
        """Build from a ``torch_geometric.data.HeteroData`` (reads num_nodes, x,
        edge_index and edge_attr). Needs torch_geometric."""
        HeteroData = _import_hetero_data()
        if not isinstance(data, HeteroData):
            raise TypeError(f"data must be a torch_geometric HeteroData, got {type(data).__name__}")
        num_nodes, feats = {}, {}
        for t in data.node_types:
            store = data[t]
            n = store.num_nodes
            if n is None:
                raise ValueError(f"data[{t!r}] has no num_nodes and no x to infer it from")
            num_nodes[t] = int(n)
            if "x" in store and store.x is not None:
                feats[t] = store.x
        edges, edge_feats = {}, {}
        for rel in data.edge_types:
            store = data[rel]
            if "edge_index" not in store:
                raise ValueError(f"data[{rel!r}] has no edge_index")
            edges[tuple(rel)] = store.edge_index
            if "edge_attr" in store and store.edge_attr is not None:
                edge_feats[tuple(rel)] = store.edge_attr
        return cls.from_edge_index(num_nodes, edges, feats, edge_feats)


def _import_hetero_data():
    try:
        from torch_geometric.data import HeteroData
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "HeteroData conversion needs torch_geometric; install the 'graph' extra "
            "(pip install 'lisa-bench[graph]')"
        ) from exc
    return HeteroData
