"""The exact-attention oracle against an independent evaluation (torch's SDPA math path in
float64 and a per-row loop), plus its edge cases and bad-input errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reference.attention import exact_attention


def per_row_loop(q, k, v, causal, mask, bias, scale):
    """One query row at a time, keys kept in a Python list: slow and plain."""
    n, h, lq, _ = q.shape
    out = torch.zeros(n, h, lq, v.shape[-1], dtype=q.dtype)
    for a in range(n):
        for b in range(h):
            for i in range(lq):
                visible = [
                    j
                    for j in range(k.shape[2])
                    if not (causal and j > i) and not (mask is not None and mask[a, j])
                ]
                if not visible:
                    continue
                s = torch.stack([q[a, b, i] @ k[a, b, j] * scale + bias[i, j] for j in visible])
                w = torch.exp(s - s.max())
                w = w / w.sum()
                out[a, b, i] = sum(w[t] * v[a, b, j] for t, j in enumerate(visible))
    return out


@st.composite
def attention_inputs(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    n, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    lq = draw(st.integers(1, 7))
    causal = draw(st.booleans())
    lk = lq if causal else draw(st.integers(1, 7))
    d, dv = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(seed)
    f = torch.float64
    q = torch.randn(n, h, lq, d, generator=g, dtype=f) * 3
    k = torch.randn(n, h, lk, d, generator=g, dtype=f)
    v = torch.randn(n, h, lk, dv, generator=g, dtype=f)
    mask = torch.rand(n, lk, generator=g) < 0.3 if draw(st.booleans()) else None
    bias = torch.randn(lq, lk, generator=g, dtype=f)
    scale = draw(st.sampled_from([None, 0.3]))
    return q, k, v, causal, mask, bias, scale


@given(inputs=attention_inputs())
def test_oracle_matches_a_per_row_loop(inputs):
    q, k, v, causal, mask, bias, scale = inputs
    out = exact_attention(q, k, v, causal=causal, key_padding_mask=mask, bias=bias, scale=scale)
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    expected = per_row_loop(q, k, v, causal, mask, bias, s)
    assert out.dtype == torch.float64
    assert torch.allclose(out, expected, atol=1e-12, rtol=1e-10)


@given(inputs=attention_inputs())
def test_oracle_matches_torch_sdpa_in_float64(inputs):
    q, k, v, causal, mask, bias, scale = inputs
    if mask is not None:
        mask[:, 0] = False  # SDPA returns NaN for fully masked rows; ours returns zeros
    attn_mask = bias.clone()
    if causal:
        attn_mask = attn_mask.masked_fill(
            torch.ones_like(bias, dtype=torch.bool).triu(1), -math.inf
        )
    if mask is not None:
        attn_mask = (
            attn_mask
            + torch.zeros(mask.shape, dtype=q.dtype).masked_fill(mask, -math.inf)[:, None, None, :]
        )
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, scale=scale
    )
    out = exact_attention(q, k, v, causal=causal, key_padding_mask=mask, bias=bias, scale=scale)
    assert torch.allclose(out, expected, atol=1e-12, rtol=1e-10)


def test_rows_without_visible_keys_are_zero_not_nan():
    q = torch.randn(1, 2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False]])
    out = exact_attention(q, q, q, causal=True, key_padding_mask=mask)
    assert torch.isfinite(out).all()
    assert (out[0, :, :2] == 0).all() and (out[0, :, 2:].abs().sum(-1) > 0).all()
    bias = torch.full((4, 4), -math.inf, dtype=torch.float64)
    assert (exact_attention(q, q, q, bias=bias) == 0).all()


def test_large_scores_are_stable():
    q = torch.randn(1, 1, 16, 8, dtype=torch.float32) * 1e3
    out = exact_attention(q, q, q, causal=True)
    assert torch.isfinite(out).all()
    expected = exact_attention(q.double(), q.double(), q.double(), causal=True)
    assert torch.allclose(out.double(), expected, atol=1e-3, rtol=1e-3)


def test_output_keeps_the_input_dtype():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        q = torch.randn(1, 1, 3, 2).to(dtype)
        assert exact_attention(q, q, q).dtype == dtype


def ok():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(2, 2, 5, 3, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize(
    "mutate, kwargs, error, words",
    [
        (lambda q, k, v: (q[0], k, v), {}, ValueError, "q must have rank 4"),
        (lambda q, k, v: (q, k.float(), v), {}, TypeError, "share one dtype"),
        (lambda q, k, v: (q, k, v.long()), {}, TypeError, "v must be a floating"),
        (lambda q, k, v: (q, k[..., :2], v), {}, ValueError, "share the head dim"),
        (lambda q, k, v: (q, k, v[:, :, :4]), {}, ValueError, "share the key length"),
        (lambda q, k, v: (q, k[:, :1], v[:, :1]), {}, ValueError, "agree in (batch, heads)"),
        (lambda q, k, v: (q[:, :, :3], k, v), {"causal": True}, ValueError, "needs Lq == Lk"),
        (lambda q, k, v: (q * math.nan, k, v), {}, ValueError, "q contains NaN"),
        (lambda q, k, v: (q[:0], k[:0], v[:0]), {}, ValueError, "empty batch"),
        (
            lambda q, k, v: (q, k, v),
            {"key_padding_mask": torch.zeros(2, 4, dtype=torch.bool)},
            ValueError,
            "key_padding_mask must have shape",
        ),
        (
            lambda q, k, v: (q, k, v),
            {"key_padding_mask": torch.zeros(2, 5)},
            TypeError,
            "key_padding_mask must be a bool",
        ),
        (lambda q, k, v: (q, k, v), {"bias": torch.zeros(3, 5)}, ValueError, "does not broadcast"),
        (
            lambda q, k, v: (q, k, v),
            {"bias": torch.full((5, 5), math.nan)},
            ValueError,
            "bias contains NaN",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(mutate, kwargs, error, words):
    q, k, v = mutate(*ok())
    with pytest.raises(error) as info:
        exact_attention(q, k, v, **kwargs)
    assert words in str(info.value)
