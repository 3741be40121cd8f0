"""HEP-style model for heterogeneous graphs (one or two propagation steps), trainable
with any sampler x estimator, or exhaustively.

    e_u   = x_u P_t  (features of node type t projected to d; or a learned table
                      when the type has no features)
    a_e   = sigmoid(x_e . theta_r)                 (learned edge weight, relations with
                                                     edge features; 1 otherwise)
    m_v^r = sum_{kept e = (u -> v)} w_e a_e e_u    (estimator weights w; exact p_e for
                                                     the exhaustive path)
    h_v   = sigmoid(sum_r m_v^r W_r + b_t)          (the HEP layer)
    out_v = [e_v ; h_v]                             (2d), read by the task heads:
    (two layers, ``layers=2``: layer 1 computes h^1_u = sigmoid(sum_r m_u^r W_r + b_t)
    for every source u the targets' sample kept, from a second sample of u's own
    neighbourhoods; layer 2 aggregates those, h_v = sigmoid(sum_r m2_v^r W2_r + b2_t)
    with m2_v^r = sum_{kept e = (u -> v)} w_e a_e h^1_u. Layer-wise sampling bounds
    each hop's nodes by the budget, where the exhaustive 2-hop neighbourhood grows with
    degree^2: this is where it pays off.)
    node classification: logits = out_v C + c;
    link prediction: score = out_u M out_v^T / sqrt(2 dim) (M learned, starts at I)

Aggregation goes through ``impls.sampling.aggregate_block``, which uses the oracle's
summation code; only the sources a sample kept are embedded.

``represent(targets, sample)`` runs the model on the targets (type -> distinct ids) with
``sample(targets) -> (block, weights)`` giving each hop's sample, outermost hop first;
``forward(block, weights)`` is the one-layer step on a given block.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from impls.sampling import SampledBlock, aggregate_block
from reference.aggregation import combine_relation_aggregates
from reference.graph import HeteroGraph, Relation

__all__ = ["HEPModel"]


def _key(rel: Relation) -> str:
    return "__".join(rel)


Sample = Callable[[dict[str, Tensor]], tuple[SampledBlock, dict[Relation, Tensor]]]


class HEPModel(nn.Module):
    def __init__(
        self,
        graph: HeteroGraph,
        dim: int = 64,
        num_classes: int = 0,
        seed: int = 0,
        layers: int = 1,
    ) -> None:
        super().__init__()
        if layers not in (1, 2):
            raise ValueError(f"layers must be 1 or 2, got {layers!r}")
        gen = torch.Generator().manual_seed(seed)
        self.graph = graph
        self.dim = dim
        self.layers = layers
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
        if layers == 2:  # drawn after the one-layer parameters: layers=1 models are unchanged
            self.rel_weight2 = nn.ParameterDict(
                {
                    _key(r): nn.Parameter(torch.randn(dim, dim, generator=gen) / dim**0.5)
                    for r in graph.relations
                }
            )
            self.bias2 = nn.ParameterDict(
                {t: nn.Parameter(torch.zeros(dim)) for t in graph.num_nodes}
            )
        self.classifier = nn.Linear(2 * dim, num_classes) if num_classes else None
        self.link = nn.Parameter(torch.eye(2 * dim))

    def embed(self, node_type: str, ids: Tensor) -> Tensor:
        """e for the given ids of node_type: (len(ids), dim)."""
        if node_type in self.proj:
            proj = self.proj[node_type]
            return self.graph.node_features[node_type][ids].to(proj.dtype) @ proj
        return self.table[node_type][ids]

    def edge_weight(self, rel: Relation, edge_ids: Tensor) -> Tensor | None:
        """a_e for the given CSR edge ids of rel (None without edge features)."""
        k = _key(rel)
        if k not in self.theta:
            return None
        theta = self.theta[k]
        return torch.sigmoid(
            self.graph.relations[rel].edge_features[edge_ids].to(theta.dtype) @ theta
        )

    @torch.no_grad()
    def proposal_edge_weight(self, rel: Relation, edge_ids: Tensor) -> Tensor | None:
        """Detached a_e of the given CSR edge ids of rel, None without edge
        features: the adaptive sampler's input, computed for a batch's edges only (the
        proposal gets no gradient)."""
        return self.edge_weight(rel, edge_ids)

    def _hep(
        self,
        block: SampledBlock,
        weights: dict[Relation, Tensor],
        x: Callable[[str, Tensor], Tensor],
        rel_weight: nn.ParameterDict,
        bias: nn.ParameterDict,
    ) -> dict[str, Tensor]:
        """h_v = sigmoid(sum_r m_v^r W_r + b_t) for the block's targets: type -> (B_t, dim);
        a type with no incoming relation gets sigmoid(b_t)."""
        m = aggregate_block(block, weights, x, self.edge_weight)
        out = {}
        for t, ids in block.targets.items():
            rels = {r: v for r, v in m.items() if r[2] == t}
            if rels:
                w = {r: rel_weight[_key(r)] for r in rels}
                out[t] = combine_relation_aggregates(rels, w, bias[t])
            else:
                out[t] = torch.sigmoid(bias[t]).expand(ids.numel(), self.dim)
        return out

    def _with_embedding(self, block: SampledBlock, h: dict[str, Tensor]) -> dict[str, Tensor]:
        """[e_v ; h_v] for the block's targets: type -> (B_t, 2 dim)."""
        return {t: torch.cat([self.embed(t, ids), h[t]], dim=1) for t, ids in block.targets.items()}

    def forward(self, block: SampledBlock, weights: dict[Relation, Tensor]) -> dict[str, Tensor]:
        """One layer: [e_v ; h_v] for the targets of every type in the block:
        type -> (B_t, 2 dim)."""
        return self._with_embedding(
            block, self._hep(block, weights, self.embed, self.rel_weight, self.bias)
        )

    def represent(
        self, targets: dict[str, Tensor], sample: Sample
    ) -> tuple[dict[str, Tensor], list[SampledBlock]]:
        """[e_v ; h_v] for ``targets`` (type -> distinct ids): type -> (B_t, 2 dim), and
        the blocks used, outermost hop first. ``sample(targets)`` returns one hop's
        (block, estimator weights)."""
        top, top_weights = sample(targets)
        if self.layers == 1:
            return self(top, top_weights), [top]
        sources: dict[str, list[Tensor]] = {}
        for rel, s in top.relations.items():
            sources.setdefault(rel[0], []).append(s.src)
        inner_targets = {t: torch.unique(torch.cat(v)) for t, v in sources.items()}
        blocks, h1 = [top], {}
        if inner_targets:  # else nothing was kept: layer 2 sees no neighbour
            inner, inner_weights = sample(inner_targets)
            blocks.append(inner)
            h1 = self._hep(inner, inner_weights, self.embed, self.rel_weight, self.bias)

        def hidden(t: str, ids: Tensor) -> Tensor:
            if ids.numel() == 0:
                return self.bias2[t].new_zeros(0, self.dim)
            return h1[t][torch.searchsorted(inner_targets[t], ids)]

        h = self._hep(top, top_weights, hidden, self.rel_weight2, self.bias2)
        return self._with_embedding(top, h), blocks

    def link_score(self, rep_u: Tensor, rep_v: Tensor) -> Tensor:
        """(P,) scores of the pairs (rep_u[i], rep_v[i]); both (P, 2 dim)."""
        return ((rep_u @ self.link) * rep_v).sum(1) / (2 * self.dim) ** 0.5

    def classify(self, rep: Tensor) -> Tensor:
        if self.classifier is None:
            raise ValueError("model was built with num_classes=0; no classifier head")
        return self.classifier(rep)
