"""Every bad argument of the LISA operator raises a clear error that names it."""

from __future__ import annotations

import math

import pytest
import torch
from lisa_cases import make_case

from impls.attention.lisa import lisa_attention, lisa_attention_cached


@pytest.fixture
def case():
    return make_case(seed=0, n=2, books=2, length=6, dim=3, words=4, dtype=torch.float32)


def call(case, **override):
    args = dict(
        query=case.query,
        key_codes=case.hard_codes,
        key_codewords=case.key_codewords,
        value_codewords=case.value_codewords,
    )
    kwargs = {k: override.pop(k) for k in list(override) if k not in args}
    args.update(override)
    return lisa_attention(**args, **kwargs)


def nan_at_first(t):
    t = t.clone()
    t.view(-1)[0] = math.nan
    return t


BAD = [
    # (override, error type, words the message must contain)
    (lambda c: dict(query=c.query[0]), ValueError, "query must have rank 4"),
    (lambda c: dict(query=c.query.to(torch.int64)), TypeError, "query must be a floating"),
    (lambda c: dict(query=c.query.tolist()), TypeError, "query must be a torch.Tensor"),
    (lambda c: dict(query=c.query[:, :, :0]), ValueError, "query is empty"),
    (lambda c: dict(query=nan_at_first(c.query)), ValueError, "query contains NaN or Inf"),
    (lambda c: dict(query=c.query * math.inf), ValueError, "query contains NaN or Inf"),
    (
        lambda c: dict(key_codewords=c.key_codewords[0]),
        ValueError,
        "key_codewords must have rank 3",
    ),
    (lambda c: dict(key_codewords=c.key_codewords[:1]), ValueError, "key_codewords has B=1"),
    (lambda c: dict(key_codewords=c.key_codewords[..., :2]), ValueError, "key_codewords has dim 2"),
    (
        lambda c: dict(value_codewords=c.value_codewords[:, :3]),
        ValueError,
        "value_codewords has W=3",
    ),
    (
        lambda c: dict(value_codewords=c.value_codewords.double()),
        TypeError,
        "value_codewords has dtype",
    ),
    (
        lambda c: dict(value_codewords=nan_at_first(c.value_codewords)),
        ValueError,
        "value_codewords contains NaN",
    ),
    (lambda c: dict(key_codes=c.hard_codes + 4), ValueError, "key_codes has codes in [4, 7]"),
    (lambda c: dict(key_codes=c.hard_codes - 1), ValueError, "expected integers in [0, W)"),
    (lambda c: dict(key_codes=c.hard_codes[:, :1]), ValueError, "key_codes must have shape"),
    (lambda c: dict(key_codes=c.hard_codes > 0), TypeError, "key_codes (hard codes) must be"),
    (lambda c: dict(key_codes=c.soft_codes * 2), ValueError, "must sum to 1"),
    (
        lambda c: dict(key_codes=c.soft_codes - c.soft_codes.amax(-1, keepdim=True) / 2 + 0.0),
        ValueError,
        "negative entries",
    ),
    (lambda c: dict(key_codes=c.soft_codes[..., :3]), ValueError, "(soft codes) must have shape"),
    (lambda c: dict(key_codes=c.soft_codes.double()), TypeError, "key_codes has dtype"),
    (lambda c: dict(key_codes=nan_at_first(c.soft_codes)), ValueError, "key_codes contains NaN"),
    (lambda c: dict(key_codes=c.hard_codes.float()), ValueError, "key_codes must be integer"),
    (lambda c: dict(gamma=0.0), ValueError, "gamma must be in (0, 1]"),
    (lambda c: dict(gamma=1.5), ValueError, "gamma must be in (0, 1]"),
    (lambda c: dict(gamma=math.nan), ValueError, "gamma must be in (0, 1]"),
    (lambda c: dict(gamma="0.9"), TypeError, "gamma must be a real number"),
    (lambda c: dict(gamma=True), TypeError, "gamma must be a real number"),
    (
        lambda c: dict(key_padding_mask=c.mask[:, :5]),
        ValueError,
        "key_padding_mask must have shape",
    ),
    (lambda c: dict(key_padding_mask=c.mask.T), ValueError, "key_padding_mask must have shape"),
    (lambda c: dict(key_padding_mask=c.mask.float()), TypeError, "key_padding_mask must be a bool"),
    (lambda c: dict(chunk_size=0), ValueError, "chunk_size must be >= 1"),
    (lambda c: dict(chunk_size=2.5), TypeError, "chunk_size must be an int"),
    (lambda c: dict(scale=-1.0), ValueError, "scale must be positive"),
    (lambda c: dict(causal=1), TypeError, "causal must be a bool"),
]


@pytest.mark.parametrize("bad", range(len(BAD)))
def test_bad_input_raises_a_clear_error(case, bad):
    override, error, words = BAD[bad]
    with pytest.raises(error) as info:
        call(case, **override(case))
    assert words in str(info.value)


def test_cached_path_checks_its_own_arguments(case):
    kw = dict(
        key_codes=case.hard_codes,
        key_codewords=case.key_codewords,
        value_codewords=case.value_codewords,
    )
    with pytest.raises(ValueError, match="query_codes has codes in"):
        lisa_attention_cached(case.query_codes + 9, case.query_codewords, **kw)
    with pytest.raises(ValueError, match="query_codewords has W=3"):
        lisa_attention_cached(case.query_codes, case.query_codewords[:, :3], **kw)
    with pytest.raises(ValueError, match="query_codewords must have rank 3"):
        lisa_attention_cached(case.query_codes, case.query_codewords[0], **kw)
    with pytest.raises(ValueError, match="query_codewords contains NaN"):
        lisa_attention_cached(case.query_codes, nan_at_first(case.query_codewords), **kw)
    with pytest.raises(TypeError, match="query_codewords must be a torch.Tensor"):
        lisa_attention_cached(case.query_codes, None, **kw)


@pytest.mark.parametrize("exact", [False, True], ids=["fast-path", "exact-path"])
@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "grad"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_query_is_named_even_in_a_row_that_sees_no_key(
    case, monkeypatch, exact, grad, causal, value
):
    """The operator screens the query through its scores, not by a separate pass: a bad
    entry must still be named, in any chunk, also where the row's histogram is empty
    (its scores are never used): causal row 0 of an element whose first key is padded,
    and every row of a fully padded element when bidirectional."""
    import impls.attention.lisa_operator as operator

    monkeypatch.setattr(operator, "_ALWAYS_EXACT", exact)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, :2] = True  # element 0: rows 0, 1 see no key when causal
    if not causal:
        mask[0] = True  # element 0 fully padded: no row sees a key
    for position in (0, 4):
        query = case.query.clone()
        query[0, 1, position, 2] = value
        query.requires_grad_(grad)
        with pytest.raises(ValueError, match="query contains NaN or Inf"):
            call(case, query=query, causal=causal, key_padding_mask=mask, chunk_size=2)


def test_overflowing_scores_are_not_blamed_on_the_query(case):
    """Finite inputs whose scores overflow float32 raise the overflow error, not the
    query's."""
    with pytest.raises(FloatingPointError, match="are not finite in torch.float32"):
        call(case, query=case.query * 1e30, key_codewords=case.key_codewords * 1e30)
