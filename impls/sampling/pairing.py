"""Which sampler x estimator pairs can train together.

Every estimator's ``weights`` works with every sampler. The adaptive estimator's
variance penalty also divides by the draw probability q(u), which samplers without a
pooled proposal (``nodewise`` fan-out, ``exhaustive``) do not have.
"""

from __future__ import annotations

from impls.sampling import ESTIMATORS, SAMPLERS

__all__ = ["pairing_problem", "check_pairing"]


def pairing_problem(sampler: str, estimator: str) -> str | None:
    """None when ``sampler`` and ``estimator`` (registry names) train together, else why
    not, in one sentence."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {estimator!r}")
    if ESTIMATORS[estimator].needs_draw_probabilities and not (
        SAMPLERS[sampler].has_draw_probabilities
    ):
        with_q = ", ".join(n for n, cls in SAMPLERS.items() if cls.has_draw_probabilities)
        return (
            f"estimator {estimator!r} needs draw probabilities q(u), which sampler "
            f"{sampler!r} does not produce; pair it with a layer-wise sampler ({with_q})"
        )
    return None


def check_pairing(sampler: str, estimator: str) -> None:
    """Raise ValueError naming both when the pair cannot train together."""
    problem = pairing_problem(sampler, estimator)
    if problem is not None:
        raise ValueError(problem)
