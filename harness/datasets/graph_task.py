"""GraphTask: a heterogeneous graph with its node-classification labels and held-out
edges for link prediction."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from reference.graph import HeteroGraph, Relation

__all__ = ["GraphTask", "split_nodes", "sample_negative_pairs"]


@dataclass
class GraphTask:
    """graph: the training graph (held-out edges removed, in both directions).
    node_type / labels: (num_nodes[node_type],) int64 class per node, -1 = unlabelled.
    split: "train" / "val" / "test" -> int64 ids of labelled nodes of node_type.
    link_relation: (src_type, name, dst_type) whose edges were held out.
    heldout_pos / heldout_neg: (2, P) int64 (src ids; dst ids) of held-out edges and of
    as many pairs that are not edges of link_relation."""

    name: str
    graph: HeteroGraph
    node_type: str | None = None
    labels: Tensor | None = None
    num_classes: int = 0
    split: dict[str, Tensor] = field(default_factory=dict)
    link_relation: Relation | None = None
    heldout_pos: Tensor | None = None
    heldout_neg: Tensor | None = None


def split_nodes(
    labelled: Tensor, generator: torch.Generator, fractions=(0.6, 0.2)
) -> dict[str, Tensor]:
    """Random train/val/test split of the ids in ``labelled`` (60/20/20 by default)."""
    perm = labelled[torch.randperm(labelled.numel(), generator=generator)]
    n_train = int(round(fractions[0] * perm.numel()))
    n_val = int(round(fractions[1] * perm.numel()))
    return {
        "train": perm[:n_train].sort().values,
        "val": perm[n_train : n_train + n_val].sort().values,
        "test": perm[n_train + n_val :].sort().values,
    }


def sample_negative_pairs(
    existing: Tensor, num_src: int, num_dst: int, count: int, generator: torch.Generator
) -> Tensor:
    """(2, count) uniformly drawn (src, dst) pairs that are not in ``existing`` (2, E)
    and are distinct from each other. Needs count well below num_src * num_dst."""
    if count > num_src * num_dst - existing.shape[1]:
        raise ValueError(f"count {count} exceeds the number of non-edges")
    taken = set((existing[0] * num_dst + existing[1]).tolist())
    out: list[int] = []
    while len(out) < count:
        cand = torch.randint(
            0, num_src * num_dst, (2 * (count - len(out)) + 16,), generator=generator
        )
        for k in cand.tolist():
            if k not in taken:
                taken.add(k)
                out.append(k)
                if len(out) == count:
                    break
    keys = torch.tensor(out, dtype=torch.int64)
    return torch.stack([keys // num_dst, keys % num_dst])
