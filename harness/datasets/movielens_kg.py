"""MovieLens-100K + its Freebase knowledge graph as a heterogeneous graph.

Reads recbole's atomic files (tab-separated, typed header such as
``user_id:token<TAB>item_id:token``) from a folder written by
``python -m harness fetch-data ml-100k``; nothing is downloaded here, and each file is
checked against the SHA-256 that fetch-data recorded beside it before it is read.
Files (see docs/data.md): ml-100k.inter, ml-100k.user, ml-100k.item, and optionally
ml-100k.link + ml-100k.kg (without them the graph has no KG relations).
The data may not be redistributed: fetch it at set-up, keep it outside git.

Node types: user, movie, and from the KG (relations ``film.film.X``, head a film linked
to a MovieLens item, tail an entity): person (actor, writer, director, producer,
cinematographer), genre, award, language, country, company, rating, subject, plus movie
for sequel/prequel (kept only when the tail is itself a MovieLens movie).
Relations: user -rates-> movie and movie -rated_by-> user; for every KG relation X with
tail type T, movie -X-> T and T -rev_X-> movie. Duplicate triples are kept as parallel
edges. Other KG relations (reverses such as ``film.producer.film``) duplicate these and
are skipped.
Tasks: node classification of users by gender (labels 0/1 in order of first
appearance); link prediction on user-rates-movie with ``holdout_fraction`` of the
ratings held out (removed in both directions) and as many negative pairs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.datasets.graph_task import GraphTask
from harness.datasets.movielens_files import (
    column,
    dense_codes,
    hold_out,
    rating_task,
    read_atomic_table,
    read_users_and_movies,
)
from reference.graph import HeteroGraph

__all__ = ["load_movielens_100k_kg", "KG_TAIL_TYPES"]

KG_TAIL_TYPES = {
    "actor": "person",
    "written_by": "person",
    "directed_by": "person",
    "produced_by": "person",
    "cinematography": "person",
    "genre": "genre",
    "award_nomination": "award",
    "award_won": "award",
    "language": "language",
    "country": "country",
    "production_companies": "company",
    "rating": "rating",
    "subjects": "subject",
    "sequel": "movie",
    "prequel": "movie",
}


def load_movielens_100k_kg(
    directory: str | Path,
    *,
    prefix: str = "ml-100k",
    holdout_fraction: float = 0.1,
    seed: int = 0,
) -> GraphTask:
    """Load ``{directory}/{prefix}.{inter,user,item[,link,kg]}`` as a GraphTask."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"directory {root} does not exist")
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    gen = torch.Generator().manual_seed(seed)

    files = read_users_and_movies(root, prefix)
    movies = files.items("item_id")
    mid = {m: i for i, m in enumerate(movies)}
    heldout, kept = hold_out(files.ratings, holdout_fraction, gen)

    num_nodes = {"user": files.num_users, "movie": files.num_movies}
    edges = {("user", "rates", "movie"): kept, ("movie", "rated_by", "user"): kept.flip(0)}

    lpath, kpath = root / f"{prefix}.link", root / f"{prefix}.kg"
    if lpath.is_file() and kpath.is_file():
        lnames, lrows = read_atomic_table(lpath)
        entity_of_movie = dict(
            zip(
                column(lnames, lrows, "entity_id", lpath),
                column(lnames, lrows, "item_id", lpath),
                strict=True,
            )
        )
        knames, krows = read_atomic_table(kpath)
        heads = column(knames, krows, "head_id", kpath)
        rels = column(knames, krows, "relation_id", kpath)
        tails = column(knames, krows, "tail_id", kpath)
        entity_ids: dict[str, dict[str, int]] = {}
        triples: dict[str, list[tuple[int, int]]] = {}
        for h, r, t in zip(heads, rels, tails, strict=True):
            parts = r.split(".")
            if len(parts) != 3 or parts[1] != "film" or parts[2] not in KG_TAIL_TYPES:
                continue
            movie = entity_of_movie.get(h)
            if movie is None or movie not in mid:
                continue
            ttype = KG_TAIL_TYPES[parts[2]]
            if ttype == "movie":
                tm = entity_of_movie.get(t)
                if tm is None or tm not in mid:
                    continue
                tail = mid[tm]
            else:
                ids = entity_ids.setdefault(ttype, {})
                tail = ids.setdefault(t, len(ids))
            triples.setdefault(parts[2], []).append((mid[movie], tail))
        for t, ids in entity_ids.items():
            num_nodes[t] = len(ids)
        for name, pairs in triples.items():
            ttype = KG_TAIL_TYPES[name]
            e = torch.tensor(pairs, dtype=torch.int64).t()
            edges[("movie", name, ttype)] = e
            edges[(ttype, f"rev_{name}", "movie")] = e.flip(0)

    labels, num_classes = dense_codes(files.users("gender"))
    graph = HeteroGraph.from_edge_index(num_nodes, edges)
    return rating_task(f"{prefix}-kg", files, graph, heldout, labels, num_classes, gen)
