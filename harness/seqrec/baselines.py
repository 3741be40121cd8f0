"""Model-free baselines on the protocol's own candidates, and a check of the protocol.

Every baseline ranks exactly the candidates a model ranks: each evaluated target against
the split's sampled negatives (the same ``EvalSplit``, so the same users, targets and
negatives), and is scored by the same HR@K / NDCG@K (``harness.seqrec.ranking_metrics``).
A model that does not beat them has learned nothing the data's marginals do not give.

* ``popularity``: candidates ordered by their number of training interactions (every
  item occurrence in ``task.train``, the sequences the model trains on); equal counts are
  broken by item id, the smaller id first (ids follow first appearance in the data), so
  the order is strict and deterministic.
* ``random``: i.i.d. uniform scores from a seeded generator (expected HR@K = K / (m + 1)
  with m negatives).
* ``seen-before-popularity``: candidates that occur in the user's history (the input the
  model is given for that target) first, then by popularity as above. Reported on
  repeat-consumption data (see below).
* ``none`` (no attention) is a *model*: ``python -m harness seqrec --method none`` (it
  trains, so it is a method row, not a baseline computed here).

Protocol check. :func:`repeat_share` is the fraction of a split's targets that occur in
the user's own history (the input the model is given: for the test split the training
sequence and the validation item). The authors' protocol draws negatives only among
items the user never touched, so on data where users consume items again (baskets,
music, re-watches) every history item among the candidates *is* the target, and the
"seen before" heuristic ranks it first for each repeated target: HR@10 >= the repeat
share without learning anything. Above :data:`REPEAT_THRESHOLD` the ``seqrec`` command
warns and offers ``--negatives-from all`` (negatives from every item but the target,
history allowed; ``harness.seqrec.training.with_negatives``), where the heuristic has no
such advantage.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.seqrec.ranking_metrics import ranking_metrics, ranks
from harness.seqrec.sequences import EvalSplit
from harness.seqrec.training import SeqRecTask

__all__ = [
    "BASELINES",
    "REPEAT_THRESHOLD",
    "baseline_metrics",
    "baseline_ranks",
    "repeat_share",
    "repeat_warning",
    "training_counts",
]

REPEAT_THRESHOLD = 0.05  # repeat share above which the protocol check warns
BASELINES = ("popularity", "random", "seen-before-popularity")


def _split(task: SeqRecTask, split: str) -> EvalSplit:
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    return getattr(task, split)


def training_counts(task: SeqRecTask) -> np.ndarray:
    """(num_items + 1,) int64: how often each item id occurs in the training sequences
    (index 0, the padding id, is 0)."""
    counts = np.zeros(task.data.num_items + 1, dtype=np.int64)
    for seq in task.train:
        np.add.at(counts, np.asarray(seq, dtype=np.int64), 1)
    counts[0] = 0
    return counts


def _candidates(split: EvalSplit) -> np.ndarray:
    """(n, 1 + m): the target in column 0, then its negatives."""
    targets = np.asarray(split.targets, dtype=np.int64).reshape(-1, 1)
    return np.concatenate([targets, np.asarray(split.negatives, dtype=np.int64)], axis=1)


def _seen(split: EvalSplit, candidates: np.ndarray) -> np.ndarray:
    """(n, 1 + m) bool: the candidate occurs in that user's history (the split's input)."""
    seen = np.zeros(candidates.shape, dtype=bool)
    for row, history in enumerate(split.inputs):
        if len(history):
            seen[row] = np.isin(candidates[row], history)
    return seen


def _ranks_by_keys(keys: list[np.ndarray]) -> torch.Tensor:
    """0-based ranks of column 0 among columns 1.. under the lexicographic order of
    ``keys`` (each (n, 1 + m), larger first). A negative equal to the target on every key
    counts against it, as in ``ranking_metrics.ranks``."""
    above = np.zeros(keys[0][:, 1:].shape, dtype=bool)
    equal = np.ones_like(above)
    for key in keys:
        target, negatives = key[:, :1], key[:, 1:]
        above |= equal & (negatives > target)
        equal &= negatives == target
    return torch.from_numpy((above | equal).sum(axis=1).astype(np.int64))


def baseline_ranks(task: SeqRecTask, name: str, split: str = "test", *, seed: int = 0):
    """0-based ranks (n,) int64 of ``split``'s targets under baseline ``name`` (one of
    :data:`BASELINES`; ``seed`` is the random baseline's: the same scores as
    ``training.random_ranker_metrics``)."""
    data = _split(task, split)
    if name == "random":
        gen = torch.Generator().manual_seed(seed)
        scores = torch.rand(len(data.targets), data.negatives.shape[1] + 1, generator=gen)
        return ranks(scores[:, 0], scores[:, 1:])
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {name!r}")
    candidates = _candidates(data)
    popularity = training_counts(task)[candidates]
    keys = [popularity, -candidates]  # more interactions first, then the smaller id
    if name == "seen-before-popularity":
        keys.insert(0, _seen(data, candidates).astype(np.int64))
    return _ranks_by_keys(keys)


def repeat_share(task: SeqRecTask, split: str = "test") -> float:
    """The fraction of ``split``'s targets that occur in the user's own history (the
    input the model is given for that target); NaN for an empty split."""
    data = _split(task, split)
    if not len(data.targets):
        return float("nan")
    hits = sum(
        bool(len(history)) and bool(np.isin(target, history))
        for history, target in zip(data.inputs, data.targets, strict=True)
    )
    return hits / len(data.targets)


def baseline_metrics(
    task: SeqRecTask,
    split: str = "test",
    *,
    seed: int = 0,
    seen_before: bool | None = None,
) -> dict[str, dict[str, float]]:
    """{"popularity": {"HR@5", "NDCG@5", "HR@10", "NDCG@10"}, "random": {...}} on
    ``split``'s targets and negatives (module docstring), plus "seen-before-popularity"
    when ``seen_before`` is True, or when it is None (the default) and the split's
    :func:`repeat_share` exceeds :data:`REPEAT_THRESHOLD`."""
    out = {
        "popularity": ranking_metrics(baseline_ranks(task, "popularity", split)),
        "random": ranking_metrics(baseline_ranks(task, "random", split, seed=seed)),
    }
    if seen_before is None:
        seen_before = repeat_share(task, split) > REPEAT_THRESHOLD
    if seen_before:
        out["seen-before-popularity"] = ranking_metrics(
            baseline_ranks(task, "seen-before-popularity", split)
        )
    return out


def repeat_warning(share: float, negatives_from: str = "history-excluded") -> str | None:
    """The protocol check's warning for a repeat share (None when there is nothing to
    say: the share is at most :data:`REPEAT_THRESHOLD`, or negatives already come from
    all items)."""
    if not share > REPEAT_THRESHOLD or negatives_from != "history-excluded":
        return None
    return (
        f"{share:.1%} of the test targets occur in the user's own history (more than "
        f"{REPEAT_THRESHOLD:.0%}): this looks like repeat-consumption data. The sampled "
        "negatives exclude every item the user touched, so any history item among the "
        "candidates is the target, and a 'seen before, then popularity' heuristic (the "
        "seen-before-popularity baseline) ranks it first for every repeated target "
        "without learning anything. Compare against that baseline, or rerun with "
        "--negatives-from all (negatives from every item but the target, history allowed)."
    )
