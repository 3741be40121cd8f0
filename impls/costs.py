"""Analytic cost of one attention call: what each method's registry entry states about
itself (``MethodSpec.cost``), and what the workloads ask it for.

For a call on q, k, v of shape (batch, heads, L, d), in the dtype of ``itemsize`` bytes:

* ``flops``: floating-point operations of the useful work (a multiply-add counts 2; a
  causal score matrix counts its lower triangle only). A backward pass is counted as
  twice the forward (the usual rule: two matrix products per forward product), so
  forward+backward = 3 x forward.
* ``traffic_bytes``: compulsory memory traffic, the bytes that must cross the memory bus
  at least once: q, k, v read and the output written (forward+backward also reads the
  output gradient and writes three input gradients), plus any state a method must
  stream (a materialised score matrix is written and read back).
* ``working_bytes``: memory a correct implementation allocates during one call, inputs
  excluded: generous upper bounds, not fits, so that a stray (L, L) tensor in a
  linear-memory method overshoots by orders of magnitude at long L.

FLOPs over seconds and traffic over seconds, against the machine's measured matmul and
copy peaks, place a row on the roofline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cost", "CostQuery", "SLACK_BYTES", "compulsory_traffic", "fallback_cost"]

SLACK_BYTES = 2**20  # per-call fixed overhead (per-thread buffers, small temporaries)


@dataclass(frozen=True)
class CostQuery:
    """The call whose cost is asked: shapes, mode, pass, dtype size, hyperparameters."""

    length: int
    dim: int
    heads: int = 1
    batch: int = 1
    causal: bool = True
    backward: bool = False
    itemsize: int = 4
    hp: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.batch * self.heads

    @property
    def passes(self) -> int:
        """FLOP multiplier of the pass: 1 forward, 3 forward+backward."""
        return 3 if self.backward else 1


@dataclass(frozen=True)
class Cost:
    """Analytic FLOPs, compulsory traffic and working memory of one call (see module)."""

    flops: float
    traffic_bytes: float
    working_bytes: int

    def as_dict(self) -> dict:
        return {
            "analytic_flops": self.flops,
            "analytic_traffic_bytes": self.traffic_bytes,
            "analytic_bytes": self.working_bytes,
        }


def compulsory_traffic(query: CostQuery, extra_per_token: float = 0.0) -> float:
    """q, k, v read and the output written (and, with backward, the output gradient read
    and three input gradients written), plus ``extra_per_token`` elements per token."""
    tensors = 8 if query.backward else 4
    per_token = tensors * query.dim + extra_per_token
    return float(query.itemsize * query.rows * query.length * per_token)


def fallback_cost(query: CostQuery, memory_exponent: float) -> Cost:
    """For an entry that states no cost: exact-attention FLOPs, compulsory traffic, and
    working memory of 12 (L, d) buffers, or a handful of (L, L) matrices when the entry's
    memory exponent says quadratic."""
    n, d = query.length, query.dim
    pairs = n * (n + 1) / 2 if query.causal else n * n
    flops = query.rows * query.passes * 4.0 * pairs * d
    if memory_exponent > 1.5:
        squares = (10 if query.backward else 6) * n ** max(2.0, memory_exponent)
        working = int(query.itemsize * query.rows * (squares + 4 * n * d))
    else:
        grad = 3 if query.backward else 1
        working = int(query.itemsize * query.rows * grad * 12 * d * n + SLACK_BYTES)
    return Cost(flops, compulsory_traffic(query), working)
