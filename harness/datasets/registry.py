"""Data sets registered by installed packages, through the ``lisa_bench.datasets``
entry-point group (as methods are, through ``lisa_bench.attention``).

A package declares, in its ``pyproject.toml``::

    [project.entry-points."lisa_bench.datasets"]
    lastfm = "mypkg.data:load_lastfm"

and ``python -m harness graph --data lastfm`` (or ``seqrec --dataset lastfm``) loads it.
The entry point names either a callable or an already loaded task. A callable is called
with ``seed=SEED`` when it accepts a ``seed`` argument (the command's ``--seed``, or 0),
otherwise with no argument, and must return a loaded task:

* for ``graph``: a :class:`harness.datasets.GraphTask` (for instance
  ``harness.datasets.load_graph_card(path, seed=seed)`` on a card the package ships);
* for ``seqrec``: a :class:`harness.seqrec.sequences.SeqRecData` (per-user sequences; the
  command applies the protocol's leave-last-out split and negatives) or a ready
  :class:`harness.seqrec.training.SeqRecTask`.

Nothing is imported until a command asks for that name; the names of built-in data sets
(``synthetic``, ``synthetic-imbalanced``, ``movielens``, ``ml-100k``, ``ml-1m``) always
mean the built-in ones.
Errors are :class:`DatasetPluginError` (a ValueError) naming the entry point.
"""

from __future__ import annotations

import importlib.metadata
import inspect

__all__ = [
    "ENTRY_POINT_GROUP",
    "DatasetPluginError",
    "load_registered_dataset",
    "registered_datasets",
]

ENTRY_POINT_GROUP = "lisa_bench.datasets"


class DatasetPluginError(ValueError):
    """A registered data set that cannot be listed, loaded or used; names the entry
    point."""


def registered_datasets() -> dict:
    """Entry-point name -> ``importlib.metadata.EntryPoint`` of the group, nothing loaded
    (the first of two entry points with one name wins)."""
    try:
        group = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # broken distribution metadata
        raise DatasetPluginError(
            f"listing the {ENTRY_POINT_GROUP} entry points failed: {type(exc).__name__}: {exc}"
        ) from exc
    found: dict = {}
    for ep in group:
        found.setdefault(ep.name, ep)
    return found


def _accepts_seed(obj) -> bool:
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in params)


def load_registered_dataset(name: str, *, seed: int = 0, kinds: tuple[type, ...] = ()):
    """Load the data set registered as ``name`` (see the module docstring) and check
    that it is an instance of one of ``kinds`` (when given)."""
    eps = registered_datasets()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise DatasetPluginError(
            f"no data set {name!r} in the {ENTRY_POINT_GROUP} entry points (registered: {known})"
        )
    ep = eps[name]
    label = f"data set entry point {name!r} ({ep.value})"
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:  # a plugin's import may raise anything
        raise DatasetPluginError(f"{label} failed to load: {type(exc).__name__}: {exc}") from exc
    if kinds and isinstance(obj, kinds):
        return obj
    if not callable(obj):
        raise DatasetPluginError(
            f"{label} is {type(obj).__name__}; expected a callable returning "
            f"{_names(kinds) or 'a loaded task'}"
        )
    try:
        task = obj(seed=seed) if _accepts_seed(obj) else obj()
    except (Exception, SystemExit) as exc:
        raise DatasetPluginError(f"{label} raised {type(exc).__name__}: {exc}") from exc
    if kinds and not isinstance(task, kinds):
        raise DatasetPluginError(
            f"{label} returned {type(task).__name__}; this command needs {_names(kinds)}"
        )
    return task


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)
