"""LISA against the exact-attention oracle: the five identities of papers/lisa.md, in
float64 to ~1e-10, plus chunk-size independence, causality and the cached-table path."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from lisa_cases import GAMMAS, gather_codewords, lisa_cases, oracle_hard, oracle_soft

from impls.attention.lisa import lisa_attention, lisa_attention_cached
from reference.lisa import lisa_reference

TOL = 1e-10


def assert_close(actual, expected, tol=TOL):
    assert actual.shape == expected.shape
    assert torch.isfinite(actual).all()
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= tol * max(1.0, expected.abs().max().item()), f"max abs error {err:.3e}"


@given(case=lisa_cases(max_books=1), chunk=st.integers(1, 30))
def test_identity_1_single_codebook_hard_codes_equal_exact_causal_attention(case, chunk):
    out = lisa_attention(
        case.query,
        case.hard_codes,
        case.key_codewords,
        case.value_codewords,
        gamma=1.0,
        causal=True,
        chunk_size=chunk,
    )
    assert_close(out, oracle_hard(case, 1.0, causal=True, masked=False))


@given(
    case=lisa_cases(), gamma=st.sampled_from(GAMMAS), causal=st.booleans(), chunk=st.integers(1, 30)
)
def test_identity_2_3_decay_is_an_additive_bias_and_codebooks_sum(case, gamma, causal, chunk):
    out = lisa_attention(
        case.query,
        case.hard_codes,
        case.key_codewords,
        case.value_codewords,
        gamma=gamma,
        causal=causal,
        chunk_size=chunk,
    )
    assert_close(out, oracle_hard(case, gamma, causal, masked=False))


@given(
    case=lisa_cases(), gamma=st.sampled_from(GAMMAS), causal=st.booleans(), chunk=st.integers(1, 30)
)
def test_identity_4_soft_codes_equal_attention_over_virtual_tokens(case, gamma, causal, chunk):
    out = lisa_attention(
        case.query,
        case.soft_codes,
        case.key_codewords,
        case.value_codewords,
        gamma=gamma,
        causal=causal,
        chunk_size=chunk,
    )
    assert_close(out, oracle_soft(case, gamma, causal, masked=False))


@given(
    case=lisa_cases(),
    gamma=st.sampled_from(GAMMAS),
    causal=st.booleans(),
    soft=st.booleans(),
    chunk=st.integers(1, 30),
)
def test_identity_5_padded_keys_contribute_nothing(case, gamma, causal, soft, chunk):
    codes = case.soft_codes if soft else case.hard_codes
    out = lisa_attention(
        case.query,
        codes,
        case.key_codewords,
        case.value_codewords,
        gamma=gamma,
        causal=causal,
        key_padding_mask=case.mask,
        chunk_size=chunk,
    )
    oracle = oracle_soft if soft else oracle_hard
    assert_close(out, oracle(case, gamma, causal, masked=True))


def test_all_padded_prefix_gives_zeros_not_nan():
    from lisa_cases import make_case

    case = make_case(seed=3, n=1, books=2, length=10, dim=4, words=3)
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, :4] = True
    out = lisa_attention(
        case.query,
        case.hard_codes,
        case.key_codewords,
        case.value_codewords,
        gamma=0.9,
        causal=True,
        key_padding_mask=mask,
        chunk_size=3,
    )
    assert torch.isfinite(out).all()
    assert (out[0, :4] == 0).all()
    assert (out[0, 4:].abs().sum(-1) > 0).all()
    everything = torch.ones(1, 10, dtype=torch.bool)
    out = lisa_attention(
        case.query,
        case.hard_codes,
        case.key_codewords,
        case.value_codewords,
        causal=False,
        key_padding_mask=everything,
    )
    assert (out == 0).all()


@given(
    case=lisa_cases(max_length=40),
    gamma=st.sampled_from(GAMMAS),
    causal=st.booleans(),
    soft=st.booleans(),
    chunks=st.tuples(st.integers(1, 45), st.integers(1, 45)),
)
def test_result_does_not_depend_on_chunk_size(case, gamma, causal, soft, chunks):
    codes = case.soft_codes if soft else case.hard_codes
    a, b = (
        lisa_attention(
            case.query,
            codes,
            case.key_codewords,
            case.value_codewords,
            gamma=gamma,
            causal=causal,
            key_padding_mask=case.mask,
            chunk_size=c,
        )
        for c in chunks
    )
    assert_close(a, b)


@given(case=lisa_cases(), gamma=st.sampled_from(GAMMAS), soft=st.booleans(), data=st.data())
def test_causal_output_ignores_the_future(case, gamma, soft, data):
    n, books, length, words = case.shape
    cut = data.draw(st.integers(0, length - 1))
    codes = case.soft_codes if soft else case.hard_codes
    changed_query = case.query.clone()
    changed_query[:, :, cut + 1 :] = torch.randn_like(changed_query[:, :, cut + 1 :]) * 5
    changed_codes = codes.clone()
    if soft:
        changed_codes[:, :, cut + 1 :] = changed_codes[:, :, cut + 1 :].flip(-1)
    else:
        changed_codes[:, :, cut + 1 :] = (changed_codes[:, :, cut + 1 :] + 1) % words
    mask = case.mask.clone()
    changed_mask = mask.clone()
    changed_mask[:, cut + 1 :] = ~changed_mask[:, cut + 1 :]
    kw = dict(gamma=gamma, causal=True, chunk_size=data.draw(st.integers(1, 10)))
    before = lisa_attention(
        case.query, codes, case.key_codewords, case.value_codewords, key_padding_mask=mask, **kw
    )
    after = lisa_attention(
        changed_query,
        changed_codes,
        case.key_codewords,
        case.value_codewords,
        key_padding_mask=changed_mask,
        **kw,
    )
    assert torch.equal(before[:, : cut + 1], after[:, : cut + 1])


@given(
    case=lisa_cases(),
    gamma=st.sampled_from(GAMMAS),
    causal=st.booleans(),
    soft_queries=st.booleans(),
    chunk=st.integers(1, 30),
)
def test_cached_table_path_equals_vector_queries(case, gamma, causal, soft_queries, chunk):
    if soft_queries:  # soft query codes score as p @ T, i.e. the query vector p @ Qc
        query_codes = case.soft_codes
        query = torch.einsum("nblw,bwd->nbld", query_codes, case.query_codewords)
    else:
        query_codes = case.query_codes
        query = gather_codewords(case.query_codewords, case.query_codes)
    kw = dict(gamma=gamma, causal=causal, key_padding_mask=case.mask, chunk_size=chunk)
    cached = lisa_attention_cached(
        query_codes,
        case.query_codewords,
        case.hard_codes,
        case.key_codewords,
        case.value_codewords,
        **kw,
    )
    vector = lisa_attention(query, case.hard_codes, case.key_codewords, case.value_codewords, **kw)
    assert_close(cached, vector)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 0.7])
def test_gradcheck_through_queries_codewords_and_soft_codes(causal, gamma):
    from lisa_cases import make_case

    case = make_case(seed=11, n=1, books=2, length=7, dim=3, words=3, dv=2)
    mask = torch.tensor([[False, True, False, False, False, True, False]])
    inputs = tuple(
        t.clone().requires_grad_(True)
        for t in (case.query, case.soft_codes, case.key_codewords, case.value_codewords)
    )

    def fn(q, codes, kc, vc):
        return lisa_attention(
            q, codes, kc, vc, gamma=gamma, causal=causal, key_padding_mask=mask, chunk_size=3
        )

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)

    def fn_cached(qc, kc, vc):
        return lisa_attention_cached(
            case.soft_codes, qc, case.hard_codes, kc, vc, gamma=gamma, causal=causal, chunk_size=2
        )

    cw = tuple(
        t.clone().requires_grad_(True)
        for t in (case.query_codewords, case.key_codewords, case.value_codewords)
    )
    assert torch.autograd.gradcheck(fn_cached, cw, eps=1e-6, atol=1e-7)


def test_gradients_are_finite_with_empty_histograms_and_one_hot_soft_codes():
    from lisa_cases import make_case

    case = make_case(seed=5, n=1, books=1, length=6, dim=2, words=4)
    one_hot = torch.nn.functional.one_hot(case.hard_codes, 4).to(torch.float64)
    mask = torch.tensor([[True, True, False, False, True, False]])
    q = case.query.clone().requires_grad_(True)
    codes = one_hot.clone().requires_grad_(True)
    out = lisa_attention(
        q,
        codes,
        case.key_codewords,
        case.value_codewords,
        gamma=0.5,
        key_padding_mask=mask,
        chunk_size=4,
    )
    out.square().sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(codes.grad).all()
    assert (q.grad[0, 0, :2] == 0).all()  # empty histogram: no dependence on the query


def float64_row(query, codes, key_codewords, value_codewords, gamma, row):
    """Exact causal attention for one query position, evaluated directly in float64."""
    books = torch.arange(key_codewords.shape[0])[:, None]
    q = query[0, :, row].double()  # (B, d)
    keys = key_codewords.double()[books, codes[0, :, : row + 1]]  # (B, row+1, d)
    values = value_codewords.double()[books, codes[0, :, : row + 1]]
    dist = torch.arange(row, -1, -1, dtype=torch.float64)
    scores = torch.einsum("bd,bjd->bj", q, keys) / math.sqrt(q.shape[-1])
    scores = scores + math.log(gamma) * dist
    weights = torch.softmax(scores, dim=-1)
    return torch.einsum("bj,bje->e", weights, values)


@pytest.mark.slow
def test_long_sequence_with_large_scores_stays_finite_and_matches_float64():
    """L = 65,536, gamma = exp(-0.1), scores up to ~1e3 in magnitude, float32 scan.

    Codewords are spread so that old, rarely seen codewords can carry scores hundreds of
    units above recent ones: their weight survives only if the histogram is kept stably."""
    length, books, dim, words = 65_536, 2, 16, 8
    g = torch.Generator().manual_seed(0)
    gamma = math.exp(-0.1)
    query = torch.randn(1, books, length, dim, generator=g)
    key_codewords = torch.randn(books, words, dim, generator=g)
    key_codewords *= 1e3 / (key_codewords.norm(dim=-1, keepdim=True) * 2.0)  # |s| ~ 1e3
    value_codewords = torch.randn(books, words, 4, generator=g)
    codes = torch.randint(0, words - 1, (1, books, length), generator=g)
    rare = torch.randint(0, length, (40,), generator=g)
    codes[0, :, rare] = words - 1  # a rare codeword appears at a few scattered positions
    with torch.no_grad():
        out = lisa_attention(query, codes, key_codewords, value_codewords, gamma=gamma)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()

    # Hard rows: the rare codeword was last seen 900-2000 steps back (gamma^dist < e^-90,
    # below float32's normal range) yet its score lead makes it dominate the output.
    scores = torch.einsum("nbld,bwd->nblw", query, key_codewords)[0] / math.sqrt(dim)
    lead = scores[..., -1] - scores[..., :-1].amax(-1)  # (B, L)
    is_rare = (codes[0] == words - 1).float()
    last_seen = torch.cummax(is_rare * torch.arange(length), dim=1).values
    dist = torch.arange(length) - last_seen
    hard = (
        (lead * 0.1 > 0).all(0)
        & (lead - 0.1 * dist > 20).all(0)
        & (dist > 900).all(0)
        & (is_rare.cumsum(1) > 0).all(0)
    )
    hard_rows = hard.nonzero().flatten()
    assert hard_rows.numel() >= 5, "the workload no longer contains hard rows"
    pick = torch.randperm(hard_rows.numel(), generator=g)[:10]
    rows = torch.cat(
        [
            torch.tensor([0, 1, length - 1]),
            hard_rows[pick],
            torch.randint(0, length, (5,), generator=g),
        ]
    )
    for row in rows.tolist():
        expected = float64_row(query, codes, key_codewords, value_codewords, gamma, row)
        err = (out[0, row].double() - expected).abs().max().item()
        assert err <= 1e-3 * max(1.0, expected.abs().max().item()), (row, err)


@given(
    case=lisa_cases(), gamma=st.sampled_from(GAMMAS), causal=st.booleans(), chunk=st.integers(1, 30)
)
def test_gradients_match_the_linear_domain_definition_at_one_hot_and_soft_codes(
    case, gamma, causal, chunk
):
    """The analytic backward against autograd through the definition
    (``reference.lisa.lisa_reference``, linear in the codes): for queries,
    codes (one-hot ones included, where most histogram entries are exactly zero and the
    gradient toward an absent codeword is still finite and non-zero) and both codebooks."""
    one_hot = torch.nn.functional.one_hot(case.hard_codes, case.shape[3]).to(torch.float64)
    weight = torch.randn(
        case.query.shape[0],
        case.query.shape[2],
        case.value_codewords.shape[-1],
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    for codes in (case.soft_codes, one_hot):
        grads = []
        for fn in ("scan", "definition"):
            leaves = [
                t.clone().requires_grad_(True)
                for t in (case.query, codes, case.key_codewords, case.value_codewords)
            ]
            if fn == "scan":
                out = lisa_attention(
                    *leaves,
                    gamma=gamma,
                    causal=causal,
                    key_padding_mask=case.mask,
                    chunk_size=chunk,
                )
                with torch.no_grad():
                    plain = lisa_attention(
                        *leaves,
                        gamma=gamma,
                        causal=causal,
                        key_padding_mask=case.mask,
                        chunk_size=chunk,
                    )
                assert_close(out.detach(), plain)  # the gradient path computes the same values
            else:
                out = lisa_reference(
                    *leaves, gamma=gamma, causal=causal, key_padding_mask=case.mask
                )
            grads.append(torch.autograd.grad((out * weight).sum(), leaves))
        names = ("query", "codes", "key_codewords", "value_codewords")
        for name, got, want in zip(names, *grads, strict=True):
            err = (got - want).abs().max().item()
            assert err <= 1e-8 * max(1.0, want.abs().max().item()), (name, err)


def test_code_gradient_overflow_raises_instead_of_returning_inf():
    """A padded query row whose last visible key is far back (float32, strong decay): the
    factor exp(s - log Z) overflows; the backward says so rather than return inf/NaN."""
    from lisa_cases import make_case

    case = make_case(seed=3, n=1, books=1, length=400, dim=2, words=3, dtype=torch.float32)
    mask = torch.zeros(1, 400, dtype=torch.bool)
    mask[0, 10:] = True  # keys 10..399 padded: row 399 sees key 9 only, 390 steps back
    codes = case.soft_codes.clone().requires_grad_(True)
    out = lisa_attention(
        case.query,
        codes,
        case.key_codewords,
        case.value_codewords,
        gamma=0.5,
        key_padding_mask=mask,
    )
    assert torch.isfinite(out).all()
    with pytest.raises(FloatingPointError, match="padded"):
        out.sum().backward()
