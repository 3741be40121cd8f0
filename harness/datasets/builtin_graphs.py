"""The built-in graph data sets by name: ``synthetic``, ``synthetic-imbalanced`` (the same
generator with planted type imbalance: a rare informative relation beside large noisy
ones, ``synthetic_graph.IMBALANCED``), ``movielens`` (ML-100K + knowledge graph) and
``ml-1m`` (the MovieLens-1M typed graph), for every command that takes ``--data``."""

from __future__ import annotations

from pathlib import Path

from harness.datasets.graph_task import GraphTask

__all__ = ["BUILTIN_GRAPHS", "load_builtin_graph"]

BUILTIN_GRAPHS = ("synthetic", "synthetic-imbalanced", "movielens", "ml-1m")


def load_builtin_graph(
    data: str, *, edges: int = 100_000, data_dir: str | Path | None = None, seed: int = 0
) -> GraphTask:
    """The task of built-in data set ``data``.

    ``edges`` sizes the synthetic graph; ``data_dir`` holds the MovieLens atomic files
    (default: the fetch-data cache, ``$LISA_BENCH_DATA/<name>``). Raises ValueError for an
    unknown name or a file that fails its checksum, FileNotFoundError (with the command
    that fetches the files) when the MovieLens files are missing.
    """
    from harness.datasets.movielens_1m import load_movielens_1m
    from harness.datasets.movielens_kg import load_movielens_100k_kg
    from harness.datasets.synthetic_graph import IMBALANCED, make_synthetic_graph

    if data == "synthetic":
        return make_synthetic_graph(edges, seed=seed)
    if data == "synthetic-imbalanced":
        task = make_synthetic_graph(edges, seed=seed, **IMBALANCED)
        task.name = f"synthetic-imbalanced-{edges}"
        return task
    if data not in BUILTIN_GRAPHS:
        raise ValueError(f"data must be one of {', '.join(BUILTIN_GRAPHS)}, got {data!r}")
    from harness.datasets.cache import data_dir as cache_dir

    name = "ml-100k" if data == "movielens" else "ml-1m"
    folder = Path(data_dir) if data_dir else cache_dir() / name
    if not (folder / f"{name}.inter").is_file():
        raise FileNotFoundError(
            f"{folder} has no {name}.inter; run `python -m harness fetch-data {name}` or "
            f"pass --data-dir (the folder of its atomic files)"
        )
    loader = load_movielens_100k_kg if data == "movielens" else load_movielens_1m
    return loader(str(folder), seed=seed)
