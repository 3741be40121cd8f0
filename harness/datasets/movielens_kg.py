"""MovieLens-100K + its Freebase knowledge graph as a heterogeneous graph.

Reads recbole's atomic files (tab-separated, typed header such as
``user_id:token<TAB>item_id:token``) from a directory the user points to; nothing is
downloaded here. Files (see shared/DATA.md): ml-100k.inter, ml-100k.user, ml-100k.item,
and optionally ml-100k.link + ml-100k.kg (without them the graph has no KG relations).
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

import csv
from pathlib import Path

import torch

from harness.datasets.graph_task import GraphTask, sample_negative_pairs, split_nodes
from reference.graph import HeteroGraph

__all__ = [
    "load_movielens_100k_kg",
    "read_atomic",
    "read_rating_edges",
    "hold_out",
    "KG_TAIL_TYPES",
]

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


def read_atomic(path: Path) -> tuple[list[str], list[list[str]]]:
    """Column names (type suffix stripped) and rows of a recbole atomic file."""
    if not path.is_file():
        raise FileNotFoundError(f"atomic file {path} not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"atomic file {path} is empty (no header)")
        names = [h.split(":", 1)[0] for h in header]
        rows = [r for r in reader if r]
    for i, r in enumerate(rows):
        if len(r) < len(names):
            raise ValueError(f"{path}: row {i + 2} has {len(r)} fields, header has {len(names)}")
    return names, rows


def _column(names: list[str], rows: list[list[str]], name: str, path: Path) -> list[str]:
    if name not in names:
        raise ValueError(f"{path} has no column {name!r}; columns: {names}")
    k = names.index(name)
    return [r[k] for r in rows]


def read_rating_edges(path: Path, uid: dict[str, int], mid: dict[str, int]) -> torch.Tensor:
    """(2, E) int64 (user ids; movie ids) of the ratings in an atomic ``.inter`` file,
    in file order; ValueError naming ids that the user/item files lack."""
    names, rows = read_atomic(path)
    users, items = _column(names, rows, "user_id", path), _column(names, rows, "item_id", path)
    unknown = [u for u in users if u not in uid][:3] + [m for m in items if m not in mid][:3]
    if unknown:
        raise ValueError(
            f"{path} refers to users/items missing from the user/item files: {unknown}"
        )
    return torch.tensor([[uid[u] for u in users], [mid[m] for m in items]], dtype=torch.int64)


def hold_out(
    edges: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (2, E) edges at random into (held out, kept), round(fraction * E) held out."""
    perm = torch.randperm(edges.shape[1], generator=generator)
    n_out = int(round(fraction * edges.shape[1]))
    return edges[:, perm[:n_out]], edges[:, perm[n_out:]]


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

    upath, ipath, rpath = (root / f"{prefix}.{s}" for s in ("user", "item", "inter"))
    unames, urows = read_atomic(upath)
    users = _column(unames, urows, "user_id", upath)
    genders = _column(unames, urows, "gender", upath)
    inames, irows = read_atomic(ipath)
    movies = _column(inames, irows, "item_id", ipath)
    uid = {u: i for i, u in enumerate(users)}
    mid = {m: i for i, m in enumerate(movies)}
    if len(uid) != len(users) or len(mid) != len(movies):
        raise ValueError("user or item file lists an id twice")

    ratings = read_rating_edges(rpath, uid, mid)
    heldout, kept = hold_out(ratings, holdout_fraction, gen)
    n_out = heldout.shape[1]

    num_nodes = {"user": len(users), "movie": len(movies)}
    edges = {("user", "rates", "movie"): kept, ("movie", "rated_by", "user"): kept.flip(0)}

    lpath, kpath = root / f"{prefix}.link", root / f"{prefix}.kg"
    if lpath.is_file() and kpath.is_file():
        lnames, lrows = read_atomic(lpath)
        entity_of_movie = dict(
            zip(
                _column(lnames, lrows, "entity_id", lpath),
                _column(lnames, lrows, "item_id", lpath),
                strict=True,
            )
        )
        knames, krows = read_atomic(kpath)
        heads = _column(knames, krows, "head_id", kpath)
        rels = _column(knames, krows, "relation_id", kpath)
        tails = _column(knames, krows, "tail_id", kpath)
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

    gender_code: dict[str, int] = {}
    labels = torch.tensor(
        [gender_code.setdefault(g, len(gender_code)) for g in genders], dtype=torch.int64
    )
    graph = HeteroGraph.from_edge_index(num_nodes, edges)
    return GraphTask(
        name=f"{prefix}-kg",
        graph=graph,
        node_type="user",
        labels=labels,
        num_classes=len(gender_code),
        split=split_nodes(torch.arange(len(users)), gen),
        link_relation=("user", "rates", "movie"),
        heldout_pos=heldout,
        heldout_neg=sample_negative_pairs(ratings, len(users), len(movies), n_out, gen)
        if n_out
        else None,
    )
