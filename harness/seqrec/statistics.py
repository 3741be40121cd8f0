"""Seed-to-seed noise of downstream scores: Student-t intervals of a mean and of a paired
difference.

* :func:`mean_interval`: the mean of n values (one per training seed) and its interval
  ``mean +- t((1 + level) / 2, n - 1) * sd / sqrt(n)``, sd the sample standard deviation
  (n - 1 in the denominator). One value has no interval (``half_width`` None).
* :func:`paired_difference`: two methods trained with the same seeds (so the same data,
  negatives and initialisation stream) differ by d_s = a_s - b_s for each seed s; the
  interval of the mean of d is the t interval above over the shared seeds. The difference
  is *within noise* when that interval contains 0. Pairing removes what the seeds share,
  so it detects smaller differences than comparing two separate intervals.

Both assume the per-seed values are roughly normal and independent across seeds; with
2-5 seeds the t quantile is large (12.7 at n = 2, 2.78 at n = 5), which is the honest
price of few seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

__all__ = ["Interval", "PairedDifference", "mean_interval", "paired_difference", "t_quantile"]


def t_quantile(level: float, df: int) -> float:
    """The two-sided Student-t quantile: t((1 + level) / 2, df)."""
    from scipy import stats

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return float(stats.t.ppf((1.0 + level) / 2.0, df))


@dataclass(frozen=True)
class Interval:
    """``mean`` of ``n`` values and its ``level`` t interval [``low``, ``high``] (None
    when n < 2); ``sd`` is the sample standard deviation (None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    half_width: float | None
    sd: float | None
    n: int
    level: float

    def as_dict(self) -> dict:
        return asdict(self)

    def format(self, digits: int = 4) -> str:
        """``0.1234 ± 0.0056`` (or ``0.1234 (1 value: no interval)``)."""
        if self.half_width is None:
            return f"{self.mean:.{digits}f} ({self.n} value: no interval)"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def _values(values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError("need at least one value")
    return out


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of ``values`` and its Student-t interval at ``level`` (module docstring).
    Constant values give a zero-width interval; a single value gives none."""
    xs = _values(values)
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        t_quantile(level, 1)  # still reject a bad level
        return Interval(mean, None, None, None, None, n, level)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(level, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, half, sd, n, level)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of a - b over the paired ``seeds`` and its t interval; ``within_noise``: the
    interval contains 0 (None with fewer than two pairs: no interval, no verdict)."""

    difference: Interval
    seeds: tuple
    within_noise: bool | None

    def as_dict(self) -> dict:
        return {
            "difference": self.difference.as_dict(),
            "seeds": list(self.seeds),
            "within_noise": self.within_noise,
        }


def paired_difference(
    a_by_seed: Mapping | Sequence[float],
    b_by_seed: Mapping | Sequence[float],
    level: float = 0.95,
) -> PairedDifference:
    """a - b paired by seed. Mappings ``{seed: value}`` are paired on the seeds both hold
    (at least one); sequences are paired by position (equal lengths, seeds 0..n-1)."""
    if isinstance(a_by_seed, Mapping) and isinstance(b_by_seed, Mapping):
        seeds = tuple(s for s in a_by_seed if s in b_by_seed)
        if not seeds:
            raise ValueError(f"no seed in common: {sorted(a_by_seed)} against {sorted(b_by_seed)}")
        diffs = [float(a_by_seed[s]) - float(b_by_seed[s]) for s in seeds]
    elif isinstance(a_by_seed, Mapping) or isinstance(b_by_seed, Mapping):
        raise TypeError("give both as {seed: value} mappings or both as sequences")
    else:
        if len(a_by_seed) != len(b_by_seed):
            raise ValueError(f"unpaired: {len(a_by_seed)} values against {len(b_by_seed)}")
        seeds = tuple(range(len(a_by_seed)))
        diffs = [float(a) - float(b) for a, b in zip(a_by_seed, b_by_seed, strict=True)]
    diff = mean_interval(diffs, level)
    within = None if diff.low is None else bool(diff.low <= 0.0 <= diff.high)
    return PairedDifference(diff, seeds, within)
