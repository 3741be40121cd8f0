"""The named L grids of the attention family, defined once (no torch import: command
line help and the memray command read them cheaply). ``harness.workloads.attention``
re-exports them; bench, asv, memray, the regression gate and the leaderboard draw from
here."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ERROR_LENGTHS", "FULL_LENGTHS", "GRIDS", "QUICK_LENGTHS", "Grid"]


@dataclass(frozen=True)
class Grid:
    """A named L grid. ``quadratic_max``: the longest L for rows whose time grows as L^2
    (exact attention); ``materialized_max``: the longest L for rows that build (L, L)
    matrices (memory exponent >= 2: the float64 oracle). None: no cap."""

    name: str
    lengths: tuple[int, ...]
    quadratic_max: int | None = None
    materialized_max: int | None = None
    purpose: str = ""

    def lengths_for(self, time_exponent: float | None, memory_exponent: float | None):
        """The lengths a row with these expected exponents runs on this grid."""
        cap = None
        if memory_exponent is not None and memory_exponent >= 2:
            cap = self.materialized_max
        if cap is None and time_exponent is not None and time_exponent >= 2:
            cap = self.quadratic_max
        return tuple(n for n in self.lengths if cap is None or n <= cap)


_DOUBLINGS = tuple(2**k for k in range(8, 18))  # 256 .. 131,072
GRIDS: dict[str, Grid] = {
    g.name: g
    for g in (
        Grid("quick", (256, 1_024, 4_096), purpose="`bench` default, asv, CI"),
        Grid("full", (256, 1_024, 4_096, 16_384, 65_536), purpose="`bench --full`"),
        Grid("memory", (1_024, 4_096, 16_384, 65_536), purpose="memray captures, regress"),
        Grid(
            "leaderboard-quick",
            tuple(n for n in _DOUBLINGS if n <= 16_384),
            materialized_max=4_096,
            purpose="`leaderboard --quick`: every row to 16,384, the oracle to 4,096",
        ),
        Grid(
            "leaderboard-full",
            _DOUBLINGS,
            quadratic_max=65_536,
            materialized_max=4_096,
            purpose="`leaderboard`: linear-time rows to 131,072, exact ones to 65,536",
        ),
    )
}
QUICK_LENGTHS = GRIDS["quick"].lengths
FULL_LENGTHS = GRIDS["full"].lengths
ERROR_LENGTHS = (256, 1_024)  # error against the float64 oracle: (L, L) matrices, short L
