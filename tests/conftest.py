"""Shared test configuration: hypothesis profiles and float64 helpers."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI runs derandomized so a submission cannot pass or fail by luck; locally hypothesis
# explores new examples each run. Deadlines are off: torch's first call in a process is slow.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
