"""Estimators: turn a SampledBlock into one weight w_e per kept edge, so that

    m_hat_v^r = sum_{kept e = (u -> v) in r} w_e a_e e_u

(computed by ``impls.sampling.aggregate`` with the oracle's own summation code).
Any sampler works with any estimator. p_e = 1 / |N_r(v)|; f_e the block's expansion
factor (c(u) / (n q(u)) with replacement, 1 / pi_u without).

- ``ImportanceSampling`` (Hansen-Hurwitz / Horvitz-Thompson): w_e = p_e f_e.
  E[m_hat_v^r] = m_v^r exactly, since E[f_e 1{e kept}] = 1.
- ``SelfNormalized`` (Hajek): w_e = p_e f_e / sum_{kept e' at (v, r)} p_e' f_e'
  = f_e / sum f_e' (p_e is constant over the edges of one target and relation).
  Draw counts are part of f (the authors' code dropped them and was inconsistent), and
  the normalisation is per target AND per relation, so weights sum to 1 per type like
  the exact p (the authors' type-fusion code normalised over all types at once, shrinking
  z_v by about the number of types). Biased, consistent as the budget grows.
  A target with no kept type-r edge gets m_hat = 0 (listed by ``uncovered``).
- ``Adaptive``: the importance-sampling weights, plus :meth:`Adaptive.variance_penalty`
  xi * sum_u c(u) ||g_u - g_bar||^2 / (d sum_u c(u)) with g_u the single-draw estimate of
  the batch-mean aggregate from u, g_bar their count-weighted mean (AS-GCN style). Used
  with the adaptive sampler, whose q comes from the learned edge weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from impls.sampling.aggregate import edge_weight_of
from impls.sampling.block import RelationSample, SampledBlock
from reference.graph import Relation

__all__ = ["ImportanceSampling", "SelfNormalized", "Adaptive", "ESTIMATORS"]


def _p(s: RelationSample) -> Tensor:
    return 1.0 / s.degree.to(torch.float64)[s.dst]


def _check_block(block: object) -> SampledBlock:
    if not isinstance(block, SampledBlock):
        raise TypeError(f"block must be a SampledBlock, got {type(block).__name__}")
    return block


class ImportanceSampling:
    name = "importance"
    needs_draw_probabilities = False

    def weights(self, block: SampledBlock) -> dict[Relation, Tensor]:
        """(K_r,) float64 per relation: w_e = p_e f_e."""
        block = _check_block(block)
        return {r: _p(s) * s.factor for r, s in block.relations.items()}


class SelfNormalized:
    name = "self-normalized"
    needs_draw_probabilities = False

    def weights(self, block: SampledBlock) -> dict[Relation, Tensor]:
        """(K_r,) float64 per relation: w_e = f_e / sum_{kept e' at (v, r)} f_e'."""
        block = _check_block(block)
        out = {}
        for r, s in block.relations.items():
            total = torch.zeros(s.num_targets, dtype=torch.float64).index_add_(0, s.dst, s.factor)
            out[r] = s.factor / total[s.dst]
        return out


class Adaptive(ImportanceSampling):
    name = "adaptive"
    needs_draw_probabilities = True  # the variance penalty divides by q(u)

    def __init__(self, xi: float = 0.5) -> None:
        if not isinstance(xi, (int, float)) or isinstance(xi, bool) or xi < 0:
            raise ValueError(f"xi must be a non-negative number, got {xi!r}")
        self.xi = float(xi)

    def variance_penalty(
        self,
        block: SampledBlock,
        x: Mapping[str, Tensor] | Callable[[str, Tensor], Tensor],
        edge_weight: Mapping[Relation, Tensor]
        | Callable[[Relation, Tensor], Tensor | None]
        | None = None,
    ) -> Tensor:
        """Scalar: xi * sum_u c(u) ||g_u - g_bar||^2 / (d sum_u c(u)), averaged over
        relations. g_u = (1 / (q(u) B)) sum_{kept e from u} p_e a_e e_u. Gradients flow to
        x and edge_weight, never to q. Needs a block with draw probabilities.
        x: node type -> (num_nodes[t], d), or a callable ``x(node_type, ids)`` returning
        the rows of the given ids; edge_weight as in ``aggregate_block``."""
        block = _check_block(block)
        terms = []
        for r, s in block.relations.items():
            if s.num_edges == 0:
                continue
            if s.draw_prob is None:
                raise ValueError(
                    f"block relation {r!r} has no draw probabilities (sampler without q)"
                )
            uniq, inv = torch.unique(s.src, return_inverse=True)
            rows = x(r[0], uniq) if callable(x) else x[r[0]][uniq]
            coef = (_p(s) / (s.draw_prob * s.num_targets)).to(rows.dtype)
            a = edge_weight_of(edge_weight, r, s.edge_id)
            if a is not None:
                coef = coef * a
            contrib = coef.unsqueeze(1) * rows[inv]
            g = rows.new_zeros((uniq.numel(), rows.shape[1])).index_add(0, inv, contrib)
            # c(u) is the same on every kept edge from u
            c = (
                torch.zeros(uniq.numel(), dtype=torch.float64)
                .scatter_(0, inv, s.count)
                .to(rows.dtype)
            )
            g_bar = (c.unsqueeze(1) * g).sum(0) / c.sum()
            terms.append((c * ((g - g_bar) ** 2).sum(1)).sum() / (c.sum() * rows.shape[1]))
        if not terms:
            return torch.zeros(())
        return self.xi * torch.stack(terms).mean()


ESTIMATORS = {
    "importance": ImportanceSampling,
    "self-normalized": SelfNormalized,
    "adaptive": Adaptive,
}
