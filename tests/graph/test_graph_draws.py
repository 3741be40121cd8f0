"""Drawing primitives: capped inclusion probabilities and systematic PPS sampling."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from impls.sampling.draws import (
    capped_inclusion_probabilities,
    draw_systematic,
    draw_with_replacement,
)

scores = st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=12)


@given(score=scores, n=st.integers(0, 15))
def test_capped_probabilities_sum_to_budget_and_follow_q(score, n):
    q = torch.tensor(score, dtype=torch.float64)
    pi = capped_inclusion_probabilities(q, n)
    positive = int((q > 0).sum())
    assert bool((pi >= 0).all()) and bool((pi <= 1 + 1e-12).all())
    assert abs(float(pi.sum()) - min(n, positive)) < 1e-9
    assert bool((pi[q == 0] == 0).all())
    assert not bool(torch.isnan(pi).any())
    # among candidates not taken with certainty, pi is proportional to q (checked where
    # q is a normal float: pi of a subnormal q may underflow to 0)
    free = (pi < 1 - 1e-12) & (q >= 1e-300)
    if int(free.sum()) >= 2:
        ratio = pi[free] / q[free]
        assert float(ratio.max() - ratio.min()) <= 1e-9 * float(ratio.max())
    # capped candidates have the largest q
    if bool(free.any()) and bool((pi >= 1 - 1e-12).any()):
        assert float(q[pi >= 1 - 1e-12].min()) >= float(q[free].max()) - 1e-12


@given(score=scores, n=st.integers(1, 15), seed=st.integers(0, 2**16))
def test_systematic_sample_has_the_planned_size(score, n, seed):
    q = torch.tensor(score, dtype=torch.float64)
    pi = capped_inclusion_probabilities(q, n)
    kept = draw_systematic(pi, torch.Generator().manual_seed(seed))
    assert int(kept.sum()) == round(float(pi.sum()))
    assert not bool(kept[pi == 0].any()) and bool(kept[pi >= 1].all())


def test_systematic_inclusion_frequencies_match_pi():
    """Over 20000 fixed seeds each frequency is within 5 standard errors of pi (per
    unit false-alarm probability < 1e-6 under the normal approximation)."""
    q = torch.tensor([5.0, 1.0, 1.0, 3.0, 0.5, 8.0, 2.0], dtype=torch.float64)
    pi = capped_inclusion_probabilities(q, 3)
    runs = 20000
    hits = torch.zeros_like(pi)
    for seed in range(runs):
        hits += draw_systematic(pi, torch.Generator().manual_seed(seed)).double()
    freq = hits / runs
    se = torch.sqrt(pi * (1 - pi) / runs).clamp(min=1e-12)
    assert bool(((freq - pi).abs() <= 5 * se + 1e-12).all())


def test_draws_with_replacement_count_to_n():
    q = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    c = draw_with_replacement(q, 40, torch.Generator().manual_seed(0))
    assert float(c.sum()) == 40 and c.dtype == torch.float64
    assert float(draw_with_replacement(q, 0, None).sum()) == 0
