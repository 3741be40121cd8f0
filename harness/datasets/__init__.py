"""Data sets for the heterogeneous-graph workloads: a seeded synthetic generator (the
embedded default) and loaders for real graphs read from files the user points to."""

from harness.datasets.graph_task import GraphTask
from harness.datasets.movielens_1m import load_movielens_1m
from harness.datasets.movielens_kg import load_movielens_100k_kg
from harness.datasets.synthetic_graph import make_synthetic_graph

__all__ = ["GraphTask", "make_synthetic_graph", "load_movielens_100k_kg", "load_movielens_1m"]
