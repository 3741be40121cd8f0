"""One's own heterogeneous graph, described by a JSON graph card, as a :class:`GraphTask`.

A card names the node types, the relations ``(src_type, name, dst_type)`` and the task,
and stores the graph in one of two forms (paths are relative to the card's folder):

(a) tables: per relation an edge list (CSV, TSV or Parquet; columns ``src``, ``dst`` and
    optionally ``weight``) and, per node type, an optional node table (columns ``id`` and
    optionally a label column, ``split`` and feature columns)::

        {"kind": "graph", "name": "lastfm-tiny",
         "node_types": {"artist": {"file": "artists.csv", "features": ["listeners"]},
                        "tag": {}},
         "relations": [
            {"src_type": "artist", "name": "tagged", "dst_type": "tag",
             "file": "artist_tags.csv"},
            {"src_type": "artist", "name": "similar", "dst_type": "artist",
             "file": "similar.csv"}],
         "task": {"type": "node", "node_type": "artist", "label": "genre"}}

    Node ids are any strings; a node type with a table has exactly the ids listed there
    (an edge naming another id is an error), one without a table has the ids its edges
    name, in order of first appearance. ``columns`` renames the expected columns, per
    node type (``{"id": ..., "split": ...}``) or per relation (``{"src": ..., "dst": ...,
    "weight": ...}``); ``format`` overrides the suffix. Every relation gets its reverse
    ``(dst_type, rev_<name>, src_type)`` unless ``"reverse": false`` (or a string: the
    reverse's name), so messages flow both ways.

(b) tensors: the arrays of a torch_geometric ``HeteroData``, without pickle, in one
    ``.npz`` file (``numpy.savez``; read with ``allow_pickle=False``) or ``.safetensors``
    file (needs the ``safetensors`` package), keyed by PyG's attribute paths::

        paper.x  paper.y  paper.train_mask  paper.val_mask  paper.test_mask
        paper.num_nodes (a 0-d array; else x, y or a mask gives the count)
        author__writes__paper.edge_index  (2, E) ints
        author__writes__paper.edge_attr   (E, F) floats; .edge_weight (E,) floats

    with a card ``{"kind": "graph", "tensors": "graph.npz", "task": {...}}``;
    ``node_types`` and ``relations`` may be listed (``{"paper": {"num_nodes": 100}}``,
    ``[{"src_type": ..., "name": ..., "dst_type": ...}]``) or are read off the keys.
    The edge types are kept as stored (``reverse`` defaults to false here: a PyG graph
    usually carries its ``rev_`` edge types already). :func:`write_graph_arrays` writes
    a ``HeteroData`` in this form.

The task (``"task"``: one object, or a list of a node and a link task):

* ``{"type": "node", "node_type": T, "label": COLUMN}``: classify nodes of type T by the
  label column of T's table (form a; default ``label``) or the tensor ``T.<label>``
  (form b; default ``y``, ints, negative = unlabelled). Labels of form (a) are any
  strings, numbered in sorted order (numerically when all are integers); an empty
  field means unlabelled. Splits: the ``split`` column (``train``, ``val``, ``test`` or
  empty) or the masks; without them a seeded 60/20/20 split of the labelled nodes.
* ``{"type": "link", "relation": [S, R, D], "holdout_fraction": 0.1}``: link prediction
  on that relation; the fraction of its edges is held out (removed from the graph, in
  both directions: from the reverse the card adds, or for form (b) from the stored
  reverse ``[D, rev_R, S]``, or the one named by ``"reverse_relation"``) with as many
  seeded negative pairs.

An edge ``weight`` (or ``edge_attr`` / ``edge_weight``) becomes the relation's edge
features (``weight``: one column), shared with its reverse: the HEP model learns an edge
weight a_e = sigmoid(x_e . theta) from them and the adaptive sampler's proposal follows
it. Node features (``features`` columns, or ``T.x``) replace the learned node table.

Errors are :class:`harness.datasets.user_files.DataFileError` (a ValueError) naming the
argument, the card, the part of it and what was expected.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from harness.datasets.graph_task import GraphTask, sample_negative_pairs, split_nodes
from harness.datasets.user_files import (
    FORMATS,
    DataFileError,
    Table,
    read_card_json,
    read_table,
)
from reference.graph import HeteroGraph, Relation

__all__ = ["load_graph_card", "write_graph_arrays", "GRAPH_CARD_KEYS"]

GRAPH_CARD_KEYS = ("kind", "name", "description", "node_types", "relations", "task", "tensors")
_NODE_KEYS = {"tables": ("file", "format", "columns", "features"), "tensors": ("num_nodes",)}
_RELATION_KEYS = {
    "tables": ("src_type", "name", "dst_type", "file", "format", "columns", "reverse"),
    "tensors": ("src_type", "name", "dst_type", "reverse"),
}
_TASK_KEYS = ("type", "node_type", "label", "relation", "holdout_fraction", "reverse_relation")
_TASK_TYPES = {
    "node": "node",
    "node_classification": "node",
    "link": "link",
    "link_prediction": "link",
}
_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


class _Card:
    """A parsed, checked card; ``fail`` raises DataFileError prefixed with its source."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.where = f"{source} {path}"
        raw = read_card_json(path, source)
        self.form = "tensors" if "tensors" in raw else "tables"
        if raw.get("kind", "graph") != "graph" or (
            "path" in raw and "relations" not in raw and "tensors" not in raw
        ):
            self.fail(
                "this is not a graph card (kind 'graph', with relations or tensors); an "
                "interactions card (path, columns) goes to `python -m harness seqrec "
                "--dataset-card`"
            )
        self._keys(raw, GRAPH_CARD_KEYS, "a graph card")
        name = raw.get("name", path.stem)
        if not isinstance(name, str) or not name.strip():
            self.fail(f"name must be a non-empty string, got {name!r}")
        self.name = name
        if self.form == "tables" and "relations" not in raw:
            self.fail(
                "expected 'relations' (edge-list files) or 'tensors' (an .npz or .safetensors file)"
            )
        if "task" not in raw:
            self.fail(
                'expected a task: {"type": "node", "node_type": ..., "label": ...} or '
                '{"type": "link", "relation": [src_type, name, dst_type]}'
            )
        self.raw = raw
        self.node_specs = self._node_types(raw.get("node_types"))
        self.relations = self._relations(raw.get("relations"))
        self.tasks = self._tasks(raw["task"])

    # -------------------------------------------------------------- checks
    def fail(self, message: str):
        raise DataFileError(f"{self.where}: {message}")

    def _keys(self, obj: dict, allowed: tuple[str, ...], what: str) -> None:
        unknown = sorted(set(obj) - set(allowed))
        if unknown:
            self.fail(f"unknown key(s) {unknown} in {what}; allowed: {', '.join(allowed)}")

    def _name(self, value: object, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{what} must be a non-empty string, got {value!r}")
        if "." in value:
            self.fail(f"{what} {value!r} contains '.'; node type and relation names cannot")
        return value

    def file(self, value: object, what: str) -> Path:
        if not isinstance(value, str) or not value:
            self.fail(f"{what}: 'file' must be a file name, got {value!r}")
        return self.path.parent / value

    def fmt(self, spec: dict, what: str) -> str | None:
        fmt = spec.get("format")
        if fmt is not None and fmt not in FORMATS:
            self.fail(f"{what}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt

    def columns(self, spec: dict, roles: tuple[str, ...], what: str) -> dict[str, str]:
        cols = spec.get("columns", {})
        if not isinstance(cols, dict):
            self.fail(f"{what}: columns must map {', '.join(roles)} to column names")
        self._keys(cols, roles, f"{what} columns")
        for role, name in cols.items():
            if not isinstance(name, str) or not name:
                self.fail(f"{what}: the {role} column must be a column name, got {name!r}")
        return cols

    def _node_types(self, raw: object) -> dict[str, dict] | None:
        if raw is None:
            if self.form == "tables":
                self.fail("expected node_types: the node type names (a list, or an object)")
            return None
        if isinstance(raw, list):
            raw = {t: {} for t in raw} if all(isinstance(t, str) for t in raw) else raw
        if not isinstance(raw, dict) or not raw:
            self.fail(
                'node_types must be a non-empty object {"type": {...}} or list of names, '
                f"got {raw!r}"
            )
        specs = {}
        for t, spec in raw.items():
            t = self._name(t, "a node type")
            if spec is None:
                spec = {}
            if not isinstance(spec, dict):
                self.fail(f"node type {t!r}: expected an object, got {spec!r}")
            self._keys(spec, _NODE_KEYS[self.form], f"node type {t!r}")
            specs[t] = spec
        return specs

    def _relation_triple(self, value: object, what: str) -> Relation:
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 3
            or not all(isinstance(p, str) for p in value)
        ):
            self.fail(f"{what} must be [src_type, name, dst_type], got {value!r}")
        return tuple(value)  # type: ignore[return-value]

    def _relations(self, raw: object) -> list[tuple[Relation, dict]] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not raw:
            self.fail(f"relations must be a non-empty list of objects, got {raw!r}")
        out, seen = [], set()
        for k, spec in enumerate(raw):
            what = f"relations[{k}]"
            if not isinstance(spec, dict):
                self.fail(f"{what}: expected an object with src_type, name, dst_type, got {spec!r}")
            self._keys(spec, _RELATION_KEYS[self.form], what)
            rel = tuple(
                self._name(spec.get(p), f"{what}.{p}") for p in ("src_type", "name", "dst_type")
            )
            for t in (rel[0], rel[2]):
                if self.node_specs is not None and t not in self.node_specs:
                    self.fail(
                        f"{what} {rel}: node type {t!r} is not in node_types "
                        f"({', '.join(self.node_specs)})"
                    )
            if rel in seen:
                self.fail(f"{what}: relation {rel} is listed twice")
            seen.add(rel)
            if self.form == "tables" and "file" not in spec:
                self.fail(f"{what} {rel}: expected 'file', the edge list (src,dst[,weight])")
            reverse = spec.get("reverse", self.form == "tables")
            if reverse is True:
                spec = {**spec, "reverse": f"rev_{rel[1]}"}
            elif reverse is False or reverse is None:
                spec = {**spec, "reverse": None}
            else:
                self._name(reverse, f"{what}.reverse")
            out.append((rel, spec))
        return out

    def _tasks(self, raw: object) -> dict[str, dict]:
        items = raw if isinstance(raw, list) else [raw]
        tasks: dict[str, dict] = {}
        for spec in items:
            if not isinstance(spec, dict):
                self.fail(f"task must be an object (or a list of objects), got {spec!r}")
            self._keys(spec, _TASK_KEYS, "task")
            kind = _TASK_TYPES.get(spec.get("type"))
            if kind is None:
                self.fail(
                    "task.type must be 'node' (node classification) or 'link' (link "
                    f"prediction), got {spec.get('type')!r}"
                )
            if kind in tasks:
                self.fail(f"two {kind} tasks; give at most one of each type")
            if kind == "node":
                t = spec.get("node_type")
                if self.node_specs is not None and t not in self.node_specs:
                    self.fail(
                        f"task.node_type must be one of node_types "
                        f"({', '.join(self.node_specs)}), got {t!r}"
                    )
                self._name(t, "task.node_type")
                label = spec.get("label", "label" if self.form == "tables" else "y")
                spec = {**spec, "label": self._name(label, "task.label")}
            else:
                rel = self._relation_triple(spec.get("relation"), "task.relation")
                if self.relations is not None and rel not in dict(self.relations):
                    self.fail(
                        f"task.relation {list(rel)} is not one of the card's relations "
                        f"({', '.join(str(list(r)) for r, _ in self.relations)})"
                    )
                frac = spec.get("holdout_fraction", 0.1)
                if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
                    self.fail(f"task.holdout_fraction must be a number in (0, 1), got {frac!r}")
                rev = spec.get("reverse_relation")
                if rev is not None:
                    rev = self._relation_triple(rev, "task.reverse_relation")
                spec = {
                    **spec,
                    "relation": rel,
                    "holdout_fraction": float(frac),
                    "reverse_relation": rev,
                }
            tasks[kind] = spec
        return tasks


class _Pieces:
    """The graph before held-out edges are removed and reverses added."""

    def __init__(self) -> None:
        self.num_nodes: dict[str, int] = {}
        self.features: dict[str, Tensor] = {}
        self.edges: dict[Relation, Tensor] = {}
        self.edge_features: dict[Relation, Tensor] = {}
        self.reverse: dict[Relation, str | None] = {}
        self.labels: Tensor | None = None  # (N,) int64, -1 unlabelled
        self.num_classes = 0
        self.split: dict[str, Tensor] | None = None


# ------------------------------------------------------------------ form (a): tables
def _float_column(table: Table, column: str, what: str) -> Tensor:
    out = []
    for k, v in enumerate(table.column(column, what)):
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = float("nan")
        if not np.isfinite(x):
            raise DataFileError(
                f"{table.source} {table.where(k)}: {what} {column!r} holds {v!r}; "
                "expected a finite number"
            )
        out.append(x)
    return torch.tensor(out, dtype=torch.float32)


def _label_codes(values: list[str]) -> tuple[list[str], dict[str, int]]:
    """Distinct non-empty labels in sorted order (numerically when all are integers)
    and each label's class id."""
    classes = sorted({v for v in values if v})
    try:
        numbers = [int(c) for c in classes]
    except ValueError:
        numbers = None
    if numbers is not None:
        classes = [c for _, c in sorted(zip(numbers, classes, strict=True))]
    return classes, {c: i for i, c in enumerate(classes)}


def _from_tables(card: _Card) -> _Pieces:
    pieces = _Pieces()
    tables: dict[str, Table] = {}
    index: dict[str, dict[str, int]] = {}
    fixed: set[str] = set()
    for t, spec in card.node_specs.items():
        index[t] = {}
        if "file" not in spec:
            for key in ("columns", "features", "format"):
                if key in spec:
                    card.fail(f"node type {t!r}: {key!r} needs a 'file' (the node table)")
            continue
        what = f"node type {t!r}"
        cols = card.columns(spec, ("id", "split"), what)
        table = read_table(
            card.file(spec["file"], what), fmt=card.fmt(spec, what), source=f"{card.where}: {what}"
        )
        ids = [str(v).strip() for v in table.column(cols.get("id", "id"), "the node id column")]
        for k, node in enumerate(ids):
            if not node:
                card.fail(f"{what}: {table.where(k)} has an empty id")
            if index[t].setdefault(node, k) != k:
                card.fail(f"{what}: id {node!r} is listed twice in {table.path}")
        tables[t], fixed = table, fixed | {t}
        feats = spec.get("features", [])
        if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
            card.fail(f"{what}: features must be a list of column names, got {feats!r}")
        if feats:
            pieces.features[t] = torch.stack(
                [_float_column(table, f, "the feature column") for f in feats], dim=1
            )
        if "split" in cols:
            table.find(cols["split"], "the split column")  # named, so it must exist
    for rel, spec in card.relations:
        what = f"relation {rel}"
        cols = card.columns(spec, ("src", "dst", "weight"), what)
        table = read_table(
            card.file(spec["file"], what), fmt=card.fmt(spec, what), source=f"{card.where}: {what}"
        )
        pairs = []
        for role, t in (("src", rel[0]), ("dst", rel[2])):
            col = table.find(cols.get(role, role), f"the {role} id column")
            ids, known = [], index[t]
            for k, node in enumerate(table.data[col]):
                node = str(node).strip()
                if t in fixed:
                    if node not in known:
                        raise DataFileError(
                            f"{table.source} {table.where(k)}: {role} id {node!r} is not in "
                            f"the node table of {t!r} ({tables[t].path})"
                        )
                    ids.append(known[node])
                else:
                    if not node:
                        raise DataFileError(f"{table.source} {table.where(k)}: empty {role} id")
                    ids.append(known.setdefault(node, len(known)))
            pairs.append(ids)
        pieces.edges[rel] = torch.tensor(pairs, dtype=torch.int64).reshape(2, -1)
        weight = cols.get("weight") or ("weight" if "weight" in table.data else None)
        if weight is not None:
            pieces.edge_features[rel] = _float_column(table, weight, "the weight column")[:, None]
        pieces.reverse[rel] = spec["reverse"]
    pieces.num_nodes = {t: len(index[t]) for t in card.node_specs}
    task = card.tasks.get("node")
    if task is not None:
        t = task["node_type"]
        if t not in tables:
            card.fail(
                f"task: node type {t!r} has no node table ('file') to read the label "
                f"column {task['label']!r} from"
            )
        table = tables[t]
        values = [
            "" if v is None else str(v).strip()
            for v in table.column(task["label"], "the label column named by task.label")
        ]
        classes, code = _label_codes(values)
        pieces.labels = torch.tensor([code.get(v, -1) for v in values], dtype=torch.int64)
        pieces.num_classes = len(classes)
        cols = card.columns(card.node_specs[t], ("id", "split"), f"node type {t!r}")
        split_col = cols.get("split") or ("split" if "split" in table.data else None)
        if split_col is not None:
            pieces.split = _split_from_column(table, split_col, pieces.labels)
    return pieces


def _split_from_column(table: Table, column: str, labels: Tensor) -> dict[str, Tensor]:
    ids: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for k, v in enumerate(table.column(column, "the split column")):
        v = "" if v is None else str(v).strip().lower()
        if not v:
            continue
        if v not in _SPLITS:
            raise DataFileError(
                f"{table.source} {table.where(k)}: split {v!r}; expected train, val, test or empty"
            )
        if labels[k] < 0:
            raise DataFileError(
                f"{table.source} {table.where(k)}: the node is in split {v!r} but has no label"
            )
        ids[_SPLITS[v]].append(k)
    return {s: torch.tensor(v, dtype=torch.int64) for s, v in ids.items()}


# ----------------------------------------------------------------- form (b): tensors
def _load_arrays(card: _Card) -> dict[str, np.ndarray]:
    file = card.file(card.raw["tensors"], "tensors")
    what = f"tensors {file}"
    if not file.is_file():
        card.fail(f"tensors: no such file {file}")
    suffix = file.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(file, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        except ValueError as exc:
            card.fail(
                f"{what}: {exc}; the arrays must be plain numbers (numpy.savez of int, float "
                "and bool arrays, never pickled objects)"
            )
        except (OSError, EOFError) as exc:
            card.fail(f"{what}: not a readable .npz file ({exc})")
    if suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            card.fail(
                f"{what}: reading .safetensors needs the 'safetensors' package (pip install "
                "safetensors), which is not installed here; or save the same arrays with "
                "numpy.savez as an .npz file (see docs/data.md)"
            )
        try:
            return dict(load_file(str(file)))
        except Exception as exc:  # whatever a damaged file makes the reader raise
            card.fail(f"{what}: not a readable .safetensors file ({exc})")
    card.fail(f"tensors must name an .npz or .safetensors file, got {file.name!r}")
    raise AssertionError  # unreachable


def _edge_key(rel: Relation) -> str:
    return "__".join(rel)


def _infer_schema(card: _Card, arrays: dict[str, np.ndarray]) -> None:
    """Node types and relations read off the array keys when the card does not list them."""
    if card.relations is None:
        rels = []
        for key in arrays:
            if key.endswith(".edge_index"):
                parts = key[: -len(".edge_index")].split("__")
                if len(parts) != 3 or not all(parts):
                    card.fail(
                        f"tensors: cannot read an edge type from {key!r}; list the relations "
                        "in the card"
                    )
                rels.append({"src_type": parts[0], "name": parts[1], "dst_type": parts[2]})
        if not rels:
            card.fail("tensors: no '<src>__<name>__<dst>.edge_index' array, so no relation")
        if card.node_specs is None:
            types = {}
            for r in rels:
                types.setdefault(r["src_type"], {})
                types.setdefault(r["dst_type"], {})
            for key in arrays:
                head = key.rsplit(".", 1)[0]
                if "__" not in head:
                    types.setdefault(head, {})
            card.node_specs = card._node_types(types)
        card.relations = card._relations(rels)
        card.tasks = card._tasks(card.raw["task"])
    elif card.node_specs is None:
        types = {}
        for rel, _ in card.relations:
            types.setdefault(rel[0], {})
            types.setdefault(rel[2], {})
        card.node_specs = card._node_types(types)
        card.tasks = card._tasks(card.raw["task"])


def _array(card: _Card, arrays: dict, key: str, kind: str, ndim: int) -> np.ndarray | None:
    a = arrays.get(key)
    if a is None:
        return None
    ok = {
        "int": np.issubdtype(a.dtype, np.integer),
        "float": np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer),
        "bool": a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer),
    }[kind]
    if not ok or a.ndim != ndim:
        card.fail(
            f"tensors: {key!r} is a {a.ndim}-D {a.dtype} array; expected {ndim}-D {kind} values"
        )
    return a


def _from_tensors(card: _Card) -> _Pieces:
    arrays = _load_arrays(card)
    _infer_schema(card, arrays)
    pieces = _Pieces()
    edges = {}
    for rel, spec in card.relations:
        key = _edge_key(rel)
        ei = _array(card, arrays, f"{key}.edge_index", "int", 2)
        if ei is None:
            found = [k for k in arrays if k.endswith(".edge_index")]
            card.fail(
                f"tensors: no array {key + '.edge_index'!r} for relation {rel}; found {found}"
            )
        if ei.shape[0] != 2:
            card.fail(f"tensors: {key}.edge_index has shape {ei.shape}; expected (2, E)")
        edges[rel] = torch.from_numpy(ei.astype(np.int64))
        feats = []
        attr = _array(card, arrays, f"{key}.edge_attr", "float", 2)
        if attr is not None:
            feats.append(attr)
        w = _array(card, arrays, f"{key}.edge_weight", "float", 1)
        if w is not None:
            feats.append(w[:, None])
        for f in feats:
            if f.shape[0] != ei.shape[1]:
                card.fail(f"tensors: {key} has {ei.shape[1]} edges but {f.shape[0]} feature rows")
        if feats:
            pieces.edge_features[rel] = torch.from_numpy(
                np.concatenate(feats, axis=1).astype(np.float32)
            )
        pieces.reverse[rel] = spec["reverse"]
    pieces.edges = edges
    for t, spec in card.node_specs.items():
        x = _array(card, arrays, f"{t}.x", "float", 2)
        count = spec.get("num_nodes")
        if count is None and f"{t}.num_nodes" in arrays:
            count = int(np.asarray(arrays[f"{t}.num_nodes"]).reshape(()))
        for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
            if count is None and f"{t}.{key}" in arrays:
                count = int(arrays[f"{t}.{key}"].shape[0])
        if count is None:  # the largest id its edges name
            ids = [e[0] for r, e in edges.items() if r[0] == t]
            ids += [e[1] for r, e in edges.items() if r[2] == t]
            count = max((int(i.max()) + 1 for i in ids if i.numel()), default=0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            card.fail(f"node type {t!r}: num_nodes must be an int >= 0, got {count!r}")
        pieces.num_nodes[t] = count
        if x is not None:
            pieces.features[t] = torch.from_numpy(x.astype(np.float32))
    task = card.tasks.get("node")
    if task is not None:
        t, label = task["node_type"], task["label"]
        y = _array(card, arrays, f"{t}.{label}", "int", 1)
        if y is None:
            card.fail(f"task: no array {t + '.' + label!r} (class ids of the {t!r} nodes)")
        if y.shape[0] != pieces.num_nodes[t]:
            card.fail(
                f"tensors: {t}.{label} has {y.shape[0]} entries; {t!r} has "
                f"{pieces.num_nodes[t]} nodes"
            )
        labels = torch.from_numpy(y.astype(np.int64)).clamp(min=-1)
        pieces.labels, pieces.num_classes = labels, int(labels.max()) + 1 if labels.numel() else 0
        masks = {
            s: _array(card, arrays, f"{t}.{s}_mask", "bool", 1) for s in ("train", "val", "test")
        }
        if any(m is not None for m in masks.values()):
            split = {}
            for s, m in masks.items():
                if m is None:
                    card.fail(f"tensors: {t}.{s}_mask is missing (give all three masks or none)")
                if m.shape[0] != labels.numel():
                    card.fail(
                        f"tensors: {t}.{s}_mask has {m.shape[0]} entries, expected {labels.numel()}"
                    )
                ids = torch.from_numpy(np.flatnonzero(m.astype(bool))).to(torch.int64)
                if bool((labels[ids] < 0).any()):
                    card.fail(f"tensors: {t}.{s}_mask selects nodes without a label (y < 0)")
                split[s] = ids
            pieces.split = split
    return pieces


# ------------------------------------------------------------------------- assembly
def _remove_pairs(edges: Tensor, pairs: Tensor) -> Tensor:
    """Mask of the columns of ``edges`` (2, E) to keep after removing one occurrence of
    every column of ``pairs`` (2, P)."""
    wanted = Counter(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))
    keep = torch.ones(edges.shape[1], dtype=torch.bool)
    for k, pair in enumerate(zip(edges[0].tolist(), edges[1].tolist(), strict=True)):
        if wanted.get(pair):
            wanted[pair] -= 1
            keep[k] = False
    return keep


def load_graph_card(
    path: str | os.PathLike, *, seed: int = 0, source: str = "--dataset-card"
) -> GraphTask:
    """Load the graph a card describes (see the module docstring) as a GraphTask; the
    held-out edges, negatives and random node splits are drawn with ``seed``."""
    card = _Card(Path(path), source)
    pieces = _from_tensors(card) if card.form == "tensors" else _from_tables(card)
    gen = torch.Generator().manual_seed(seed)
    edges, feats = dict(pieces.edges), dict(pieces.edge_features)
    task = GraphTask(name=card.name, graph=None)  # type: ignore[arg-type]
    link = card.tasks.get("link")
    if link is not None:
        rel = link["relation"]
        all_edges = edges[rel]
        count = all_edges.shape[1]
        n_out = int(round(link["holdout_fraction"] * count))
        if n_out < 2:
            card.fail(
                f"task: holding out {link['holdout_fraction']} of the {count} edges of {rel} "
                "leaves fewer than 2 (one validation and one test edge); raise "
                "holdout_fraction or add edges"
            )
        perm = torch.randperm(count, generator=gen)
        held, kept = perm[:n_out], perm[n_out:]
        task.heldout_pos = all_edges[:, held]
        edges[rel] = all_edges[:, kept]
        if rel in feats:
            feats[rel] = feats[rel][kept]
        stored = link["reverse_relation"]
        if stored is None and pieces.reverse.get(rel) is None:
            guess = (rel[2], f"rev_{rel[1]}", rel[0])
            stored = guess if guess in edges else None
        if stored is not None:
            if stored not in edges:
                card.fail(f"task.reverse_relation {list(stored)} is not a relation of the graph")
            keep = _remove_pairs(edges[stored], task.heldout_pos.flip(0))
            edges[stored] = edges[stored][:, keep]
            if stored in feats:
                feats[stored] = feats[stored][keep]
        n_src, n_dst = pieces.num_nodes[rel[0]], pieces.num_nodes[rel[2]]
        try:
            task.heldout_neg = sample_negative_pairs(all_edges, n_src, n_dst, n_out, gen)
        except ValueError:
            card.fail(
                f"task: {rel} is too dense to draw {n_out} negative pairs (pairs that are "
                "not edges); lower holdout_fraction"
            )
        task.link_relation = rel
    for rel, rev_name in pieces.reverse.items():
        if rev_name is None:
            continue
        rev = (rel[2], rev_name, rel[0])
        if rev in pieces.edges:
            card.fail(
                f"relation {rel} adds the reverse {rev}, which the card also lists; set "
                '"reverse": false on one of them'
            )
        edges[rev] = edges[rel].flip(0)
        if rel in feats:
            feats[rev] = feats[rel]
    try:
        task.graph = HeteroGraph.from_edge_index(
            pieces.num_nodes, edges, node_features=pieces.features, edge_features=feats
        )
    except (TypeError, ValueError) as exc:
        card.fail(f"the graph is inconsistent: {exc}")
    node = card.tasks.get("node")
    if node is not None:
        labels = pieces.labels
        if pieces.num_classes < 2:
            card.fail(
                f"task: node classification needs at least 2 classes in the label "
                f"{node['label']!r} of {node['node_type']!r}; found {pieces.num_classes}"
            )
        split = pieces.split
        if split is None:
            split = split_nodes(torch.nonzero(labels >= 0).flatten(), gen)
        empty = [s for s in ("train", "val", "test") if split[s].numel() == 0]
        if empty:
            card.fail(
                f"task: the {'/'.join(empty)} split of {node['node_type']!r} is empty "
                f"({int((labels >= 0).sum())} labelled nodes); label more nodes or assign "
                "them in the split column / masks"
            )
        task.node_type, task.labels = node["node_type"], labels
        task.num_classes, task.split = pieces.num_classes, split
    return task


# ----------------------------------------------------------------------------- writer
def write_graph_arrays(
    data,
    directory: str | os.PathLike,
    *,
    name: str,
    task: dict | list | None = None,
    filename: str = "graph.npz",
) -> Path:
    """Write a torch_geometric ``HeteroData`` in form (b): ``directory/filename`` (an .npz
    of its num_nodes, x, y, train/val/test masks, edge_index, edge_attr and edge_weight;
    other attributes are left out) and ``directory/<name>.json``, the card (its node
    types and edge types as stored, ``task`` as given). Returns the card's path."""
    if not filename.endswith(".npz"):
        raise ValueError(f"filename must end in .npz, got {filename!r}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    node_types = {}
    for t in data.node_types:
        store = data[t]
        node_types[t] = {"num_nodes": int(store.num_nodes)}
        for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
            if key in store and store[key] is not None:
                arrays[f"{t}.{key}"] = store[key].detach().cpu().numpy()
    relations = []
    for rel in data.edge_types:
        store = data[rel]
        relations.append({"src_type": rel[0], "name": rel[1], "dst_type": rel[2]})
        for key in ("edge_index", "edge_attr", "edge_weight"):
            if key in store and store[key] is not None:
                arrays[f"{_edge_key(tuple(rel))}.{key}"] = store[key].detach().cpu().numpy()
    np.savez(folder / filename, **arrays)
    card = {
        "kind": "graph",
        "name": name,
        "tensors": filename,
        "node_types": node_types,
        "relations": relations,
    }
    if task is not None:
        card["task"] = task
    out = folder / f"{name}.json"
    out.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out
