"""The registry entry of every selected method states what the suite needs (the required
fields of ``harness.conformance.requirements``); a failure names the missing field."""

from __future__ import annotations

from harness.conformance.checks import require
from harness.conformance.requirements import entry_problems
from harness.conformance.selection import per_method


@per_method(runs=False)
def test_entry_meets_the_requirements(spec):
    problems = entry_problems(spec)
    require(not problems, f"registry entry {spec.name!r} ({spec.source}): " + "; ".join(problems))
