"""The regression gate's decision rule: paired, distribution-free, with a noise floor.

Base and head are timed in interleaved rounds on one machine, so round i gives a pair
(b_i, h_i) that shares whatever the machine was doing then. With r_i = log(h_i / b_i):

* the change is estimated by exp(median r);
* r_(k), the k-th smallest r, is a one-sided (1 - alpha) lower confidence bound for the
  median of r when k is the largest integer with P(Binomial(n, 1/2) <= k - 1) <= alpha
  (order-statistic bound: no assumption on the noise distribution beyond independent
  rounds); symmetrically r_(n + 1 - k) is an upper bound;
* the noise floor is the benchmark's own spread on this machine: the robust standard
  deviation (1.4826 x MAD) of the paired log-ratios r_i around their median — what an A/A
  comparison of the benchmark would show, since load shared by a round cancels in r_i —
  and never below ``min_floor``.

A regression is declared only when the lower bound exceeds log(1 + floor): the slowdown is
both significant at level alpha and larger than the noise floor. An improvement is the
mirror image. With symmetric noise the false-alarm probability is at most alpha.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = ["Verdict", "judge", "order_statistic_rank"]


def order_statistic_rank(n: int, alpha: float) -> int | None:
    """Largest k (1-based) with P(Binomial(n, 1/2) <= k - 1) <= alpha, or None when even
    k = 1 is not enough (too few rounds for this alpha)."""
    if n < 1:
        return None
    # the cdf at 0 .. n - 1 (scipy.stats.binom); it increases, so k counts the values
    # within alpha (a relative 1e-12 absorbs rounding at dyadic alphas such as 2^-7)
    cdf = stats.binom.cdf(np.arange(n), n, 0.5)
    k = int(np.count_nonzero(cdf <= alpha * (1 + 1e-12)))
    return k or None


@dataclass
class Verdict:
    ratio: float  # head / base, exp(median log-ratio)
    low: float  # lower confidence bound of the ratio
    high: float  # upper confidence bound of the ratio
    noise_floor: float  # relative, e.g. 0.05 = 5%
    rounds: int
    regression: bool
    improvement: bool
    # the smallest slowdown (head / base) these rounds would have flagged: a pure shift s
    # of every paired log-ratio moves the lower bound to (r_(k) - median r) + log s, which
    # must exceed log(1 + floor): s > (1 + floor) * exp(median r - r_(k))
    detectable: float = math.nan

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        word = "REGRESSION" if self.regression else "improved" if self.improvement else "same"
        return (
            f"{word}: x{self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}], "
            f"noise floor {self.noise_floor:.1%}, {self.rounds} rounds, "
            f"detects >= x{self.detectable:.2f}"
        )


def judge(
    base: list[float], head: list[float], *, alpha: float = 0.01, min_floor: float = 0.05
) -> Verdict:
    """Compare paired timings (same length, round i of each measured back to back)."""
    if len(base) != len(head):
        raise ValueError(f"base and head must be paired: {len(base)} vs {len(head)} samples")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if min_floor < 0:
        raise ValueError(f"min_floor must be >= 0, got {min_floor}")
    if any(t <= 0 or not math.isfinite(t) for t in (*base, *head)):
        raise ValueError("timings must be positive and finite")
    n = len(base)
    k = order_statistic_rank(n, alpha)
    if k is None:
        raise ValueError(
            f"{n} rounds cannot reach alpha={alpha}; need at least "
            f"{math.ceil(math.log2(1 / alpha))} rounds"
        )
    ratios = sorted(math.log(h / b) for b, h in zip(base, head, strict=True))
    centre = statistics.median(ratios)
    mad = statistics.median(abs(r - centre) for r in ratios)
    floor = max(min_floor, math.exp(1.4826 * mad) - 1)
    low, high = ratios[k - 1], ratios[n - k]
    return Verdict(
        ratio=math.exp(statistics.median(ratios)),
        low=math.exp(low),
        high=math.exp(high),
        noise_floor=floor,
        rounds=n,
        regression=low > math.log1p(floor),
        improvement=high < -math.log1p(floor),
        detectable=(1 + floor) * math.exp(centre - low),
    )
