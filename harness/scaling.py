"""Scaling analysis: power-law exponents with an interval, and crossover lengths.

A fitted exponent says something only over enough sizes: :func:`exponent_problem` (and
:func:`exponent_is_reportable`) apply the reporting rule — at least ``MIN_POINTS``
measured sizes spanning at least ``MIN_SPAN`` times — so that tables and leaderboards show
"not enough points" instead of a slope through two or three nearby points."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats

__all__ = [
    "MIN_POINTS",
    "MIN_SPAN",
    "crossover_length",
    "exponent_is_reportable",
    "exponent_problem",
    "fit_exponent",
    "format_exponent",
]

MIN_POINTS = 4  # measured sizes a reported exponent needs ...
MIN_SPAN = 16.0  # ... and the ratio largest / smallest they must span


def _usable(
    sizes: Sequence[float], values: Sequence[float | None] | None
) -> list[tuple[float, float]]:
    """(size, value) pairs a log-log fit can use: positive size and positive value."""
    if values is None:
        values = [1.0] * len(sizes)
    return [
        (float(s), float(v))
        for s, v in zip(sizes, values, strict=True)
        if s is not None and s > 0 and v is not None and v > 0 and math.isfinite(v)
    ]


def fit_exponent(
    sizes: Sequence[float], values: Sequence[float | None]
) -> tuple[float, float | None, float | None] | None:
    """Least-squares slope of log(value) against log(size): value ~ c * size^slope.

    Returns (slope, low, high) with a two-sided 95% Student-t interval from the slope's
    standard error (``scipy.stats.linregress``, n - 2 degrees of freedom). With exactly
    two usable points the line goes through both and there is no interval: (slope, None,
    None). None with fewer than two usable points or a single distinct size. Points with
    a missing or non-positive value are left out."""
    pairs = _usable(sizes, values)
    if len({s for s, _ in pairs}) < 2:
        return None
    xs = [math.log(s) for s, _ in pairs]
    ys = [math.log(v) for _, v in pairs]
    fit = stats.linregress(xs, ys)
    slope = float(fit.slope)
    n = len(pairs)
    if n < 3:
        return slope, None, None
    half = float(stats.t.ppf(0.975, n - 2)) * float(fit.stderr)
    return slope, slope - half, slope + half


def exponent_problem(
    sizes: Sequence[float],
    values: Sequence[float | None] | None = None,
    *,
    min_points: int = MIN_POINTS,
    min_span: float = MIN_SPAN,
) -> str | None:
    """Why an exponent fitted over ``sizes`` (only those with a usable value, when
    ``values`` is given) should not be shown, or None when it may: it needs at least
    ``min_points`` distinct sizes spanning at least ``min_span`` times."""
    distinct = sorted({s for s, _ in _usable(sizes, values)})
    span = distinct[-1] / distinct[0] if distinct else 1.0
    if len(distinct) >= min_points and span >= min_span * (1 - 1e-12):
        return None
    return (
        f"not enough points: {len(distinct)} sizes spanning {span:.3g}x "
        f"(needs >= {min_points} spanning >= {min_span:g}x)"
    )


def exponent_is_reportable(
    sizes: Sequence[float],
    values: Sequence[float | None] | None = None,
    *,
    min_points: int = MIN_POINTS,
    min_span: float = MIN_SPAN,
) -> bool:
    """True when an exponent fitted over ``sizes`` may be shown (see :func:`exponent_problem`)."""
    return exponent_problem(sizes, values, min_points=min_points, min_span=min_span) is None


def format_exponent(
    fit: Sequence[float | None] | None,
    *,
    sizes: Sequence[float] | None = None,
    values: Sequence[float | None] | None = None,
) -> str:
    """``"1.02 [0.95, 1.10]"`` (95% interval); ``"1.02 (2 points, no interval)"``; ``"-"``.

    With ``sizes`` (and the ``values`` the fit used) the reporting rule applies too: a fit
    over fewer than ``MIN_POINTS`` usable sizes or a span under ``MIN_SPAN`` is ``"-"``
    (:func:`exponent_problem` says why, for a tooltip or a footnote)."""
    if fit is None:
        return "-"
    if sizes is not None and not exponent_is_reportable(sizes, values):
        return "-"
    slope, low, high = fit
    if low is None or high is None:
        return f"{slope:.2f} (2 points, no interval)"
    return f"{slope:.2f} [{low:.2f}, {high:.2f}]"


def crossover_length(
    sizes: Sequence[float], fast: Sequence[float | None], base: Sequence[float | None]
) -> tuple[str, float | None]:
    """Where ``fast`` starts beating ``base`` (times measured at the same sizes).

    Returns ("at", L*) with L* interpolated log-linearly between the last size where fast
    was slower and the first where it was faster (and stays faster); ("below", smallest
    size) when it is faster everywhere; ("above", largest size) when never faster; ("n/a",
    None) without comparable points."""
    points = [
        (s, f, b)
        for s, f, b in zip(sizes, fast, base, strict=True)
        if f is not None and b is not None
    ]
    if not points:
        return "n/a", None
    wins = [f < b for _, f, b in points]
    if all(wins):
        return "below", points[0][0]
    if not wins[-1]:
        return "above", points[-1][0]
    last_loss = max(i for i, w in enumerate(wins) if not w)
    (s0, f0, b0), (s1, f1, b1) = points[last_loss], points[last_loss + 1]
    r0, r1 = math.log(f0 / b0), math.log(f1 / b1)  # > 0 then < 0
    x0, x1 = math.log(s0), math.log(s1)
    return "at", math.exp(x0 + (x1 - x0) * r0 / (r0 - r1))
