"""Deliberately broken methods: the conformance suite must catch each of them.

They are registry entries like any other, so they can be fed to the whole suite with
``python -m harness conformance --method harness.conformance.broken:PEEK_AHEAD`` (which
must fail, naming causality). Each is exact softmax attention (``reference.exact_attention``)
with one defect; shapes as in the q/k/v contract.
"""

from __future__ import annotations

import torch

from impls.registry import MethodSpec
from reference.attention import exact_attention


def peek_ahead_attention(q, k, v, *, causal=False, key_padding_mask=None):
    """Claims to be causal but lets position i see key i + 1 (an off-by-one mask)."""
    if not causal:
        return exact_attention(q, k, v, key_padding_mask=key_padding_mask)
    length = q.shape[2]
    i = torch.arange(length)
    bias = torch.zeros(length, length, dtype=q.dtype)
    bias = bias.masked_fill(i[None, :] > i[:, None] + 1, float("-inf"))
    return exact_attention(q, k, v, key_padding_mask=key_padding_mask, bias=bias)


def ignores_padding_attention(q, k, v, *, causal=False, key_padding_mask=None):
    """Forgets the key padding mask."""
    return exact_attention(q, k, v, causal=causal)


def nan_on_empty_rows_attention(q, k, v, *, causal=False, key_padding_mask=None):
    """Plain masked softmax: a row whose keys are all padded gives NaN."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        future = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _spec(name, fn, summary):
    return MethodSpec(
        name=name,
        factory=lambda dim=None, heads=None: fn,
        exact=True,
        summary=summary,
        permutation_equivariant=True,
    )


PEEK_AHEAD = _spec("broken_peek_ahead", peek_ahead_attention, "causal mask off by one")
IGNORES_PADDING = _spec("broken_ignores_padding", ignores_padding_attention, "drops the mask")
NAN_ON_EMPTY = _spec("broken_nan_on_empty", nan_on_empty_rows_attention, "NaN on empty rows")


def all_broken():
    return [PEEK_AHEAD, IGNORES_PADDING, NAN_ON_EMPTY]
