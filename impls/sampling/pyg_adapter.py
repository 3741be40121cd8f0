"""Adapter: torch_geometric's own hetero NeighborLoader and HGTLoader as samplers.

Runs the loader on ``graph.to_hetero_data()`` for one batch of targets (one node type),
one hop, and returns what it kept as a :class:`SampledBlock`, so the same estimators,
aggregation code and metrics apply as for this project's samplers:

* ``pyg-neighbor``: NeighborLoader with fan-out ``budget`` on every relation into the
  target type (uniform without replacement per target and relation);
* ``pyg-hgt``: HGTLoader with ``budget`` nodes per node type (probabilities from
  normalised connectivity to the batch, without replacement, no importance weights).

The loaders report no inclusion probabilities, so each kept edge (u -> v) of relation r
gets the expansion factor |N_r(v)| / k_r(v), k_r(v) the number of v's kept type-r edges:
the Horvitz-Thompson factor for uniform fan-out, a ratio-estimator weight for HGTLoader.
Sampled edges are matched to the graph's own edges (parallel edges one by one), so edge
ids and degrees come from the full graph, never from the loader's subgraph.

Needs torch_geometric and its sampling backend (pyg-lib or torch-sparse);
:func:`backend_status` says why not when they are missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import torch
from torch import Tensor

from impls.sampling.base import Sampler, SampleRequest
from impls.sampling.block import RelationSample, SampledBlock
from reference.graph import HeteroGraph, Relation

__all__ = ["PyGLoaderSampler", "backend_status"]


def backend_status() -> tuple[bool, str]:
    """(True, "") when torch_geometric's neighbour loaders can run here, else (False, why)."""
    try:
        import torch_geometric  # noqa: F401
        from torch_geometric import typing as pyg_typing
    except ImportError:
        return False, "torch_geometric is not installed (install the 'graph' extra)"
    if not (
        getattr(pyg_typing, "WITH_PYG_LIB", False)
        or getattr(pyg_typing, "WITH_TORCH_SPARSE", False)
    ):
        return False, (
            "torch_geometric's NeighborLoader/HGTLoader need pyg-lib or "
            "torch-sparse, and neither is installed"
        )
    return True, ""


class PyGLoaderSampler(Sampler):
    """``sample(graph, targets, budget, generator=None, edge_weight=None)`` through a
    torch_geometric loader (``loader`` = "neighbor" or "hgt"); see the module docstring."""

    takes_edge_weight = False

    def __init__(self, loader: str = "neighbor"):
        if loader not in ("neighbor", "hgt"):
            raise ValueError(f"loader must be 'neighbor' or 'hgt', got {loader!r}")
        self.loader = loader
        self.name = f"pyg-{loader}"

    def sample(
        self,
        graph: HeteroGraph,
        targets: Mapping[str, Tensor],
        budget: int,
        generator: torch.Generator | None = None,
        edge_weight: Mapping[Relation, Tensor] | None = None,
    ) -> SampledBlock:
        ok, why = backend_status()
        if not ok:
            raise RuntimeError(f"{self.name}: {why}")
        return super().sample(graph, targets, budget, generator, edge_weight)

    def _sample(self, request: SampleRequest) -> SampledBlock:
        graph, clean, batch = request.graph, request.targets, request.batch
        budget, generator = request.budget, request.generator
        if len(clean) != 1:
            raise ValueError(f"{self.name} takes targets of one node type, got {sorted(clean)}")
        ((target_type, ids),) = clean.items()
        sub = self._run_loader(graph, target_type, ids, budget, generator)

        block = SampledBlock(targets=clean, relations={})
        for rel, e in batch.items():
            # the graph's own edges of this batch, by (target position, source id)
            pool: dict[tuple[int, int], list[int]] = defaultdict(list)
            for k, (d, s) in enumerate(zip(e.dst.tolist(), e.src.tolist(), strict=True)):
                pool[(d, s)].append(k)
            chosen: list[int] = []
            if rel in sub.edge_types:
                local = sub[rel].edge_index
                src = sub[rel[0]].n_id[local[0]]
                dst = local[1]
                into_seeds = dst < ids.numel()  # seeds come first, in input order
                for d, s in zip(dst[into_seeds].tolist(), src[into_seeds].tolist(), strict=True):
                    if not pool.get((d, s)):
                        raise RuntimeError(
                            f"{self.name} returned an edge {s}->{d} that {rel} does not have"
                        )
                    chosen.append(pool[(d, s)].pop())
            keep = torch.tensor(sorted(chosen), dtype=torch.int64)
            kept_per_target = torch.bincount(e.dst[keep], minlength=ids.numel())
            degree = e.degree.to(torch.float64)
            factor = degree[e.dst[keep]] / kept_per_target[e.dst[keep]].to(torch.float64)
            block.relations[rel] = RelationSample(
                e.dst[keep],
                e.src[keep],
                e.edge_id[keep],
                factor,
                torch.ones(keep.numel(), dtype=torch.float64),
                e.degree,
                None,
            )
            block.candidates[rel] = int(torch.unique(e.src).numel())
            block.draws[rel] = int(keep.numel())
        return block

    def _run_loader(self, graph, target_type, ids, budget, generator):
        from torch_geometric.loader import HGTLoader, NeighborLoader

        data = graph.to_hetero_data()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # the loaders draw from torch's global generator
            if self.loader == "neighbor":
                fanout = {rel: [budget if rel[2] == target_type else 0] for rel in data.edge_types}
                loader = NeighborLoader(
                    data,
                    num_neighbors=fanout,
                    input_nodes=(target_type, ids),
                    batch_size=ids.numel(),
                    shuffle=False,
                )
            else:
                loader = HGTLoader(
                    data,
                    num_samples={t: [budget] for t in data.node_types},
                    input_nodes=(target_type, ids),
                    batch_size=ids.numel(),
                    shuffle=False,
                )
            return next(iter(loader))
