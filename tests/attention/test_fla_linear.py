"""The `fla_linear` and `fla_decay_linear` peers (impls/attention/fla_linear.py):
flash-linear-attention's kernels need CUDA (and Triton's CPU interpreter cannot run them),
so on the CPU the wrappers are checked against stand-ins for
``fla.ops.linear_attn.chunk_linear_attn`` and ``fla.ops.simple_gla.chunk_simple_gla``
written from fla's documented contracts: (batch, T, heads, d) inputs, refusal of
T < heads, a causal scan with q scaled by s; linear_attn divides by
(s q) . cumsum(k) + 1e-10, simple_gla weighs key j for query t by exp(g_gamma (t - j))
and does not normalise. The wrappers' own work (feature map, layout, padding of short
inputs, the ones column that gives the decayed normaliser, errors) is what these tests
pin; the GPU run (`python -m harness gpu-run`) times and checks the real kernels."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from impls import registry
from impls.attention import fla_linear
from impls.attention.linear import linear_attention


def _fla_contract(q, k, v, scale=None, normalize=True, **_):
    """fla's chunk_linear_attn as documented, in float64 (q, k, v: (B, T, H, K|V))."""
    if q.shape[1] < q.shape[2]:
        raise DeprecationWarning("seq_len < num_heads: head-first layout suspected")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    qs, kd, vd = q.double() * scale, k.double(), v.double()
    state = torch.einsum("bthk,bthv->bthkv", kd, vd).cumsum(1)
    out = torch.einsum("bthk,bthkv->bthv", qs, state)
    if normalize:
        out = out / ((qs * kd.cumsum(1)).sum(-1, keepdim=True) + 1e-10)
    return out.to(v.dtype), None


def _simple_gla_contract(q, k, v, g=None, g_gamma=None, scale=None, **_):
    """fla's chunk_simple_gla with a head-wise decay, as documented, in float64."""
    assert g is None and g_gamma is not None
    if q.shape[1] < q.shape[2]:
        raise DeprecationWarning("seq_len < num_heads: head-first layout suspected")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    t = torch.arange(q.shape[1], dtype=torch.float64)
    lag = t[:, None] - t[None, :]  # (T query, T key)
    decay = torch.exp(lag[None] * g_gamma.double()[:, None, None]) * (lag >= 0)  # (H, T, T)
    scores = torch.einsum("bthk,bshk->bhts", q.double() * scale, k.double()) * decay
    return torch.einsum("bhts,bshv->bthv", scores, v.double()).to(v.dtype), None


def _install_stand_in(mp: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Route the wrapper to ``_fla_contract`` on CPU tensors; returns the list of the
    shapes of q it is called with."""
    calls = []

    def fake(q, k, v, **kw):
        calls.append(tuple(q.shape))
        return _fla_contract(q, k, v, **kw)

    def fake_gla(q, k, v, **kw):
        calls.append(tuple(q.shape))
        return _simple_gla_contract(q, k, v, **kw)

    mp.setattr(fla_linear, "_chunk_linear_attn", lambda: fake)
    mp.setattr(fla_linear, "_chunk_simple_gla", lambda: fake_gla)
    mp.setattr(fla_linear, "_check_device", lambda q, method: None)
    return calls


@pytest.fixture
def stand_in(monkeypatch):
    return _install_stand_in(monkeypatch)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 2),
    heads=st.integers(1, 4),
    length=st.integers(1, 40),
    dim=st.sampled_from([1, 4, 8]),
    seed=st.integers(0, 2**16),
)
def test_matches_the_linear_oracle_identity(batch, heads, length, dim, seed):
    """The wrapper computes `linear`'s function (the oracle with scale 0 and bias
    log(phi(q).phi(k))), L < heads included (padded for fla, cut back)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, length, dim, generator=g) for _ in range(3))
    with pytest.MonkeyPatch.context() as mp:
        calls = _install_stand_in(mp)
        out = fla_linear.fla_linear_attention(q, k, v, causal=True)
    spec = registry.get_method("linear")
    want = spec.oracle_reference(
        None, q.double(), k.double(), v.double(), causal=True, key_padding_mask=None
    )
    assert out.shape == (batch, heads, length, dim)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, linear_attention(q, k, v, causal=True), rtol=1e-4, atol=1e-5)
    assert calls == [(batch, max(length, heads), heads, dim)]  # fla's (B, T, H, K) layout


@settings(max_examples=25, deadline=None)
@given(
    heads=st.integers(1, 3),
    length=st.integers(1, 40),
    dim=st.sampled_from([1, 4]),
    gamma=st.sampled_from([1.0, 0.9, 0.5, 0.05]),
    seed=st.integers(0, 2**16),
)
def test_the_decayed_variant_matches_its_oracle_identity(heads, length, dim, gamma, seed):
    """fla_decay_linear = the oracle with scale 0 and bias log(phi(q).phi(k)) +
    (i - j) log gamma; gamma = 1 is `linear`."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, heads, length, dim, generator=g) for _ in range(3))
    attn = fla_linear.FlaDecayedLinearAttention(dim, heads, gamma=gamma)
    with pytest.MonkeyPatch.context() as mp:
        calls = _install_stand_in(mp)
        out = attn(q, k, v, causal=True)
    want = registry.get_method("fla_decay_linear").oracle_reference(
        attn, q.double(), k.double(), v.double(), causal=True, key_padding_mask=None
    )
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-6)
    if gamma == 1.0:
        torch.testing.assert_close(
            out, linear_attention(q, k, v, causal=True), rtol=1e-4, atol=1e-5
        )
    assert calls == [(2, max(length, heads), heads, dim)]


def test_decay_is_checked_naming_the_argument():
    from impls.attention.fla_linear import FlaDecayedLinearAttention

    for bad in (0.0, 1.5, -0.1, True, "0.9"):
        with pytest.raises(ValueError, match="fla_decay_linear: gamma must be a number in"):
            FlaDecayedLinearAttention(4, 1, gamma=bad)


def test_gradients_flow_through_the_wrapper(stand_in):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 9, 4, generator=g, requires_grad=True) for _ in range(3))
    fla_linear.fla_linear_attention(q, k, v).sum().backward()
    ref = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    linear_attention(*ref, causal=True).sum().backward()
    for got, want in zip((q, k, v), ref, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-5)


def test_refuses_what_fla_does_not_compute_naming_the_argument(stand_in):
    q = torch.randn(1, 2, 8, 4)
    with pytest.raises(ValueError, match="fla_linear: causal must be True"):
        fla_linear.fla_linear_attention(q, q, q, causal=False)
    with pytest.raises(ValueError, match="fla_linear: key_padding_mask must be None"):
        fla_linear.fla_linear_attention(q, q, q, key_padding_mask=torch.zeros(1, 8, dtype=bool))
    with pytest.raises(ValueError, match="fla_linear"):
        fla_linear.fla_linear_attention(q, q[:, :, :5], q[:, :, :5])
    assert stand_in == []


def test_cpu_tensors_get_a_clear_error():
    q = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="fla_linear: q, k, v must be CUDA tensors"):
        fla_linear.fla_linear_attention(q, q, q)
    with pytest.raises(ValueError, match="fla_decay_linear: q, k, v must be CUDA tensors"):
        fla_linear.fla_decayed_linear_attention(q, q, q, gamma=0.9)


@pytest.mark.parametrize("name", ["fla_linear", "fla_decay_linear"])
def test_registry_lists_it_cuda_only_with_a_reason(name):
    spec = registry.get_method(name)
    assert spec.capabilities.devices == ("cuda",)
    assert not spec.capabilities.bidirectional and not spec.capabilities.key_padding
    ok, reason = registry.availability(spec)
    if not torch.cuda.is_available():
        assert not ok and ("CUDA" in reason or "not installed" in reason)
    with pytest.raises(ValueError, match="cpu"):
        registry.check_request(spec, causal=True, device="cpu")
    with pytest.raises(ValueError, match="causal"):
        registry.check_request(spec, causal=False, device="cuda")
