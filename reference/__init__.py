"""Oracles: slow, obviously-correct reference implementations.

Nothing here imports from ``impls`` or ``harness``. Everything works in float64.
"""

from reference.attention import exact_attention

__all__ = ["exact_attention"]
