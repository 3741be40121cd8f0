"""Tests of the suite itself: deliberately broken methods (``harness.conformance.broken``)
must fail the property checks, and a wrong gradient must fail the gradient check. Not
parametrized by method: ``python -m harness conformance`` leaves them out when it runs a
chosen method, ``pytest --pyargs harness.conformance`` runs them."""

from __future__ import annotations

import pytest
import torch

from harness.conformance.broken import IGNORES_PADDING, NAN_ON_EMPTY, PEEK_AHEAD
from harness.conformance.checks import check_causality, check_gradients, check_key_padding
from harness.conformance.requirements import entry_problems
from harness.conformance.workload import make, padding_mask, qkv
from reference.attention import exact_attention


def test_peek_ahead_is_caught_by_the_causality_check():
    attn = make(PEEK_AHEAD, 8, 2)
    q, k, v = qkv(2, 2, 16, 8, seed=0)
    with pytest.raises(AssertionError, match="causality: changing inputs after position"):
        check_causality(attn, q, k, v, positions=(0, 7), seed=0)


def test_ignoring_padding_is_caught():
    attn = make(IGNORES_PADDING, 8, 2)
    q, k, v = qkv(2, 2, 16, 8, seed=0)
    with pytest.raises(AssertionError, match="padded"):
        check_key_padding(attn, q, k, v, padding_mask(2, 16, seed=0), causal=False)


def test_nan_on_all_padded_rows_is_caught():
    attn = make(NAN_ON_EMPTY, 8, 2)
    q, k, v = qkv(2, 2, 16, 8, seed=0)
    with pytest.raises(AssertionError, match="NaN"):
        check_key_padding(attn, q, k, v, padding_mask(2, 16, seed=0), causal=True)


class _DoubleTheGradient(torch.autograd.Function):
    """Identity forward; backward doubles the incoming gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


def _exact(attn, q, k, v, *, causal, key_padding_mask):
    return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_wrong_gradient_is_caught_and_named(dtype):
    """Right outputs, dv doubled: the check fails on dv alone; dq and dk pass."""

    def attn(q, k, v, *, causal=False, key_padding_mask=None):
        v = _DoubleTheGradient.apply(v)
        return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)

    q, k, v = qkv(2, 2, 11, 4, 3, seed=1, dtype=dtype)
    records = check_gradients(attn, _exact, q, k, v, causal=True, inputs=("q", "k"))
    assert [r["input"] for r in records] == ["q", "k"]
    with pytest.raises(AssertionError, match=r"d/dv: relative error") as caught:
        check_gradients(attn, _exact, q, k, v, causal=True)
    assert "d/dq" not in str(caught.value) and "d/dk" not in str(caught.value)


def test_a_missing_gradient_is_caught():
    def attn(q, k, v, *, causal=False, key_padding_mask=None):
        return exact_attention(q, k.detach(), v, causal=causal, key_padding_mask=key_padding_mask)

    q, k, v = qkv(1, 2, 7, 4, seed=2)
    with pytest.raises(AssertionError, match="d/dk .the method gives no gradient"):
        check_gradients(attn, _exact, q, k, v, causal=False)


def test_incomplete_entries_are_named_by_field():
    import dataclasses

    bad = dataclasses.replace(
        PEEK_AHEAD,
        summary=" ",
        oracle_reference=_exact,
        budget="window",
        grad_inputs=("q", "x"),
        time_exponent=0,
    )
    problems = entry_problems(bad)
    fields = [p.split(":")[0] for p in problems]
    assert fields == ["summary", "oracle_identity", "budget", "budget_values", "grad_inputs",
                      "time_exponent"], problems  # fmt: skip
    assert entry_problems(PEEK_AHEAD) == []
