"""The authors' sequential-recommendation protocol (Wu et al. 2021, following SASRec).

From events ``(user, item, timestamp)`` in file order:

1. each user's events are ordered by a *stable* sort on timestamp, so events sharing a
   timestamp keep their order in the file (about half of MovieLens's consecutive events
   share a second);
2. users with fewer than ``min_events`` (4) events are dropped;
3. item tokens are mapped to ids 1..n in order of first appearance among kept users
   (0 is padding); users keep their order of first appearance;
4. leave-last-out: for a sequence s_1..s_T, training uses s_1..s_{T-2}; validation ranks
   s_{T-1} given s_1..s_{T-2}; test ranks s_T given s_1..s_{T-1};
5. each evaluated target is ranked against ``num_negatives`` (100) items drawn uniformly
   without replacement from the items the user never touched (in any split), with a
   seeded generator; validation and test draw separately.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SeqRecData", "EvalSplit", "build_sequences", "leave_last_out", "sample_negatives"]


@dataclass
class SeqRecData:
    """Per-user item-id sequences (chronological) over ``num_items`` items (ids 1..n)."""

    name: str
    num_items: int
    users: list[str]
    sequences: list[np.ndarray]
    checksum: str = ""
    item_tokens: list[str] = field(default_factory=list)

    @property
    def num_events(self) -> int:
        return int(sum(len(s) for s in self.sequences))


@dataclass
class EvalSplit:
    """Inputs (histories), targets (n,), candidate negatives (n, num_negatives)."""

    inputs: list[np.ndarray]
    targets: np.ndarray
    negatives: np.ndarray


def build_sequences(
    events: Iterable[tuple[str, str, float]],
    *,
    min_events: int = 4,
    name: str = "data",
    checksum: str = "",
) -> SeqRecData:
    """Steps 1-3 of the protocol (see the module docstring)."""
    if min_events < 3:
        raise ValueError(
            f"min_events must be >= 3 (train/valid/test need one each), got {min_events}"
        )
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for position, (user, item, stamp) in enumerate(events):
        per_user.setdefault(user, []).append((stamp, position, item))
    users, raw = [], []
    for user, rows in per_user.items():
        if len(rows) < min_events:
            continue
        rows.sort(key=lambda r: (r[0], r[1]))  # (timestamp, position in file)
        users.append(user)
        raw.append([item for _, _, item in rows])
    if not users:
        raise ValueError(f"no user has >= {min_events} events")
    index: dict[str, int] = {}
    sequences = []
    for items in raw:
        ids = []
        for token in items:
            if token not in index:
                index[token] = len(index) + 1
            ids.append(index[token])
        sequences.append(np.asarray(ids, dtype=np.int64))
    return SeqRecData(
        name=name,
        num_items=len(index),
        users=users,
        sequences=sequences,
        checksum=checksum,
        item_tokens=list(index),
    )


def sample_negatives(
    seen: np.ndarray, num_items: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` distinct item ids from 1..num_items, none of them in ``seen``."""
    pool = np.setdiff1d(np.arange(1, num_items + 1, dtype=np.int64), seen, assume_unique=False)
    if pool.size < count:
        raise ValueError(
            f"num_negatives={count} but the user left only {pool.size} unseen items "
            f"(num_items={num_items})"
        )
    return rng.choice(pool, size=count, replace=False)


def leave_last_out(
    data: SeqRecData, *, num_negatives: int = 100, seed: int = 0
) -> tuple[list[np.ndarray], EvalSplit, EvalSplit]:
    """Step 4-5: (training sequences, validation split, test split)."""
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    train, splits = [], {"valid": ([], [], []), "test": ([], [], [])}
    rng = np.random.default_rng(seed)
    for seq in data.sequences:
        if len(seq) < 3:
            raise ValueError("every sequence needs >= 3 events for leave-last-out")
        train.append(seq[:-2])
        for split, cut in (("valid", len(seq) - 2), ("test", len(seq) - 1)):
            inputs, targets, negs = splits[split]
            inputs.append(seq[:cut])
            targets.append(seq[cut])
            negs.append(sample_negatives(seq, data.num_items, num_negatives, rng))
    out = [
        EvalSplit(inputs=i, targets=np.asarray(t, dtype=np.int64), negatives=np.stack(n))
        for i, t, n in splits.values()
    ]
    return train, out[0], out[1]


def sequences_checksum(data: SeqRecData) -> str:
    """SHA-256 of the processed sequences (identifies generated data in result files)."""
    digest = hashlib.sha256(str(data.num_items).encode())
    for seq in data.sequences:
        digest.update(seq.astype("<i8").tobytes())
        digest.update(b"|")
    return digest.hexdigest()
