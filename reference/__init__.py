"""Oracles: slow, obviously-correct reference implementations.

Nothing here imports from ``impls`` or ``harness``. Everything works in float64.
"""

from reference.attention import exact_attention
from reference.lisa import lisa_reference, lisa_via_exact_attention

__all__ = ["exact_attention", "lisa_reference", "lisa_via_exact_attention"]
