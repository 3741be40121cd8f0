"""Seeded synthetic interaction sequences with planted structure (the embedded default).

Items 1..n are split into ``num_clusters`` clusters (a seeded random partition), and each
item i has a fixed successor ``succ(i)``, a random item of its own cluster. A user's
sequence starts at a uniformly drawn item and then moves, from the current item c, to

* ``succ(c)``                         with probability ``p_follow``,
* a uniform item of c's cluster       with probability ``(1 - p_follow) * p_cluster``,
* a uniform item overall              otherwise,

so the next item is predictable from the last one (a first-order Markov chain a one-block
attention model can learn), and a model that learned it beats a random ranker by a wide
margin. Lengths are uniform in [min_len, max_len]. Timestamps increase by one every two
events (so ties occur and the stable sort of the protocol is exercised); users' events are
emitted in user order. The output is a list of events ``(user, item, timestamp)`` with
string tokens, like a parsed atomic file.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SyntheticConfig", "synthetic_events", "planted_successors"]

from dataclasses import dataclass


@dataclass(frozen=True)
class SyntheticConfig:
    num_users: int = 600
    num_items: int = 300
    num_clusters: int = 12
    min_len: int = 8
    max_len: int = 40
    p_follow: float = 0.7
    p_cluster: float = 0.7
    seed: int = 0

    def check(self) -> None:
        for name in ("num_users", "num_items", "num_clusters", "min_len", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.num_clusters > self.num_items:
            raise ValueError("num_clusters must be <= num_items")
        if self.min_len > self.max_len:
            raise ValueError(f"min_len={self.min_len} must be <= max_len={self.max_len}")
        for name in ("p_follow", "p_cluster"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def planted_successors(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each item, successor of each item), both indexed by item id (0 unused)."""
    cfg.check()
    rng = np.random.default_rng([cfg.seed, 1])
    cluster = np.zeros(cfg.num_items + 1, dtype=np.int64)
    cluster[1:] = rng.permutation(np.arange(cfg.num_items) % cfg.num_clusters)
    succ = np.zeros(cfg.num_items + 1, dtype=np.int64)
    for c in range(cfg.num_clusters):
        members = np.flatnonzero(cluster == c)
        members = members[members > 0]
        succ[members] = rng.choice(members, size=members.size)
    return cluster, succ


def synthetic_events(cfg: SyntheticConfig | None = None) -> list[tuple[str, str, float]]:
    """Events ``(user, item, timestamp)`` drawn from the planted chain (module docstring)."""
    cfg = cfg or SyntheticConfig()
    cluster, succ = planted_successors(cfg)
    members = {c: np.flatnonzero(cluster[1:] == c) + 1 for c in range(cfg.num_clusters)}
    rng = np.random.default_rng([cfg.seed, 2])
    events = []
    for u in range(cfg.num_users):
        length = int(rng.integers(cfg.min_len, cfg.max_len + 1))
        item = int(rng.integers(1, cfg.num_items + 1))
        for t in range(length):
            events.append((f"u{u}", f"i{item}", float(t // 2)))
            draw = rng.random()
            if draw < cfg.p_follow:
                item = int(succ[item])
            elif draw < cfg.p_follow + (1 - cfg.p_follow) * cfg.p_cluster:
                item = int(rng.choice(members[int(cluster[item])]))
            else:
                item = int(rng.integers(1, cfg.num_items + 1))
    return events
