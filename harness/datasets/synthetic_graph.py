"""Seeded synthetic heterogeneous graph with power-law degrees and planted classes.

Node types (bibliographic, like the ACM/DBLP/AMiner graphs of the HIG paper):
    paper, author, term, venue
Relations (each generated once, then added in both directions):
    author -writes-> paper        term -describes-> paper
    venue -publishes-> paper      paper -cites-> paper
plus the reverses (paper -written_by-> author, ...), so every type has incoming edges.

Model (a degree-corrected stochastic block model):
- every node i gets a planted class c_i (uniform over ``num_classes``) and an activity
  w_i ~ Pareto(alpha) (w_i = U^(-1 / (alpha - 1)), U uniform), so degrees follow a power
  law with exponent about ``alpha``;
- an edge of a relation picks its destination with probability proportional to w; with
  probability ``homophily`` its source is drawn proportional to w among the sources of
  the same class, otherwise among all sources.
Node features: x_i = signal * mu_{c_i} + N(0, I) with mu_c random unit-variance class
centres, so features alone are weakly informative and neighbourhoods help.
Edge features (``edge_feature_dim`` > 0): x_e ~ N(0, I) with x_e[0] shifted by
+``edge_signal`` when the edge joins two nodes of one class and by -``edge_signal``
otherwise (the same features on an edge and its reverse), so a learned edge weight
a_e = sigmoid(x_e . theta_r) can tell informative edges apart (the adaptive sampler's
proposal follows it).
Node classification: papers by class. Link prediction: a fraction of the author-writes-
paper edges is held out (removed in both directions) with as many negative pairs.

Planted type imbalance: ``relation_shares`` and ``relation_homophily`` (generated
relation name -> value, e.g. ``{"writes": 0.05}``) override a relation's share of the
edges and its homophily, so that relations differ in size and in how much they say
about the class. ``IMBALANCED`` is the preset of ``--data synthetic-imbalanced``: the
informative relation (writes, homophily 0.95) is rare (5% of the edges) and the large
ones (describes 55%, cites 35%) are noisy (homophily 0.3), so a sampler that spends its
draws in proportion to edge counts mostly reads noise.

``num_edges`` counts generated edges before adding reverses (the graph holds twice as
many); node counts scale with it, so sizes from 10^3 to 10^7 edges fit in memory
(about 100 bytes per edge at peak).
"""

from __future__ import annotations

import torch
from torch import Tensor

from harness.datasets.graph_task import GraphTask, sample_negative_pairs, split_nodes
from reference.graph import HeteroGraph

__all__ = ["make_synthetic_graph", "RELATION_SHARES", "IMBALANCED"]

# share of num_edges per generated relation: (src, name, dst, reverse name, share)
RELATION_SHARES = (
    ("author", "writes", "paper", "written_by", 0.35),
    ("term", "describes", "paper", "has_term", 0.30),
    ("venue", "publishes", "paper", "published_in", 0.10),
    ("paper", "cites", "paper", "cited_by", 0.25),
)


def _node_counts(num_edges: int, num_classes: int) -> dict[str, int]:
    return {
        "paper": max(4 * num_classes, num_edges // 10),
        "author": max(4 * num_classes, num_edges // 12),
        "term": max(4 * num_classes, num_edges // 40),
        "venue": max(2 * num_classes, num_edges // 2000),
    }


def _pick(weight: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """count ids drawn with replacement, P(i) proportional to weight[i] (chunked so the
    multinomial call stays within its limits)."""
    out, chunk = [], 1 << 22
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        out.append(torch.multinomial(weight, n, replacement=True, generator=generator))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


IMBALANCED = {
    "relation_shares": {"writes": 0.05, "describes": 0.55, "publishes": 0.05, "cites": 0.35},
    "relation_homophily": {"writes": 0.95, "describes": 0.3, "publishes": 0.3, "cites": 0.3},
}


def _relation_overrides(name: str, values) -> dict[str, float]:
    """``values`` (generated relation name -> number in [0, 1]) checked, or {} for None."""
    known = [r[1] for r in RELATION_SHARES]
    if values is None:
        return {}
    out = {}
    for rel, v in dict(values).items():
        if rel not in known:
            raise ValueError(f"{name}: unknown relation {rel!r}; known: {known}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}[{rel!r}] must be a number in [0, 1], got {v!r}")
        out[rel] = float(v)
    return out


def make_synthetic_graph(
    num_edges: int = 20_000,
    *,
    num_classes: int = 4,
    feature_dim: int = 16,
    homophily: float = 0.8,
    alpha: float = 2.5,
    signal: float = 0.5,
    holdout_fraction: float = 0.1,
    edge_feature_dim: int = 4,
    edge_signal: float = 1.0,
    seed: int = 0,
    relation_shares: dict[str, float] | None = None,
    relation_homophily: dict[str, float] | None = None,
) -> GraphTask:
    """Build the synthetic task; same arguments and seed give identical tensors."""
    shares = _relation_overrides("relation_shares", relation_shares)
    homs = _relation_overrides("relation_homophily", relation_homophily)
    if isinstance(num_edges, bool) or not isinstance(num_edges, int) or num_edges < 100:
        raise ValueError(f"num_edges must be an int >= 100, got {num_edges!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must be in [0, 1], got {homophily}")
    if not alpha > 1.0:
        raise ValueError(f"alpha must be > 1, got {alpha}")
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    gen = torch.Generator().manual_seed(seed)
    counts = _node_counts(num_edges, num_classes)
    klass = {t: torch.randint(0, num_classes, (n,), generator=gen) for t, n in counts.items()}
    activity = {
        t: torch.rand(n, generator=gen, dtype=torch.float64).clamp(min=1e-12)
        ** (-1.0 / (alpha - 1.0))
        for t, n in counts.items()
    }
    centres = torch.randn(num_classes, feature_dim, generator=gen)
    feats = {
        t: signal * centres[klass[t]] + torch.randn(n, feature_dim, generator=gen)
        for t, n in counts.items()
    }
    if (
        isinstance(edge_feature_dim, bool)
        or not isinstance(edge_feature_dim, int)
        or edge_feature_dim < 0
    ):
        raise ValueError(f"edge_feature_dim must be an int >= 0, got {edge_feature_dim!r}")
    edges: dict[tuple[str, str, str], Tensor] = {}
    edge_feats: dict[tuple[str, str, str], Tensor] = {}
    heldout_pos = None
    for src_t, name, dst_t, rev, share in RELATION_SHARES:
        m = max(1, int(round(shares.get(name, share) * num_edges)))
        dst = _pick(activity[dst_t], m, gen)
        src = _pick(activity[src_t], m, gen)  # the non-homophilous draws
        same = torch.rand(m, generator=gen) < homs.get(name, homophily)
        for c in range(num_classes):
            rows = torch.nonzero(same & (klass[dst_t][dst] == c)).flatten()
            members = torch.nonzero(klass[src_t] == c).flatten()
            if rows.numel() and members.numel():
                src[rows] = members[_pick(activity[src_t][members], rows.numel(), gen)]
        if name == "writes" and holdout_fraction > 0:
            perm = torch.randperm(m, generator=gen)
            n_out = int(round(holdout_fraction * m))
            heldout_pos = torch.stack([src[perm[:n_out]], dst[perm[:n_out]]])
            all_pairs = torch.stack([src, dst])
            src, dst = src[perm[n_out:]], dst[perm[n_out:]]
        edges[(src_t, name, dst_t)] = torch.stack([src, dst])
        edges[(dst_t, rev, src_t)] = torch.stack([dst, src])
        if edge_feature_dim:
            f = torch.randn(src.numel(), edge_feature_dim, generator=gen)
            agree = (klass[src_t][src] == klass[dst_t][dst]).float()
            f[:, 0] += edge_signal * (2 * agree - 1)
            edge_feats[(src_t, name, dst_t)] = f
            edge_feats[(dst_t, rev, src_t)] = f
    graph = HeteroGraph.from_edge_index(
        counts, edges, node_features=feats, edge_features=edge_feats
    )
    task = GraphTask(
        name=f"synthetic-{num_edges}" + ("-custom" if shares or homs else ""),
        graph=graph,
        node_type="paper",
        labels=klass["paper"],
        num_classes=num_classes,
        split=split_nodes(torch.arange(counts["paper"]), gen),
    )
    if heldout_pos is not None:
        task.link_relation = ("author", "writes", "paper")
        task.heldout_pos = heldout_pos
        task.heldout_neg = sample_negative_pairs(
            all_pairs, counts["author"], counts["paper"], heldout_pos.shape[1], gen
        )
    return task
