"""Student-t intervals over seeds: hand-checked values, edge cases and coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.seqrec.statistics import mean_interval, paired_difference, t_quantile


def test_constant_values_give_a_zero_width_interval():
    iv = mean_interval([0.25, 0.25, 0.25, 0.25])
    assert iv.mean == 0.25 and iv.sd == 0.0 and iv.half_width == 0.0
    assert iv.low == iv.high == 0.25
    assert iv.format() == "0.2500 ± 0.0000"


def test_interval_by_hand():
    iv = mean_interval([1.0, 2.0, 3.0])  # mean 2, sample sd 1, t(0.975, 2) = 4.3027
    assert iv.mean == pytest.approx(2.0) and iv.sd == pytest.approx(1.0) and iv.n == 3
    assert iv.half_width == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert (iv.low, iv.high) == pytest.approx((2 - iv.half_width, 2 + iv.half_width))
    assert mean_interval([1.0, 2.0, 3.0], level=0.99).half_width > iv.half_width
    assert t_quantile(0.95, 1) == pytest.approx(12.706204736174705)


def test_one_value_has_no_interval_and_bad_input_is_refused():
    iv = mean_interval([0.4])
    assert iv.mean == 0.4 and iv.low is None and iv.high is None and iv.half_width is None
    assert "no interval" in iv.format()
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])
    with pytest.raises(ValueError, match="level"):
        mean_interval([1.0, 2.0], level=1.5)


def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials = 2000
    covered = 0
    for _ in range(trials):
        iv = mean_interval(rng.normal(0.3, 0.02, size=4))
        covered += iv.low <= 0.3 <= iv.high
    sd = math.sqrt(0.95 * 0.05 / trials)
    assert abs(covered / trials - 0.95) < 4 * sd


def test_paired_difference_detects_a_constant_shift():
    a = {0: 0.50, 1: 0.61, 2: 0.47, 3: 0.55}
    b = {seed: value - 0.01 for seed, value in a.items()}
    d = paired_difference(a, b)
    assert d.difference.mean == pytest.approx(0.01)
    assert d.difference.half_width == pytest.approx(0.0, abs=1e-12)
    assert d.within_noise is False and d.seeds == (0, 1, 2, 3)
    # the same shift read unpaired is lost in the seed-to-seed spread
    a_iv, b_iv = mean_interval(list(a.values())), mean_interval(list(b.values()))
    assert a_iv.low <= b_iv.high and b_iv.low <= a_iv.high


def test_paired_difference_within_noise_and_pairing_rules():
    d = paired_difference([0.51, 0.49, 0.505], [0.50, 0.50, 0.50])
    assert d.within_noise is True and d.difference.low < 0 < d.difference.high
    # mappings pair on the seeds both hold, in a's order
    d = paired_difference({0: 1.0, 1: 2.0, 5: 9.0}, {1: 1.5, 0: 0.5, 2: 7.0})
    assert d.seeds == (0, 1) and d.difference.mean == pytest.approx(0.5)
    assert d.as_dict()["within_noise"] is False
    one = paired_difference({3: 0.6}, {3: 0.5})
    assert one.within_noise is None and one.difference.half_width is None
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({0: 1.0}, {1: 1.0})
    with pytest.raises(ValueError, match="unpaired"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(TypeError):
        paired_difference({0: 1.0}, [1.0])
