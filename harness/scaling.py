"""Scaling analysis: power-law exponents with an interval, and crossover lengths."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fit_exponent", "crossover_length"]

# Two-sided 95% Student-t quantiles by degrees of freedom (1..10); beyond, the normal 1.96.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def fit_exponent(
    sizes: Sequence[float], values: Sequence[float]
) -> tuple[float, float, float] | None:
    """Least-squares slope of log(value) against log(size): value ~ c * size^slope.

    Returns (slope, low, high), a 95% interval from the slope's standard error; the
    interval is (slope, slope) with two points and None with fewer than two."""
    pairs = [
        (math.log(s), math.log(v))
        for s, v in zip(sizes, values, strict=True)
        if s > 0 and v is not None and v > 0
    ]
    n = len(pairs)
    if n < 2:
        return None
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in pairs) / sxx
    if n == 2:
        return slope, slope, slope
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in pairs)
    stderr = math.sqrt(resid / (n - 2) / sxx)
    t = _T95[n - 3] if n - 2 <= len(_T95) else 1.96
    return slope, slope - t * stderr, slope + t * stderr


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
