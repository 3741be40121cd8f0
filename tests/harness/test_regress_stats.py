"""The gate's decision rule on simulated timings with known truth (seeded, deterministic).

Noise model: each round shares a machine-load factor (log-normal, sd 0.15) that hits base
and head alike, plus independent per-sample noise (log-normal, sd 0.05), plus 5% of
samples inflated by up to 2x (outliers). The rule must flag a 1.3x slowdown nearly always
and an unchanged method at most at its stated rate alpha."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from harness.regress.verdict import judge, order_statistic_rank

ROUNDS = 21
ALPHA = 0.01


def simulate(slowdown: float, rng: random.Random, rounds: int = ROUNDS):
    base, head = [], []
    for _ in range(rounds):
        load = math.exp(rng.gauss(0, 0.15))

        def sample(factor, load=load):
            t = 0.010 * factor * load * math.exp(rng.gauss(0, 0.05))
            return t * (1 + rng.random()) if rng.random() < 0.05 else t

        base.append(sample(1.0))
        head.append(sample(slowdown))
    return base, head


def test_order_statistic_rank_matches_the_binomial_tail():
    assert order_statistic_rank(15, 0.01) == 3  # P(Bin(15, .5) <= 2) = 0.0037 <= 0.01 < 0.0176
    assert order_statistic_rank(21, 0.01) == 5  # P(Bin(21, .5) <= 4) = 0.0036 <= 0.01 < 0.0133
    assert order_statistic_rank(6, 0.01) is None  # 2^-6 = 0.0156 > 0.01
    assert order_statistic_rank(7, 0.01) == 1


def _exact_rank(n: int, alpha: float) -> int | None:
    """The definition, in exact rational arithmetic."""
    best, total = None, 0
    for k in range(1, n + 1):
        total += math.comb(n, k - 1)
        if Fraction(total, 2**n) > Fraction(alpha):
            break
        best = k
    return best


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.1, 0.25, 2**-7, 2**-10, 3 * 2**-12])
def test_order_statistic_rank_equals_the_exact_binomial_definition(alpha):
    """scipy's binomial cdf gives the rank of the exact computation for every n, dyadic
    alphas (where the cdf can equal alpha exactly) included."""
    assert [order_statistic_rank(n, alpha) for n in range(1, 121)] == [
        _exact_rank(n, alpha) for n in range(1, 121)
    ]


def test_injected_slowdown_is_flagged_and_no_change_is_not():
    rng = random.Random(20261127)
    trials = 400
    hits = sum(judge(*simulate(1.3, rng)).regression for _ in range(trials))
    false_alarms = sum(judge(*simulate(1.0, rng)).regression for _ in range(trials))
    improvements = sum(judge(*simulate(1 / 1.3, rng)).improvement for _ in range(trials))
    assert hits >= 0.98 * trials, hits
    assert improvements >= 0.98 * trials, improvements
    # alpha bounds the false-alarm probability; allow binomial slack (mean 4 at most here)
    assert false_alarms <= 12, false_alarms


def test_a_significant_change_below_the_noise_floor_is_not_a_regression():
    base = [0.010 * (1 + 0.01 * (i % 3)) for i in range(ROUNDS)]
    head = [t * 1.03 for t in base]  # certainly slower, but only by 3% < 5% floor
    verdict = judge(base, head)
    assert verdict.low > 1.0 and not verdict.regression


def test_judge_rejects_bad_input():
    with pytest.raises(ValueError, match="paired"):
        judge([1.0] * 10, [1.0] * 9)
    with pytest.raises(ValueError, match="cannot reach alpha"):
        judge([1.0] * 5, [1.0] * 5)
    with pytest.raises(ValueError, match="positive and finite"):
        judge([1.0] * 14 + [math.nan], [1.0] * 15)


def test_detectable_slowdown_is_the_threshold_of_a_pure_shift():
    rng = random.Random(7)
    base, head = simulate(1.0, rng)
    verdict = judge(base, head)
    s = verdict.detectable
    assert s > 1 + verdict.noise_floor  # never below the floor
    # the same noise centred on no change (A/A), then shifted by a slowdown just above /
    # below the threshold: the verdict flips there
    centred = [t / verdict.ratio for t in head]
    assert not judge(base, centred).regression
    assert judge(base, [t * s * 1.001 for t in centred]).regression
    assert not judge(base, [t * s * 0.999 for t in centred]).regression
    assert "detects >= x" in verdict.describe()
