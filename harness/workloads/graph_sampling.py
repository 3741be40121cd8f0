"""The graph workload: one sampled aggregation step of every sampler x estimator, and of
exhaustive aggregation, on seeded synthetic heterogeneous graphs of growing size.

A case is (configuration, graph size E). Its timed call, for one batch of ``BATCH``
targets of the labelled node type, is::

    block   = sampler.sample(graph, targets, budget, generator)     (skipped: exhaustive)
    weights = estimator.weights(block)
    m_hat   = aggregate_block(block, weights, x)                     every relation into the type

The baseline, ``exhaustive``, is the same step with every batch edge kept (the oracle's
result, through the shared summation code). Recorded per case: median time, peak heap
during one call, edges in computation against the batch's edges (what exhaustive
aggregation uses), and the analytic bytes of the kept edges' messages. Graph building is
set-up and never timed. Sizes: quick 10^4, 10^5 edges; full up to 10^7.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.datasets import make_synthetic_graph
from harness.datasets.graph_task import GraphTask
from harness.measure import available_memory_bytes, peak_memory_bytes, time_call
from impls.sampling import ESTIMATORS, SAMPLERS, aggregate_block

__all__ = [
    "BASELINE",
    "BATCH",
    "BUDGET",
    "DIM",
    "FULL_SIZES",
    "QUICK_SIZES",
    "GraphConfig",
    "build_step",
    "configs",
    "graph_task",
    "run_case",
]

QUICK_SIZES = (10_000, 100_000)
FULL_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
BATCH = 1024
BUDGET = 512
DIM = 64
BASELINE = "exhaustive"


@dataclass(frozen=True)
class GraphConfig:
    sampler: str
    estimator: str

    @property
    def label(self) -> str:
        return BASELINE if self.sampler == "exhaustive" else f"{self.sampler}+{self.estimator}"


def configs() -> list[GraphConfig]:
    """Exhaustive first, then every sampler x estimator."""
    out = [GraphConfig("exhaustive", "importance")]
    for sampler in sorted(SAMPLERS):
        if sampler == "exhaustive":
            continue
        out += [GraphConfig(sampler, estimator) for estimator in sorted(ESTIMATORS)]
    return out


_TASKS: dict[tuple[int, int], GraphTask] = {}


def graph_task(num_edges: int, seed: int = 0) -> GraphTask:
    """The seeded synthetic graph of ``num_edges`` generated edges (cached per process)."""
    key = (num_edges, seed)
    if key not in _TASKS:
        _TASKS.clear()  # keep one graph alive at a time: large ones are large
        _TASKS[key] = make_synthetic_graph(num_edges, seed=seed)
    return _TASKS[key]


def build_step(
    config: GraphConfig, task: GraphTask, *, seed: int = 0
) -> tuple[Callable[[], dict], dict]:
    """(step, info): ``step()`` runs one sampled aggregation (see module docstring) and
    returns the per-relation aggregates; ``info`` holds the edges in computation and the
    batch's edges of one seeded call."""
    graph = task.graph
    g = torch.Generator().manual_seed(seed)
    x = {
        t: torch.randn(n, DIM, generator=g, dtype=torch.float32) for t, n in graph.num_nodes.items()
    }
    targets = {
        task.node_type: torch.randperm(graph.num_nodes[task.node_type], generator=g)[:BATCH]
        .sort()
        .values
    }
    sampler, estimator = SAMPLERS[config.sampler](), ESTIMATORS[config.estimator]()
    draw = torch.Generator()

    def step():
        draw.manual_seed(seed)
        block = sampler.sample(graph, targets, BUDGET, draw)
        return aggregate_block(block, estimator.weights(block), x), block

    _, block = step()
    info = {"edges_in_computation": block.edges_in_computation, "batch_edges": block.batch_edges}
    return (lambda: step()[0]), info


def graph_bytes(num_edges: int) -> int:
    """Rough analytic size of the synthetic graph with its embeddings (for the fit check):
    CSR indices and both directions of every relation, edge features, and x."""
    return int(num_edges * (2 * 8 + 2 * 8 + 4 * 4) + num_edges * DIM * 4 // 4)


def run_case(
    config: GraphConfig,
    num_edges: int,
    *,
    repeats: int = 5,
    budget_s: float = 5.0,
    seed: int = 0,
    memory_fraction: float = 0.5,
) -> dict:
    """Measure one (configuration, graph size) case; a JSON-serialisable row."""
    row = {
        "method": config.label,
        "sampler": config.sampler,
        "estimator": config.estimator,
        "edges": num_edges,
        "batch": BATCH,
        "budget": BUDGET,
        "dim": DIM,
    }
    if graph_bytes(num_edges) > memory_fraction * available_memory_bytes():
        row["status"] = f"skipped (graph needs ~{graph_bytes(num_edges) / 2**30:.1f} GiB)"
        return row
    try:
        task = graph_task(num_edges, seed)
        fn, info = build_step(config, task, seed=seed)
        with torch.inference_mode():
            timing = time_call(fn, repeats=repeats, budget_s=budget_s)
            peak = peak_memory_bytes(fn)
    except (RuntimeError, MemoryError) as error:
        if "memory" not in str(error).lower():
            raise
        row["status"] = "skipped (out of memory)"
        return row
    # messages of the kept edges: one DIM-vector per edge in computation
    row.update(
        info,
        analytic_bytes=info["edges_in_computation"] * DIM * 4,
        peak_bytes=peak,
        status="ok",
        **timing.as_dict(),
    )
    return row
