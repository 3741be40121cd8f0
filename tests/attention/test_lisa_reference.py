"""``reference.lisa``: the oracle of LISA, its two forms against each other and against a
hand computation, and the chunked operator (``impls.attention.lisa``) against it, forward
and gradients, for hard and soft codes, causal and bidirectional, with key padding."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from lisa_cases import GAMMAS, lisa_cases

from impls.attention.lisa import lisa_attention
from reference.lisa import decayed_histogram, lisa_reference, lisa_via_exact_attention

F64 = torch.float64
TOL = 1e-10


def _close(got, want, what, tol=TOL):
    assert got.shape == want.shape, what
    assert bool(torch.isfinite(got).all()), f"{what}: not finite"
    err = float((got - want).abs().max()) if got.numel() else 0.0
    assert err <= tol * max(1.0, float(want.abs().max()) if want.numel() else 0.0), (what, err)


def _outputs_and_grads(fn, leaves, cotangent):
    """fn(*leaves) and the gradient of <fn(*leaves), cotangent> w.r.t. every float leaf."""
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in leaves]
    out = fn(*leaves)
    wanted = [t for t in leaves if t.requires_grad]
    return out.detach(), torch.autograd.grad((out * cotangent).sum(), wanted)


# --------------------------------------------------------------------------------------
# The definition by hand: one codebook, W = 2, L = 2, d = dv = 1, scale 1, gamma 1/2,
# Kc = [1, 0], Vc = [10, 20], q = [0, log 3], hard codes [0, 1].


def _tiny():
    q = torch.tensor([0.0, math.log(3.0)], dtype=F64).reshape(1, 1, 2, 1)
    kc = torch.tensor([[1.0], [0.0]], dtype=F64)[None]
    vc = torch.tensor([[10.0], [20.0]], dtype=F64)[None]
    codes = torch.tensor([[[0, 1]]])
    return q, codes, kc, vc


@pytest.mark.parametrize("form", [lisa_reference, lisa_via_exact_attention])
def test_tiny_example_computed_by_hand(form):
    q, codes, kc, vc = _tiny()
    kw = dict(gamma=0.5, scale=1.0)
    # bidirectional: H[0] = [1, 1/2], s = [0, 0] -> a = [2/3, 1/3] -> 40/3;
    #                H[1] = [1/2, 1], e^s = [3, 1] -> a = [3/5, 2/5] -> 14
    out = form(q, codes, kc, vc, causal=False, **kw)
    _close(out, torch.tensor([40 / 3, 14.0], dtype=F64).reshape(1, 2, 1), "bidirectional")
    # causal: row 0 sees key 0 only -> 10; row 1 as above -> 14
    out = form(q, codes, kc, vc, causal=True, **kw)
    _close(out, torch.tensor([10.0, 14.0], dtype=F64).reshape(1, 2, 1), "causal")
    # key 0 padded, causal: row 0 sees nothing -> 0 (not NaN); row 1 sees key 1 -> 20
    mask = torch.tensor([[True, False]])
    out = form(q, codes, kc, vc, causal=True, key_padding_mask=mask, **kw)
    _close(out, torch.tensor([0.0, 20.0], dtype=F64).reshape(1, 2, 1), "padded")
    # soft codes p_0 = [1/4, 3/4], p_1 = [1, 0], causal, q = 0: row 0 -> 2.5 + 15 = 17.5
    soft = torch.tensor([[0.25, 0.75], [1.0, 0.0]], dtype=F64)[None, None]
    out = form(torch.zeros_like(q), soft, kc, vc, causal=True, **kw)
    # row 1: H = [1/8 + 1, 3/8] -> a = [3/4, 1/4] -> 12.5
    _close(out, torch.tensor([17.5, 12.5], dtype=F64).reshape(1, 2, 1), "soft")


def test_histogram_is_the_decayed_count_of_visible_unpadded_codes():
    codes = torch.tensor([[[2, 0, 2, 1]]])
    mask = torch.tensor([[False, False, True, False]])
    hist = decayed_histogram(codes, 3, gamma=0.5, causal=True, key_padding_mask=mask)
    # row l: sum over visible unpadded j of 0.5^(l - j) e_{code_j} (key 2 is padded)
    expected = torch.tensor(
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.5], [0.5, 0.0, 0.25], [0.25, 1.0, 0.125]], dtype=F64
    )
    assert torch.equal(hist[0, 0], expected)


# --------------------------------------------------------------------------------------
# The two forms of the reference agree


@given(
    case=lisa_cases(max_length=16),
    gamma=st.sampled_from(GAMMAS),
    causal=st.booleans(),
    soft=st.booleans(),
    masked=st.booleans(),
    scale=st.sampled_from([None, 0.3, 2.0]),
)
def test_definition_equals_exact_attention_over_virtual_tokens(
    case, gamma, causal, soft, masked, scale
):
    """Forward and gradients (query, both codebooks; soft codes, all positive here)."""
    codes = case.soft_codes if soft else case.hard_codes
    kw = dict(
        gamma=gamma, causal=causal, key_padding_mask=case.mask if masked else None, scale=scale
    )
    leaves = (case.query, codes, case.key_codewords, case.value_codewords)
    n, _, length, _ = case.query.shape
    cotangent = torch.randn(n, length, case.value_codewords.shape[-1], dtype=F64)
    out_a, grads_a = _outputs_and_grads(lambda *t: lisa_reference(*t, **kw), leaves, cotangent)
    out_b, grads_b = _outputs_and_grads(
        lambda *t: lisa_via_exact_attention(*t, **kw), leaves, cotangent
    )
    _close(out_a, out_b, "output")
    names = (
        ("query", "codes", "key_codewords", "value_codewords") if soft else ("query", "kc", "vc")
    )
    for name, got, want in zip(names, grads_a, grads_b, strict=True):
        _close(got, want, f"d/d {name}", tol=1e-9)


def test_per_codebook_outputs_sum_to_the_result():
    from lisa_cases import make_case

    case = make_case(seed=4, n=2, books=3, length=9, dim=4, words=5)
    for form in (lisa_reference, lisa_via_exact_attention):
        args = (case.query, case.soft_codes, case.key_codewords, case.value_codewords)
        per_book = form(*args, gamma=0.8, causal=True, sum_codebooks=False)
        assert per_book.shape == (2, 3, 9, 3)
        _close(per_book.sum(dim=1), form(*args, gamma=0.8, causal=True), form.__name__)


def test_all_padded_rows_give_zeros_and_finite_gradients():
    from lisa_cases import make_case

    case = make_case(seed=2, n=2, books=2, length=6, dim=3, words=4)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0] = True  # batch element 0: every key padded
    mask[1, :3] = True  # batch element 1: causal rows 0-2 see only padded keys
    for form in (lisa_reference, lisa_via_exact_attention):
        q = case.query.clone().requires_grad_(True)
        out = form(q, case.hard_codes, case.key_codewords, case.value_codewords, gamma=0.7,
                   causal=True, key_padding_mask=mask)  # fmt: skip
        assert (out[0] == 0).all() and (out[1, :3] == 0).all()
        assert (out[1, 3:].abs().sum(-1) > 0).all()
        out.square().sum().backward()
        assert torch.isfinite(q.grad).all() and (q.grad[0] == 0).all()


def test_definition_refuses_rows_whose_weights_underflow():
    """The linear-domain definition cannot represent a row whose visible codewords score
    ~1000 below an absent one: it raises rather than call the row empty. The identity
    form (a softmax over the visible tokens only) still answers: Vc[code]."""
    q = torch.ones(1, 1, 3, 1, dtype=F64)
    kc = torch.tensor([[[1000.0], [0.0]]], dtype=F64)
    vc = torch.tensor([[[1.0], [2.0]]], dtype=F64)
    codes = torch.ones(1, 1, 3, dtype=torch.long)  # every key uses codeword 1
    with pytest.raises(FloatingPointError, match="underflow"):
        lisa_reference(q, codes, kc, vc, gamma=0.9, causal=True, scale=1.0)
    out = lisa_via_exact_attention(q, codes, kc, vc, gamma=0.9, causal=True, scale=1.0)
    assert torch.equal(out, torch.full((1, 3, 1), 2.0, dtype=F64))


# --------------------------------------------------------------------------------------
# The chunked operator against the reference


@given(
    case=lisa_cases(),
    gamma=st.sampled_from(GAMMAS),
    causal=st.booleans(),
    soft=st.booleans(),
    masked=st.booleans(),
    scale=st.sampled_from([None, 0.5]),
    chunk=st.integers(1, 30),
)
def test_operator_matches_the_reference_forward_and_gradients(
    case, gamma, causal, soft, masked, scale, chunk
):
    """lisa_attention vs lisa_reference: outputs, and gradients w.r.t. the query, both
    codebooks and (soft) the codes, under a random cotangent."""
    codes = case.soft_codes if soft else case.hard_codes
    kw = dict(
        gamma=gamma, causal=causal, key_padding_mask=case.mask if masked else None, scale=scale
    )
    leaves = (case.query, codes, case.key_codewords, case.value_codewords)
    n, _, length, _ = case.query.shape
    gen = torch.Generator().manual_seed(length)
    cotangent = torch.randn(n, length, case.value_codewords.shape[-1], generator=gen, dtype=F64)
    out, grads = _outputs_and_grads(
        lambda *t: lisa_attention(*t, chunk_size=chunk, **kw), leaves, cotangent
    )
    ref_out, ref_grads = _outputs_and_grads(lambda *t: lisa_reference(*t, **kw), leaves, cotangent)
    _close(out, ref_out, "output")
    names = (
        ("query", "codes", "key_codewords", "value_codewords") if soft else ("query", "kc", "vc")
    )
    for name, got, want in zip(names, grads, ref_grads, strict=True):
        _close(got, want, f"d/d {name}", tol=1e-8)
