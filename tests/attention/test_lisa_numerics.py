"""LISA at the edges of floating point: overflowing scores raise instead of returning the
zeros of an empty histogram, empty histograms still give exact zeros, and half-precision
inputs are accumulated in float32 and match the float64 oracle to the dtype's epsilon."""

from __future__ import annotations

import math

import pytest
import torch
from lisa_cases import LisaCase, make_case, oracle_hard, oracle_soft

from impls.attention.lisa import lisa_attention, lisa_attention_cached
from reference.lisa import lisa_via_exact_attention

HALF = (torch.float16, torch.bfloat16)


def _case(dtype=torch.float32, **kw) -> LisaCase:
    args = dict(seed=7, n=2, books=2, length=9, dim=4, words=3, dtype=dtype)
    return make_case(**{**args, **kw})


def _huge(case: LisaCase, factor: float = 1e20) -> LisaCase:
    """Finite float32 inputs whose scores q . Kc (~1e40) overflow float32."""
    return LisaCase(
        query=case.query * factor,
        hard_codes=case.hard_codes,
        soft_codes=case.soft_codes,
        key_codewords=case.key_codewords * factor,
        value_codewords=case.value_codewords,
        query_codewords=case.query_codewords * factor,
        query_codes=case.query_codes,
        mask=case.mask,
    )


def _vector(case, *, grad=False, **kw):
    query = case.query.clone().requires_grad_(grad)
    return lisa_attention(query, case.hard_codes, case.key_codewords, case.value_codewords, **kw)


def _cached(case, **kw):
    return lisa_attention_cached(
        case.query_codes,
        case.query_codewords,
        case.hard_codes,
        case.key_codewords,
        case.value_codewords,
        **kw,
    )


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("grad", [False, True])
def test_overflowing_scores_raise_instead_of_returning_zeros(causal, grad):
    case = _huge(_case())
    assert torch.isfinite(case.query).all() and torch.isfinite(case.key_codewords).all()
    scores = torch.einsum("nbld,bwd->nblw", case.query, case.key_codewords)
    assert not torch.isfinite(scores).all()  # the premise: q . Kc overflows float32
    with pytest.raises(FloatingPointError, match="query, key_codewords"):
        _vector(case, grad=grad, causal=causal, gamma=0.9, chunk_size=4)
    with pytest.raises(FloatingPointError, match="query_codewords, key_codewords"):
        _cached(case, causal=causal, gamma=0.9, chunk_size=4)


def test_the_same_large_inputs_are_exact_where_the_scores_are_representable():
    """Scores ~1e40 are finite in float64: the result there is the oracle's, not zeros."""
    case = _huge(_case(dtype=torch.float64))
    out = _vector(case, causal=True, gamma=0.9, chunk_size=4)
    expected = oracle_hard(case, 0.9, causal=True, masked=False)
    assert (out.abs().sum(-1) > 0).all()
    assert (out - expected).abs().max() <= 1e-10 * max(1.0, float(expected.abs().max()))


@pytest.mark.parametrize("causal", [True, False])
def test_empty_histograms_give_exact_zeros_even_with_huge_scores(causal):
    """All keys padded: every histogram is empty, the scores are never used, out = 0."""
    case = _huge(_case())
    everything = torch.ones(2, 9, dtype=torch.bool)
    out = _vector(case, grad=True, causal=causal, key_padding_mask=everything, chunk_size=4)
    assert out.dtype == torch.float32 and (out == 0).all()
    out.sum().backward()
    cached = _cached(case, causal=causal, key_padding_mask=everything, chunk_size=4)
    assert (cached == 0).all()


def test_padded_prefix_gives_zeros_and_the_rest_still_raises_on_overflow():
    """Rows 0-3 see only padded keys (exact zeros); rows from 4 on see keys, so their
    overflowing scores are an error, not an empty histogram."""
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[:, :4] = True
    ok = _vector(_case(), causal=True, key_padding_mask=mask, gamma=0.5, chunk_size=2)
    assert (ok[:, :4] == 0).all() and (ok[:, 4:].abs().sum(-1) > 0).all()
    with pytest.raises(FloatingPointError, match="not finite"):
        _vector(_huge(_case()), causal=True, key_padding_mask=mask, gamma=0.5, chunk_size=2)


@pytest.mark.parametrize("dtype", [torch.float32, *HALF])
def test_an_output_beyond_the_dtype_range_raises(dtype):
    """The output sums B = 2 codebooks of values near the dtype's maximum."""
    case = _case(dtype=dtype)
    big = torch.finfo(dtype).max * 0.75
    values = torch.full_like(case.value_codewords, big)
    with pytest.raises(FloatingPointError, match="value_codewords"):
        lisa_attention(case.query, case.hard_codes, case.key_codewords, values)


def _dyadic_soft_codes(case: LisaCase, seed: int) -> LisaCase:
    """Soft codes that are multiples of 1/16 summing to exactly 1 (W <= 5), so they are the
    same probabilities in every dtype."""
    *lead, words = case.soft_codes.shape
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 4, (*lead, words), generator=g).to(torch.float64)
    counts[..., -1] = 16 - counts[..., :-1].sum(-1)
    return LisaCase(**{**case.__dict__, "soft_codes": counts / 16})


def _to(case: LisaCase, dtype: torch.dtype) -> LisaCase:
    floats = {
        name: getattr(case, name).to(dtype)
        for name in ("query", "soft_codes", "key_codewords", "value_codewords", "query_codewords")
    }
    return LisaCase(
        **floats,
        hard_codes=case.hard_codes,
        query_codes=case.query_codes,
        mask=case.mask,
    )


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("gamma", [1.0, math.exp(-0.1)])
def test_half_precision_matches_the_float64_oracle_to_the_dtype_epsilon(dtype, causal, soft, gamma):
    """Identities 2-5 with half inputs: the float64 oracle on the same (half-valued)
    inputs, within eps(dtype) * max(1, max |oracle|) (the documented tolerance); the result
    is in the input dtype and equals the float32 computation rounded once."""
    half = _to(_dyadic_soft_codes(_case(dtype=torch.float64, length=24, words=5), 3), dtype)
    exact = _to(half, torch.float64)  # the very same values, in float64
    codes = half.soft_codes if soft else half.hard_codes
    kw = dict(gamma=gamma, causal=causal, key_padding_mask=half.mask, chunk_size=5)
    out = lisa_attention(half.query, codes, half.key_codewords, half.value_codewords, **kw)
    assert out.dtype == dtype
    oracle = (oracle_soft if soft else oracle_hard)(exact, gamma, causal, masked=True)
    err = (out.double() - oracle).abs().max().item()
    assert err <= torch.finfo(dtype).eps * max(1.0, oracle.abs().max().item()), err

    single = _to(half, torch.float32)
    codes32 = single.soft_codes if soft else single.hard_codes
    ref = lisa_attention(single.query, codes32, single.key_codewords, single.value_codewords, **kw)
    assert torch.equal(out, ref.to(dtype))  # accumulated in float32, rounded once

    cached = _cached(half, **kw)
    assert cached.dtype == dtype
    assert torch.equal(cached, _cached(single, **kw).to(dtype))


@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_gradients_come_back_in_the_input_dtype(dtype):
    half = _to(_dyadic_soft_codes(_case(dtype=torch.float64, seed=4), 4), dtype)
    single = _to(half, torch.float32)
    grads = []
    for case in (half, single):
        leaves = [
            t.clone().requires_grad_(True)
            for t in (case.query, case.soft_codes, case.key_codewords, case.value_codewords)
        ]
        out = lisa_attention(*leaves, gamma=0.8, key_padding_mask=case.mask, chunk_size=3)
        out.double().square().sum().backward()
        grads.append([t.grad for t in leaves])
    for got, want in zip(*grads, strict=True):
        assert got.dtype == dtype and torch.isfinite(got).all()
        tol = torch.finfo(dtype).eps * max(1.0, want.abs().max().item())
        assert (got.double() - want.double()).abs().max().item() <= tol


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("gamma", [1.0, 0.6])
def test_exact_log_domain_path_matches_the_oracle(monkeypatch, causal, soft, gamma):
    """The scan's fallback (softmax over s + log H, taken when a chunk's linear-domain
    normaliser is too small to trust) is forced on every chunk; forward and query gradient
    still match the float64 oracle and the fast path."""
    import impls.attention.lisa_operator as operator

    case = make_case(seed=3, n=2, books=2, length=40, dim=4, words=3)
    codes = case.soft_codes if soft else case.hard_codes
    oracle = (oracle_soft if soft else oracle_hard)(case, gamma, causal, True)

    def run():
        query = case.query.clone().requires_grad_(True)
        out = lisa_attention(
            query,
            codes,
            case.key_codewords,
            case.value_codewords,
            gamma=gamma,
            causal=causal,
            key_padding_mask=case.mask,
            chunk_size=8,
            backend="torch",
        )
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        return out.detach(), query.grad

    fast_out, fast_grad = run()
    monkeypatch.setattr(operator, "_ALWAYS_EXACT", True)
    exact_out, exact_grad = run()
    torch.testing.assert_close(exact_out, oracle, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast_out, exact_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast_grad, exact_grad, rtol=1e-9, atol=1e-11)


def test_fast_path_falls_back_when_old_keys_carry_the_weight(monkeypatch):
    """A key seen ~2000 positions ago under gamma = 0.7 has weight 0.7^2000 (~1e-310, below
    float64's normal range) but a score large enough to dominate: the linear-domain chunk
    cannot represent it, so the scan must take the log-domain path and still agree with the
    oracle, whose decay is an additive log bias."""
    import impls.attention.lisa_operator as operator

    calls = {"exact": 0}
    exact = operator._Scan._exact

    def counting(self, *args, **kw):
        calls["exact"] += 1
        return exact(self, *args, **kw)

    monkeypatch.setattr(operator._Scan, "_exact", counting)
    length = 2048
    codes = torch.ones(1, 1, length, dtype=torch.long)
    codes[0, 0, 0] = 0  # codeword 0 occurs once, at the very start
    key_codewords = torch.tensor([[[600.0], [0.0]]], dtype=torch.float64)
    query = torch.ones(1, 1, length, 1, dtype=torch.float64)
    values = torch.tensor([[[1.0], [0.0]]], dtype=torch.float64)
    out = lisa_attention(query, codes, key_codewords, values, gamma=0.7, scale=1.0, backend="torch")
    assert calls["exact"] > 0
    expected = lisa_via_exact_attention(
        query, codes, key_codewords, values, gamma=0.7, causal=True, scale=1.0
    )
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_training_batches_scan_in_steps_of_at_least_32_positions(monkeypatch, causal):
    """With gradients and a training-sized batch * B * W the element budget alone would
    give scan steps of a few positions (2 for LISA-Base on ML-1M, measured 2.1x slower per
    training step); the step is held at 32 positions, and outputs and gradients equal
    those of the short steps (float64, 1e-12)."""
    import impls.attention.lisa_operator as operator

    batch, books, length, words, dim = 40, 8, 70, 128, 4
    assert operator._scan_chunk(
        512, 0.9, torch.float64, shape=(batch, books, length, words), dv=dim, grad=False,
        causal=causal,
    ) < 32  # fmt: skip
    chosen = operator._scan_chunk(
        512, 0.9, torch.float64, shape=(batch, books, length, words), dv=dim, grad=True,
        causal=causal,
    )  # fmt: skip
    assert chosen == 32
    g = torch.Generator().manual_seed(5)
    codes = torch.randint(0, words, (batch, books, length), generator=g)
    codewords = [torch.randn(books, words, dim, generator=g, dtype=torch.float64) for _ in "qkv"]
    probs = torch.softmax(torch.randn(batch, books, length, words, generator=g), -1).double()

    def run():
        inputs = [t.clone().requires_grad_(True) for t in (*codewords, probs)]
        out = lisa_attention_cached(
            codes, inputs[0], codes, inputs[1], inputs[2], key_code_probs=inputs[3],
            gamma=0.9, causal=causal,
        )  # fmt: skip
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        return [out.detach(), *(t.grad for t in inputs)]

    steps = []
    original = operator._Scan.__init__

    def recording(self, *args, **kw):
        steps.append(kw["chunk"])
        original(self, *args, **kw)

    monkeypatch.setattr(operator._Scan, "__init__", recording)
    wide = run()
    monkeypatch.setattr(operator, "_GRAD_MIN_CHUNK", 1)
    narrow = run()
    assert steps[0] == 32 and steps[1] < 8
    for a, b in zip(wide, narrow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_a_code_gradient_that_overflows_raises_instead_of_returning_inf():
    """Query rows whose own keys are padded and whose only visible key lies 299 positions
    back under gamma = 0.5 (H = 2^-299, beyond float32) need exp(S - log Z) ~ 2^299 in the
    backward: the code gradient overflows float32, which must raise, naming the cause."""
    length, words = 300, 2
    g = torch.Generator().manual_seed(0)
    query = torch.randn(1, 1, length, 2, generator=g)
    codes = torch.softmax(torch.randn(1, 1, length, words, generator=g), -1)
    codes.requires_grad_(True)
    key_codewords = torch.randn(1, words, 2, generator=g)
    values = torch.randn(1, words, 3, generator=g)
    mask = torch.ones(1, length, dtype=torch.bool)
    mask[0, 0] = False  # only key 0 is visible, to every query
    out = lisa_attention(
        query, codes, key_codewords, values, gamma=0.5, key_padding_mask=mask, backend="torch"
    )
    assert torch.isfinite(out).all()
    with pytest.raises(FloatingPointError, match="gradient with respect to the codes overflowed"):
        out.sum().backward()
