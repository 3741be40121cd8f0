"""Registry methods that return NaN, for the divergence tests (``nan_methods:NAN`` etc.).

* ``NAN``: every output entry is NaN, in training and evaluation.
* ``NAN_LATER``: exact attention for the first ``after`` calls in training mode, NaN from
  then on (also in evaluation once it has turned): a run that trains well for a while and
  then diverges.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from impls.registry import MethodSpec
from reference.attention import exact_attention


class NaNAttention(nn.Module):
    def __init__(self, dim: int, heads: int | None = None, after: int = 0):
        super().__init__()
        self.after = after
        self.calls = 0

    def forward(self, q: Tensor, k: Tensor, v: Tensor, *, causal=False, key_padding_mask=None):
        if self.training:
            self.calls += 1
        if self.after == 0 or self.calls > self.after:
            return v * math.nan  # stays in the autograd graph
        return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


def _factory(dim: int, heads: int | None = None, **hp) -> NaNAttention:
    return NaNAttention(dim, heads, **hp)


NAN = MethodSpec(name="nan_always", factory=_factory, exact=False, summary="returns NaN")
NAN_LATER = MethodSpec(
    name="nan_later",
    factory=_factory,
    exact=False,
    summary="exact, then NaN after `after` training calls",
    hyperparameters={"after": 0},
)
