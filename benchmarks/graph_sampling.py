"""asv benchmarks over the graph workload of ``harness.workloads.graph_sampling`` (one definition
shared with ``python -m harness bench --family graph``): one sampled aggregation step of
every sampler x estimator and of exhaustive aggregation. Graphs are built in
``setup_cache`` so that peakmem_ does not count their construction.

Sizes: the quick grid (``harness.workloads.graph_sampling.QUICK_SIZES``, 10^4 and 10^5 edges);
``LISA_BENCH_ASV_FULL=1`` selects the full grid (up to 10^7) and
``LISA_BENCH_ASV_GRAPH_SIZES=10000`` a grid of your own.
"""

from __future__ import annotations

import os

from harness.workloads import graph_sampling as workload

FULL = os.environ.get("LISA_BENCH_ASV_FULL", "") not in ("", "0")
SIZES = list(workload.FULL_SIZES if FULL else workload.QUICK_SIZES)
if os.environ.get("LISA_BENCH_ASV_GRAPH_SIZES"):  # e.g. "10000" for a smoke run (nox -s asv)
    SIZES = [int(n) for n in os.environ["LISA_BENCH_ASV_GRAPH_SIZES"].split(",")]
CONFIGS = {c.label: c for c in workload.configs()}


class GraphAggregationStep:
    params = (list(CONFIGS), SIZES)
    param_names = ["config", "edges"]
    timeout = 600

    def setup_cache(self):
        return {n: workload.graph_task(n) for n in SIZES}

    def setup(self, tasks, config, edges):
        self.step, self.info = workload.build_step(CONFIGS[config], tasks[edges])

    def time_step(self, tasks, config, edges):
        self.step()

    def peakmem_step(self, tasks, config, edges):
        self.step()

    def track_edges_in_computation(self, tasks, config, edges):
        return self.info["edges_in_computation"]

    track_edges_in_computation.unit = "edges"

    def track_share_of_exhaustive_edges(self, tasks, config, edges):
        return self.info["edges_in_computation"] / max(1, self.info["batch_edges"])

    track_share_of_exhaustive_edges.unit = "fraction"
