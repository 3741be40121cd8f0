"""Data sets for the heterogeneous-graph workloads: a seeded synthetic generator (the
embedded default), loaders for real graphs read from files the user points to, and
one's own graphs described by a JSON graph card (``graph_cards``; interaction files for
``seqrec`` are read by ``user_files``). Installed packages can register more data sets
through the ``lisa_bench.datasets`` entry-point group (``registry``). See docs/data.md."""

from harness.datasets.graph_cards import load_graph_card, write_graph_arrays
from harness.datasets.graph_task import GraphTask
from harness.datasets.movielens_1m import load_movielens_1m
from harness.datasets.movielens_kg import load_movielens_100k_kg
from harness.datasets.synthetic_graph import make_synthetic_graph

__all__ = [
    "GraphTask",
    "make_synthetic_graph",
    "load_graph_card",
    "load_movielens_100k_kg",
    "load_movielens_1m",
    "write_graph_arrays",
]
