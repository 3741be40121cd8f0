"""Reading MovieLens in recbole's atomic format into typed-graph pieces, shared by the
ML-100K (+ knowledge graph) and ML-1M loaders.

Atomic files are tab-separated, unquoted, with a typed header (``user_id:token``...).
Every file is checked against the SHA-256 recorded by ``python -m harness fetch-data``
(``checksums.json`` in its folder) before it is read, so a folder must come from
fetch-data (or carry such a record).
:func:`read_users_and_movies` reads ``{prefix}.user``, ``{prefix}.item`` and the ratings
of ``{prefix}.inter``; :func:`rating_task` turns a typed graph whose user-rates-movie
edges were partly held out into a :class:`GraphTask`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.datasets.cache import verify_data_file
from harness.datasets.graph_task import GraphTask, sample_negative_pairs, split_nodes
from reference.graph import HeteroGraph, Relation

__all__ = [
    "RatingFiles",
    "column",
    "dense_codes",
    "hold_out",
    "rating_task",
    "read_atomic_table",
    "read_rating_edges",
    "read_users_and_movies",
]


def read_atomic_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Column names (type suffix stripped) and rows of a recbole atomic file, after
    checking its SHA-256 against the record written when it was fetched
    (:func:`harness.datasets.cache.verify_data_file`; DataChecksumError, a ValueError, on a
    mismatch or a missing record)."""
    if not path.is_file():
        raise FileNotFoundError(f"atomic file {path} not found")
    verify_data_file(path)
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


def column(names: list[str], rows: list[list[str]], name: str, path: Path) -> list[str]:
    if name not in names:
        raise ValueError(f"{path} has no column {name!r}; columns: {names}")
    k = names.index(name)
    return [r[k] for r in rows]


def read_rating_edges(path: Path, uid: dict[str, int], mid: dict[str, int]) -> torch.Tensor:
    """(2, E) int64 (user ids; movie ids) of the ratings in an atomic ``.inter`` file,
    in file order; ValueError naming ids that the user/item files lack."""
    names, rows = read_atomic_table(path)
    users, items = column(names, rows, "user_id", path), column(names, rows, "item_id", path)
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


def dense_codes(values: list[str]) -> tuple[torch.Tensor, int]:
    """(N,) int64 ids of ``values`` in order of first appearance, and their number."""
    index: dict[str, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    return torch.tensor(codes, dtype=torch.int64), len(index)


@dataclass
class RatingFiles:
    """The user and item files (column names and rows) and all ratings (2, E)."""

    user_names: list[str]
    user_rows: list[list[str]]
    item_names: list[str]
    item_rows: list[list[str]]
    ratings: torch.Tensor
    user_path: Path
    item_path: Path

    @property
    def num_users(self) -> int:
        return len(self.user_rows)

    @property
    def num_movies(self) -> int:
        return len(self.item_rows)

    def users(self, name: str) -> list[str]:
        return column(self.user_names, self.user_rows, name, self.user_path)

    def items(self, name: str) -> list[str]:
        return column(self.item_names, self.item_rows, name, self.item_path)


def read_users_and_movies(root: Path, prefix: str) -> RatingFiles:
    """Read ``{root}/{prefix}.{user,item,inter}``; ids must be unique in the user and item
    files, and every rating must name known ones."""
    upath, ipath, rpath = (root / f"{prefix}.{s}" for s in ("user", "item", "inter"))
    unames, urows = read_atomic_table(upath)
    inames, irows = read_atomic_table(ipath)
    users = column(unames, urows, "user_id", upath)
    movies = column(inames, irows, "item_id", ipath)
    uid = {u: i for i, u in enumerate(users)}
    mid = {m: i for i, m in enumerate(movies)}
    if len(uid) != len(users) or len(mid) != len(movies):
        raise ValueError("user or item file lists an id twice")
    ratings = read_rating_edges(rpath, uid, mid)
    return RatingFiles(unames, urows, inames, irows, ratings, upath, ipath)


def rating_task(
    name: str,
    files: RatingFiles,
    graph: HeteroGraph,
    heldout: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
    link_relation: Relation = ("user", "rates", "movie"),
) -> GraphTask:
    """A GraphTask classifying users by ``labels`` and predicting held-out ratings, with as
    many negative (user, movie) pairs as held-out ones."""
    n_out = heldout.shape[1]
    negatives = (
        sample_negative_pairs(files.ratings, files.num_users, files.num_movies, n_out, generator)
        if n_out
        else None
    )
    return GraphTask(
        name=name,
        graph=graph,
        node_type="user",
        labels=labels,
        num_classes=num_classes,
        split=split_nodes(torch.arange(files.num_users), generator),
        link_relation=link_relation,
        heldout_pos=heldout,
        heldout_neg=negatives,
    )
