"""Error of sampled neighbourhood aggregation against the exhaustive oracle, per sampler x
estimator x budget, with fixed embeddings (no training).

For one fixed batch V_B of B targets of one node type and the relations r into it
(``R`` of them), the exhaustive aggregate of relation r is the oracle
(``reference.aggregation.mean_aggregate``)

    m_v^r = sum_{u in N_r(v)} p_vu a_vu e_u,         p_vu = 1 / |N_r(v)|

stacked over relations into M = [m^r_1 | ... | m^r_R], shape (B, R d). A sampler draws
a block (seeded, ``draws`` independent times), an estimator weights it, and
``impls.sampling.aggregate_block`` gives M_hat^(k), k = 1..K (same shape). Reported,
relative to the exhaustive aggregate's squared norm ||M||_F^2:

    rel_mse      = (1/K) sum_k ||M_hat^(k) - M||_F^2 / ||M||_F^2
    rel_variance = (1/K) sum_k ||M_hat^(k) - M_bar||_F^2 / ||M||_F^2,  M_bar = mean_k M_hat^(k)
    rel_bias2    = ||M_bar - M||_F^2 / ||M||_F^2                (rel_mse = variance + bias2)

plus ``rel_mse_by_relation`` (the same with M restricted to one relation's columns and
normalised by that relation's ||m^r||_F^2), the mean number of kept edges per draw
(``edges``, against ``exhaustive_edges``) and ``uncovered``, the mean fraction of
(target, relation) pairs that have a neighbour in the graph but none kept (their
estimate is 0). The estimators share each draw (common random numbers): the same
block is weighted by every estimator. The ``adaptive`` estimator's weights are the
importance-sampling weights (it differs only by a training penalty), so its rows equal
``importance``.

Embeddings e_u: the graph's node features of type t (shape (N_t, F_t)) when every
source type has them with one width, else seeded N(0, 1) rows of width ``dim``; all in
float64. Edge weights a: none (a = 1), or ``planted``: a_e = sigmoid(s x_e[0]) from the
synthetic graph's edge features (x_e[0] is shifted up on same-class edges), which the
adaptive sampler's proposal then follows.

    python -m harness.graph.estimator_variance --edges 100000 --budgets 8 32 128 512
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch
from torch import Tensor

from harness.datasets.builtin_graphs import BUILTIN_GRAPHS, load_builtin_graph
from harness.datasets.graph_task import GraphTask
from harness.graph.hep_training import make_sampler
from impls.sampling import ESTIMATORS, aggregate_block
from reference.aggregation import mean_aggregate
from reference.graph import HeteroGraph, Relation

__all__ = ["fixed_embeddings", "planted_edge_weights", "estimator_error", "main"]

DEFAULT_SAMPLERS = ("uniform", "type-dependent", "type-fusion", "adaptive", "ladies", "nodewise")


def fixed_embeddings(graph: HeteroGraph, dim: int = 16, seed: int = 0) -> dict[str, Tensor]:
    """node type -> (num_nodes[t], d) float64: node features if every type has them with
    one width, else seeded standard normal rows of width ``dim``."""
    widths = {f.shape[1] for f in graph.node_features.values()}
    if set(graph.node_features) == set(graph.num_nodes) and len(widths) == 1:
        return {t: f.to(torch.float64) for t, f in graph.node_features.items()}
    gen = torch.Generator().manual_seed(seed)
    return {
        t: torch.randn(n, dim, generator=gen, dtype=torch.float64)
        for t, n in sorted(graph.num_nodes.items())
    }


def planted_edge_weights(graph: HeteroGraph, scale: float = 2.0) -> dict[Relation, Tensor]:
    """relation -> (E_r,) float64 a_e = sigmoid(scale * x_e[0]) for relations with edge
    features; relations without them are left out (a = 1)."""
    return {
        r: torch.sigmoid(scale * c.edge_features[:, 0].to(torch.float64))
        for r, c in graph.relations.items()
        if c.edge_features is not None
    }


def _stack(m: dict[Relation, Tensor], rels: Sequence[Relation]) -> Tensor:
    return torch.cat([m[r] for r in rels], dim=1)


def estimator_error(
    graph: HeteroGraph,
    targets: Tensor,
    target_type: str,
    x: dict[str, Tensor],
    sampler: str,
    budget: int,
    draws: int,
    *,
    estimators: Sequence[str] = ("importance", "self-normalized", "adaptive"),
    edge_weight: dict[Relation, Tensor] | None = None,
    replace: bool = True,
    seed: int = 0,
) -> list[dict]:
    """One row per estimator (see the module docstring for the definitions).

    targets: (B,) int64 ids of ``target_type``; x: node type -> (N_t, d) float64;
    edge_weight: relation -> (E_r,) or None. Draw k uses a generator seeded with
    ``seed * 1_000_003 + k``, so rows for different budgets or samplers are reproducible
    one by one."""
    rels = graph.relations_into(target_type)
    if not rels:
        raise ValueError(f"node type {target_type!r} has no incoming relation")
    ew = edge_weight or {}
    exact = {r: mean_aggregate(graph, r, x[r[0]], targets, ew.get(r)) for r in rels}
    m = _stack(exact, rels)
    norm2 = float((m**2).sum())
    rel_norm2 = [float((exact[r] ** 2).sum()) for r in rels]
    exhaustive_edges = sum(int(graph.relations[r].in_degree()[targets].sum()) for r in rels)
    has_nb = {r: graph.relations[r].in_degree()[targets] > 0 for r in rels}
    pairs_with_nb = sum(int(v.sum()) for v in has_nb.values())
    smp = make_sampler(sampler, replace)
    ests = {name: ESTIMATORS[name]() for name in estimators}
    sums = {name: torch.zeros_like(m) for name in estimators}
    sq_err = {name: 0.0 for name in estimators}
    sq_err_rel = {name: torch.zeros(len(rels), dtype=torch.float64) for name in estimators}
    sq_sum = {name: 0.0 for name in estimators}
    edges = uncovered = 0.0
    for k in range(draws):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + k)
        a = edge_weight if sampler == "adaptive" else None
        block = smp.sample(graph, {target_type: targets}, budget, gen, a)
        edges += block.edges_in_computation
        uncovered += sum(
            int(block.relations[r].uncovered().numel()) for r in rels if r in block.relations
        )
        for name, est in ests.items():
            agg = aggregate_block(block, est.weights(block), x, edge_weight)
            mh = _stack(
                {r: agg.get(r, torch.zeros_like(exact[r])) for r in rels},
                rels,
            )
            diff = mh - m
            sq_err[name] += float((diff**2).sum())
            cols = torch.split(diff, [exact[r].shape[1] for r in rels], dim=1)
            sq_err_rel[name] += torch.tensor([float((c**2).sum()) for c in cols])
            sums[name] += mh
            sq_sum[name] += float((mh**2).sum())
    rows = []
    for name in estimators:
        mean = sums[name] / draws
        # sum_k ||mh_k - mean||^2 = sum_k ||mh_k||^2 - K ||mean||^2
        var = max(0.0, sq_sum[name] / draws - float((mean**2).sum()))
        rows.append(
            {
                "sampler": sampler,
                "estimator": name,
                "budget": budget,
                "replace": replace,
                "draws": draws,
                "targets": int(targets.numel()),
                "rel_mse": sq_err[name] / draws / norm2,
                "rel_variance": var / norm2,
                "rel_bias2": float(((mean - m) ** 2).sum()) / norm2,
                "rel_mse_by_relation": {
                    "__".join(r): (float(sq_err_rel[name][i]) / draws / rel_norm2[i])
                    if rel_norm2[i] > 0
                    else 0.0
                    for i, r in enumerate(rels)
                },
                "edges": edges / draws,
                "exhaustive_edges": exhaustive_edges,
                "uncovered": uncovered / draws / max(1, pairs_with_nb),
            }
        )
    return rows


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """--data, --data-dir, --edges and --graph-seed, read back by :func:`load_task`."""
    p.add_argument("--data", choices=BUILTIN_GRAPHS, default="synthetic")
    p.add_argument("--data-dir", default=None, help="default: the fetch-data cache")
    p.add_argument("--edges", type=int, default=100_000, help="synthetic graph size")
    p.add_argument("--graph-seed", type=int, default=0)


def load_task(args: argparse.Namespace) -> GraphTask:
    """The graph the :func:`add_data_arguments` options name."""
    return load_builtin_graph(
        args.data, edges=args.edges, data_dir=args.data_dir, seed=args.graph_seed
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.graph.estimator_variance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p)
    p.add_argument("--batch-size", type=int, default=1024, help="targets B in the batch")
    p.add_argument(
        "--target-type",
        default=None,
        help="node type of the targets (default: the labelled type; another type draws "
        "among its nodes with an incoming edge)",
    )
    p.add_argument("--budgets", type=int, nargs="+", default=[8, 32, 128, 512])
    p.add_argument("--samplers", nargs="+", default=list(DEFAULT_SAMPLERS))
    p.add_argument("--estimators", nargs="+", default=["importance", "self-normalized", "adaptive"])
    p.add_argument("--draws", type=int, default=200, help="seeded draws per configuration")
    p.add_argument("--edge-weight", choices=("none", "planted"), default="none")
    p.add_argument("--without-replacement", action="store_true")
    p.add_argument("--dim", type=int, default=16, help="width of random embeddings")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    task = load_task(args)
    graph = task.graph
    gen = torch.Generator().manual_seed(args.seed)
    target_type = args.target_type or task.node_type
    if target_type == task.node_type:
        pool = torch.cat([task.split[s] for s in ("train", "val", "test")])
    else:  # nodes of that type with at least one incoming edge
        deg = sum(graph.relations[r].in_degree() for r in graph.relations_into(target_type))
        pool = torch.nonzero(deg > 0).flatten()
    pick = torch.randperm(pool.numel(), generator=gen)[: args.batch_size]
    targets = pool[pick].sort().values
    x = fixed_embeddings(graph, args.dim, args.seed)
    ew = planted_edge_weights(graph) if args.edge_weight == "planted" else None
    for sampler in args.samplers:
        for budget in args.budgets:
            for row in estimator_error(
                graph,
                targets,
                target_type,
                x,
                sampler,
                budget,
                args.draws,
                estimators=args.estimators,
                edge_weight=ew,
                replace=not args.without_replacement,
                seed=args.seed,
            ):
                row["data"] = task.name
                row["target_type"] = target_type
                row["edge_weight"] = args.edge_weight
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
