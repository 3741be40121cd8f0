"""The straight-through fast path (hard gathers forward, soft-code gradients backward)
against the explicit estimator ``onehot + p - p.detach()`` pushed through the soft-code
path, in float64."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from lisa_cases import GAMMAS, lisa_cases

from impls.attention.lisa import lisa_attention_cached
from impls.attention.lisa_straight_through import straight_through_rows

F64 = torch.float64


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _explicit(codes: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    hard = torch.nn.functional.one_hot(codes, probs.shape[-1]).to(probs.dtype)
    return hard + probs - probs.detach()


def test_rows_forward_is_a_gather_and_backward_is_the_straight_through_gradient():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(3, 5, 4, generator=g, dtype=F64)
    codes = torch.randint(0, 5, (2, 3, 7), generator=g)
    probs = torch.softmax(torch.randn(2, 3, 7, 5, generator=g, dtype=F64), -1)
    weight = torch.randn(2, 3, 7, 4, generator=g, dtype=F64)

    t1, p1 = _leaf(table), _leaf(probs)
    fast = straight_through_rows(t1, codes, p1)
    t2, p2 = _leaf(table), _leaf(probs)
    slow = torch.einsum("nblw,bwx->nblx", _explicit(codes, p2), t2)
    books = torch.arange(3)[None, :, None]
    assert torch.equal(fast.detach(), table[books, codes])
    assert torch.allclose(fast, slow, atol=1e-12, rtol=0)
    got = torch.autograd.grad((fast * weight).sum(), (t1, p1))
    want = torch.autograd.grad((slow * weight).sum(), (t2, p2))
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)
    assert got[1].abs().sum() > 0 and got[0].abs().sum() > 0


@given(
    case=lisa_cases(), gamma=st.sampled_from(GAMMAS), causal=st.booleans(), chunk=st.integers(1, 30)
)
def test_cached_operator_with_code_probs_equals_explicit_straight_through_codes(
    case, gamma, causal, chunk
):
    """Values equal the hard-code call; gradients (codewords and probs) equal those of the
    explicit straight-through one-hots passed as soft codes."""
    n, books, length, words = case.shape
    g = torch.Generator().manual_seed(1)
    q_probs = torch.softmax(torch.randn(n, books, length, words, generator=g, dtype=F64), -1)
    k_probs = torch.softmax(torch.randn(n, books, length, words, generator=g, dtype=F64), -1)
    weight = torch.randn(n, length, case.value_codewords.shape[-1], generator=g, dtype=F64)
    kw = dict(gamma=gamma, causal=causal, key_padding_mask=case.mask, chunk_size=chunk)
    cws = (case.query_codewords, case.key_codewords, case.value_codewords)

    fast_leaves = [_leaf(t) for t in (*cws, q_probs, k_probs)]
    qc, kc, vc, qp, kp = fast_leaves
    fast = lisa_attention_cached(
        case.query_codes, qc, case.hard_codes, kc, vc, query_code_probs=qp, key_code_probs=kp, **kw
    )
    slow_leaves = [_leaf(t) for t in (*cws, q_probs, k_probs)]
    qc, kc, vc, qp, kp = slow_leaves
    slow = lisa_attention_cached(
        _explicit(case.query_codes, qp), qc, _explicit(case.hard_codes, kp), kc, vc, **kw
    )
    with torch.no_grad():
        hard = lisa_attention_cached(case.query_codes, *cws[:1], case.hard_codes, *cws[1:], **kw)
    scale = max(1.0, hard.abs().max().item())
    assert (fast.detach() - hard).abs().max().item() <= 1e-10 * scale
    got = torch.autograd.grad((fast * weight).sum(), fast_leaves)
    want = torch.autograd.grad((slow * weight).sum(), slow_leaves)
    names = ("query_codewords", "key_codewords", "value_codewords", "query_probs", "key_probs")
    for name, a, b in zip(names, got, want, strict=True):
        err = (a - b).abs().max().item()
        assert err <= 1e-8 * max(1.0, b.abs().max().item()), (name, err)


def test_code_probs_are_validated():
    from lisa_cases import make_case

    case = make_case(seed=0, n=1, books=2, length=5, dim=3, words=4)
    args = (case.query_codewords, case.hard_codes, case.key_codewords, case.value_codewords)
    soft = case.soft_codes
    with pytest.raises(ValueError, match="query_code_probs goes with integer query_codes"):
        lisa_attention_cached(soft, *args, query_code_probs=soft)
    with pytest.raises(ValueError, match="key_code_probs"):
        lisa_attention_cached(case.query_codes, *args, key_code_probs=soft[..., :3])
    with pytest.raises(ValueError, match="query_code_probs"):
        lisa_attention_cached(case.query_codes, *args, query_code_probs=-soft)
