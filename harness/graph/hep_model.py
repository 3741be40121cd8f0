"""HEP-style model for heterogeneous graphs (one propagation step), trainable with any
sampler x estimator, or exhaustively.

    e_u   = x_u P_t  (features of node type t projected to d; or a learned table
                      when the type has no features)
    a_e   = sigmoid(x_e . theta_r)                 (learned edge weight, relations with
                                                     edge features; 1 otherwise)
    m_v^r = sum_{kept e = (u -> v)} w_e a_e e_u    (estimator weights w; exact p_e for
                                                     the exhaustive path)
    h_v   = sigmoid(sum_r m_v^r W_r + b_t)          (the HEP layer)
    out_v = [e_v ; h_v]                             (2d), read by the task heads:
    node classification: logits = out_v C + c;
    link prediction: score = out_u M out_v^T / sqrt(2 dim) (M learned, starts at I)

Aggregation goes through ``impls.sampling.aggregate_block``, which uses the oracle's
summation code; only the sources a sample kept are embedded.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from impls.sampling import SampledBlock, aggregate_block
from reference.aggregation import combine_relation_aggregates
from reference.graph import HeteroGraph, Relation

__all__ = ["HEPModel"]


def _key(rel: Relation) -> str:
    return "__".join(rel)


class HEPModel(nn.Module):
    def __init__(
        self, graph: HeteroGraph, dim: int = 64, num_classes: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.graph = graph
        self.dim = dim
        self.proj = nn.ParameterDict()
        self.table = nn.ParameterDict()
        for t, n in graph.num_nodes.items():
            if t in graph.node_features:
                f = graph.node_features[t].shape[1]
                self.proj[t] = nn.Parameter(torch.randn(f, dim, generator=gen) / f**0.5)
            else:
                self.table[t] = nn.Parameter(torch.randn(n, dim, generator=gen) * 0.1)
        self.rel_weight = nn.ParameterDict(
            {
                _key(r): nn.Parameter(torch.randn(dim, dim, generator=gen) / dim**0.5)
                for r in graph.relations
            }
        )
        self.bias = nn.ParameterDict({t: nn.Parameter(torch.zeros(dim)) for t in graph.num_nodes})
        self.theta = nn.ParameterDict(
            {
                _key(r): nn.Parameter(torch.zeros(c.edge_features.shape[1]))
                for r, c in graph.relations.items()
                if c.edge_features is not None
            }
        )
        self.classifier = nn.Linear(2 * dim, num_classes) if num_classes else None
        self.link = nn.Parameter(torch.eye(2 * dim))

    def embed(self, node_type: str, ids: Tensor) -> Tensor:
        """e for the given ids of node_type: (len(ids), dim)."""
        if node_type in self.proj:
            return self.graph.node_features[node_type][ids] @ self.proj[node_type]
        return self.table[node_type][ids]

    def edge_weight(self, rel: Relation, edge_ids: Tensor) -> Tensor | None:
        """a_e for the given CSR edge ids of rel (None without edge features)."""
        k = _key(rel)
        if k not in self.theta:
            return None
        return torch.sigmoid(self.graph.relations[rel].edge_features[edge_ids] @ self.theta[k])

    @torch.no_grad()
    def proposal_edge_weights(self) -> dict[Relation, Tensor]:
        """Detached a_e of every edge, per relation with features (the adaptive sampler's
        input; the proposal gets no gradient)."""
        out = {}
        for r, c in self.graph.relations.items():
            if _key(r) in self.theta:
                out[r] = torch.sigmoid(c.edge_features @ self.theta[_key(r)]).double()
        return out

    def forward(self, block: SampledBlock, weights: dict[Relation, Tensor]) -> dict[str, Tensor]:
        """[e_v ; h_v] for the targets of every type in the block: type -> (B_t, 2 dim)."""
        m = aggregate_block(block, weights, self.embed, self.edge_weight)
        out = {}
        for t, ids in block.targets.items():
            e = self.embed(t, ids)
            rels = {r: v for r, v in m.items() if r[2] == t}
            if rels:
                w = {r: self.rel_weight[_key(r)] for r in rels}
                h = combine_relation_aggregates(rels, w, self.bias[t])
            else:
                h = torch.sigmoid(self.bias[t]).expand(ids.numel(), self.dim)
            out[t] = torch.cat([e, h], dim=1)
        return out

    def link_score(self, rep_u: Tensor, rep_v: Tensor) -> Tensor:
        """(P,) scores of the pairs (rep_u[i], rep_v[i]); both (P, 2 dim)."""
        return ((rep_u @ self.link) * rep_v).sum(1) / (2 * self.dim) ** 0.5

    def classify(self, rep: Tensor) -> Tensor:
        if self.classifier is None:
            raise ValueError("model was built with num_classes=0; no classifier head")
        return self.classifier(rep)
