"""The fast forms of the linear-time peers equal their naive definitions.

Each peer (linear, performer, local_window, lsh, linformer) computes its output by a
blocked or chunked algorithm (chunk-parallel scan, blocked band, sorted chunks, segment
sums). Here every one is checked against the definition written out densely in this
file, in float64 on small inputs drawn by hypothesis (derandomized): random chunk,
window, bucket and block sizes, lengths that are not multiples of them, causal and
bidirectional, key padding (including fully padded rows), outputs and the gradients
w.r.t. q, k and v. Timing is never asserted here.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impls import registry
from impls.attention import _banded
from impls.attention import linear as linear_module
from impls.attention._banded import banded_attention
from impls.attention.decay_linear import decayed_linear_attention
from impls.attention.linear import elu_feature_map, kernel_attention, linear_attention
from impls.attention.linformer import LinformerAttention, block_sums, pooled_keys_values
from impls.attention.local_window import LocalWindowAttention
from impls.attention.lsh import (
    MAX_LEVEL_BITS,
    LSHAttention,
    bucket_levels,
    lsh_buckets,
    number_of_buckets,
    sorted_order,
)
from impls.attention.performer import PerformerAttention
from impls.costs import CostQuery

SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TOL = 1e-10


@st.composite
def shapes(draw, max_length=70):
    batch = draw(st.integers(1, 2))
    heads = draw(st.integers(1, 2))
    length = draw(st.integers(1, max_length))
    dim = draw(st.sampled_from([1, 3, 8]))
    value_dim = draw(st.sampled_from([1, 4]))
    seed = draw(st.integers(0, 2**16))
    causal = draw(st.booleans())
    padding = draw(st.sampled_from(["none", "random", "one_row_all_padded"]))
    return batch, heads, length, dim, value_dim, seed, causal, padding


def _inputs(batch, heads, length, dim, value_dim, seed, padding, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(batch, heads, length, dim, generator=gen, dtype=torch.float64) * scale
        for _ in range(2)
    )
    v = torch.randn(batch, heads, length, value_dim, generator=gen, dtype=torch.float64)
    mask = None
    if padding != "none":
        mask = torch.rand(batch, length, generator=gen) < 0.35
        if padding == "one_row_all_padded":
            mask[0] = True
    return [t.requires_grad_() for t in (q, k, v)], mask


def _visible(length, causal, mask, batch, heads):
    """(N, H, L, L) bool: key j visible to query i (causal and padding only)."""
    vis = torch.ones(batch, heads, length, length, dtype=torch.bool)
    if causal:
        vis &= torch.ones(length, length, dtype=torch.bool).tril()
    if mask is not None:
        vis &= ~mask[:, None, None, :]
    return vis


def _normalised(weights, v):
    """weights @ v / rowsum, zeros for rows without weight (the naive kernel form)."""
    total = weights.sum(dim=-1, keepdim=True)
    out = weights @ v / torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, out, torch.zeros_like(out))


def _masked_softmax(scores, allowed, v):
    """Softmax over the allowed entries of each row, zeros for rows with none."""
    scores = scores.masked_fill(~allowed, -torch.inf)
    top = scores.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return _normalised(torch.exp(scores - top), v)


def _agree(fast, naive, inputs):
    """Outputs and the gradients w.r.t. ``inputs`` (same seeded cotangent) agree."""
    assert fast.shape == naive.shape
    assert (fast - naive).abs().max().item() <= TOL if fast.numel() else True
    cotangent = torch.randn(
        fast.shape, generator=torch.Generator().manual_seed(1), dtype=fast.dtype
    )
    got = torch.autograd.grad(fast, inputs, cotangent, retain_graph=True, allow_unused=True)
    want = torch.autograd.grad(naive, inputs, cotangent, retain_graph=True, allow_unused=True)
    for g, w in zip(got, want, strict=True):
        g = torch.zeros_like(w) if g is None else g
        w = torch.zeros_like(g) if w is None else w
        assert (g - w).abs().max().item() <= TOL


# --------------------------------------------------------------------------------------
# Linear attention and Performer: the chunk-parallel scan


@SETTINGS
@given(shapes(), st.integers(1, 80))
def test_linear_chunk_parallel_scan_is_the_definition(case, chunk):
    batch, heads, length, dim, value_dim, seed, causal, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    fast = linear_attention(q, k, v, causal=causal, key_padding_mask=mask, chunk_size=chunk)
    phi = lambda x: torch.nn.functional.elu(x) + 1  # noqa: E731
    weights = (phi(q) @ phi(k).transpose(-1, -2)) * _visible(length, causal, mask, batch, heads)
    _agree(fast, _normalised(weights, v), (q, k, v))


@SETTINGS
@given(shapes(), st.sampled_from(["features", "softplus"]))
def test_kernel_attention_on_given_features_is_the_definition(case, given_as):
    """kernel_attention's public forms other than elu+1: features computed by the caller
    (padded keys zeroed) or any other feature map, causal and bidirectional."""
    batch, heads, length, dim, value_dim, seed, causal, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    softplus = torch.nn.functional.softplus
    if given_as == "features":
        phi_k = softplus(k)
        if mask is not None:
            phi_k = phi_k.masked_fill(mask[:, None, :, None], 0.0)
        fast = kernel_attention(softplus(q), phi_k, v, causal=causal, chunk_size=7)
    else:
        fast = kernel_attention(
            q, k, v, causal=causal, chunk_size=7, feature_map=softplus, key_padding_mask=mask
        )
    weights = (softplus(q) @ softplus(k).transpose(-1, -2)) * _visible(
        length, causal, mask, batch, heads
    )
    _agree(fast, _normalised(weights, v), (q, k, v))


@SETTINGS
@given(shapes(), st.integers(1, 80), st.sampled_from([1.0, 0.95, math.exp(-0.1), 0.5, 0.05]))
def test_decayed_linear_scan_is_the_definition(case, chunk, gamma):
    """decay_linear (causal): w_ij = gamma^(i-j) phi(q_i).phi(k_j) over visible j <= i,
    out = w v / rowsum(w); forward and gradients, any chunk size and padding."""
    batch, heads, length, dim, value_dim, seed, _, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    fast = decayed_linear_attention(q, k, v, gamma=gamma, key_padding_mask=mask, chunk_size=chunk)
    phi = lambda x: torch.nn.functional.elu(x) + 1  # noqa: E731
    i = torch.arange(length, dtype=torch.float64)
    decay = gamma ** (i[:, None] - i[None, :]).clamp_min(0)
    weights = (phi(q) @ phi(k).transpose(-1, -2)) * decay
    weights = weights * _visible(length, True, mask, batch, heads)
    _agree(fast, _normalised(weights, v), (q, k, v))
    if gamma == 1.0:
        plain = linear_attention(q, k, v, causal=True, key_padding_mask=mask, chunk_size=chunk)
        assert (fast - plain).abs().max().item() <= TOL


def test_decayed_linear_refuses_keys_beyond_the_dtype_range():
    """A query whose own key is padded and whose nearest visible key lies 1,000 positions
    back: gamma^1000 = e^-100 underflows float32 (the row would read 0/0), so it raises;
    in float64 the same rows are computed and equal that key's value."""
    length = 1001
    q, k = torch.zeros(1, 1, length, 2), torch.zeros(1, 1, length, 2)
    v = torch.arange(7, length + 7, dtype=torch.float32).view(1, 1, length, 1)
    mask = torch.ones(1, length, dtype=torch.bool)
    mask[0, 0] = False  # only key 0 is visible
    with pytest.raises(FloatingPointError, match="1000 positions back, beyond the 786"):
        decayed_linear_attention(q, k, v, gamma=math.exp(-0.1), key_padding_mask=mask)
    out = decayed_linear_attention(
        q.double(), k.double(), v.double(), gamma=math.exp(-0.1), key_padding_mask=mask
    )
    # every query sees key 0 only, whose value is 7
    assert torch.allclose(out, torch.full_like(out, 7.0), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="decay_linear: gamma must be a number in"):
        decayed_linear_attention(q, k, v, gamma=1.5)
    with pytest.raises(ValueError, match="decay_linear: causal must be True"):
        decayed_linear_attention(q, k, v, gamma=0.9, causal=False)


@SETTINGS
@given(shapes(max_length=50), st.integers(1, 60), st.integers(1, 12))
def test_performer_chunk_parallel_scan_is_the_definition(case, chunk, features):
    batch, heads, length, dim, value_dim, seed, causal, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    attn = PerformerAttention(dim, heads, nb_features=features, seed=seed, chunk_size=chunk)
    fast = attn(q, k, v, causal=causal, key_padding_mask=mask)
    # the definition: phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), no stabiliser at all
    w = attn.projection
    xs = lambda x: x * dim**-0.25  # noqa: E731
    phi = lambda x: torch.exp(xs(x) @ w.T - 0.5 * (xs(x) ** 2).sum(-1, keepdim=True))  # noqa: E731
    weights = (phi(q) @ phi(k).transpose(-1, -2)) * _visible(length, causal, mask, batch, heads)
    _agree(fast, _normalised(weights, v), (q, k, v))


@SETTINGS
@given(st.integers(1, 90), st.integers(1, 40), st.booleans(), st.integers(0, 2**16))
def test_stabilised_scan_equals_the_dense_weighting(length, chunk, jumps, seed):
    """kernel_attention with Performer's log2-factors (non-decreasing, with large jumps
    so that chunk levels differ by hundreds) against 2^(f_j - f_i)-weighted kernels."""
    gen = torch.Generator().manual_seed(seed)
    phi_q, phi_k = (
        torch.rand(1, 2, length, 3, generator=gen, dtype=torch.float64) for _ in range(2)
    )
    v = torch.randn(1, 2, length, 2, generator=gen, dtype=torch.float64)
    steps = torch.rand(1, 2, length, generator=gen, dtype=torch.float64) * (200.0 if jumps else 1.0)
    factor = steps.cumsum(dim=-1)
    inputs = [t.requires_grad_() for t in (phi_q, phi_k, v)]
    fast = kernel_attention(phi_q, phi_k, v, causal=True, chunk_size=chunk, k_factor=factor)
    tril = torch.ones(length, length, dtype=torch.bool).tril()
    diff = (factor[..., None, :] - factor[..., :, None]).masked_fill(~tril, -torch.inf)
    _agree(fast, _normalised((phi_q @ phi_k.transpose(-1, -2)) * 2.0**diff, v), inputs)


def _scan_case(case, kind, gamma):
    """Inputs of a causal scan test: (q, k, v), mask, elu features (padded keys zeroed),
    the keyword of the weighting ``kind`` ("plain", "gamma", or "levels": Performer-style
    log2 levels with jumps of hundreds) and its dense (L, L) causal weighting."""
    batch, heads, length, dim, value_dim, seed, _, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)
    if mask is not None:
        phi_k = phi_k.masked_fill(mask[:, None, :, None], 0.0)
    i = torch.arange(length, dtype=torch.float64)
    tril = torch.ones(length, length, dtype=torch.bool).tril()
    extra, factor = {}, torch.ones(length, length, dtype=torch.float64)
    if kind == "gamma":
        extra = {"gamma": gamma}
        factor = gamma ** (i[:, None] - i[None, :]).clamp_min(0)
    elif kind == "levels":
        gen = torch.Generator().manual_seed(seed)
        steps = torch.rand(batch, heads, length, generator=gen, dtype=torch.float64)
        level = (steps * 30.0 + steps * 200.0 * (steps > 0.8)).cumsum(-1)
        extra = {"k_factor": level}
        factor = 2.0 ** (level[..., None, :] - level[..., :, None]).masked_fill(~tril, -torch.inf)
    return (q, k, v), mask, (phi_q, phi_k), extra, factor * tril


SEGMENTED = given(
    shapes(),
    st.integers(1, 12),
    st.sampled_from([1, 2, 5]),
    st.sampled_from(["plain", "gamma", "levels"]),
)


@SETTINGS
@SEGMENTED
def test_segmented_forward_without_grad_is_the_chunk_parallel_scan(case, chunk, segment, kind):
    """Without a backward ahead the causal scan runs ``SEGMENT_CHUNKS`` chunks at a time
    per row, carrying the state: the same output as the autograd path and as the dense
    definition, for the plain kernel, a fixed decay and Performer's levels."""
    (q, k, v), mask, (phi_q, phi_k), extra, weighting = _scan_case(case, kind, 0.9)
    default = linear_module.SEGMENT_CHUNKS
    linear_module.SEGMENT_CHUNKS = segment
    try:
        with torch.no_grad():
            segmented = kernel_attention(phi_q, phi_k, v, causal=True, chunk_size=chunk, **extra)
            # the layers form their features per segment (padded keys zeroed there)
            if kind == "plain":
                lazy = linear_attention(
                    q, k, v, causal=True, key_padding_mask=mask, chunk_size=chunk
                )
            elif kind == "gamma":
                lazy = decayed_linear_attention(
                    q, k, v, gamma=0.9, key_padding_mask=mask, chunk_size=chunk
                )
    finally:
        linear_module.SEGMENT_CHUNKS = default
    if kind != "levels":
        assert (lazy - segmented).abs().max().item() <= TOL if q.shape[2] else True
    whole = kernel_attention(phi_q, phi_k, v, causal=True, chunk_size=chunk, **extra)
    dense = _normalised((phi_q @ phi_k.transpose(-1, -2)) * weighting, v)
    assert (segmented - whole).abs().max().item() <= TOL if q.shape[2] else True
    assert (segmented - dense).abs().max().item() <= TOL if q.shape[2] else True


@SETTINGS
@SEGMENTED
def test_segmented_backward_is_the_definition(case, chunk, segment, kind):
    """With a backward ahead and more than ``SEGMENT_CHUNKS`` chunks per row, both passes
    form the chunk states one segment at a time (the forward keeps the state before each
    segment; the backward rebuilds each segment's states from it): outputs and gradients
    equal the dense definition, for the plain kernel, a fixed decay and Performer's
    levels (including level jumps of hundreds)."""
    (q, k, v), _, (phi_q, phi_k), extra, weighting = _scan_case(case, kind, 0.8)
    default = linear_module.SEGMENT_CHUNKS
    linear_module.SEGMENT_CHUNKS = segment
    try:
        fast = kernel_attention(phi_q, phi_k, v, causal=True, chunk_size=chunk, **extra)
    finally:
        linear_module.SEGMENT_CHUNKS = default
    dense = _normalised((phi_q @ phi_k.transpose(-1, -2)) * weighting, v)
    _agree(fast, dense, (q, k, v))


@SETTINGS
@given(
    shapes(max_length=50),
    st.integers(1, 12),
    st.sampled_from([1, 2, 5]),
    st.sampled_from([1.0, 6.0]),
)
def test_performer_segmented_forward_is_the_chunk_parallel_scan(case, chunk, segment, scale):
    """Causal Performer without a backward ahead forms its features, running key level
    and stabiliser factors one segment at a time: the same output as the whole-sequence
    form (with a backward ahead) and as the unstabilised definition, with padding and
    with inputs scaled up so that the key level jumps within and across segments."""
    batch, heads, length, dim, value_dim, seed, _, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding, scale)
    attn = PerformerAttention(dim, heads, nb_features=7, seed=seed, chunk_size=chunk)
    default = linear_module.SEGMENT_CHUNKS
    linear_module.SEGMENT_CHUNKS = segment
    try:
        with torch.no_grad():
            segmented = attn(q, k, v, causal=True, key_padding_mask=mask)
        whole = attn(q, k, v, causal=True, key_padding_mask=mask)  # q, k, v require grad
    finally:
        linear_module.SEGMENT_CHUNKS = default
    w, xs = attn.projection, lambda x: x * dim**-0.25  # noqa: E731
    logits = lambda x: xs(x) @ w.T - 0.5 * (xs(x) ** 2).sum(-1, keepdim=True)  # noqa: E731
    log_weights = torch.logsumexp(logits(q)[..., :, None, :] + logits(k)[..., None, :, :], -1)
    visible = _visible(length, True, mask, batch, heads)
    dense = _masked_softmax(log_weights, visible, v)
    assert (segmented - whole).abs().max().item() <= TOL
    assert (segmented - dense).abs().max().item() <= 1e-9


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_performer_stays_finite_when_key_levels_climb(dtype, causal):
    """Keys whose norms grow along the sequence push the key level up by far more than
    exp can bear; every factor applied is <= 1 (causal: the running level; bidirectional:
    the level of all keys), so nothing overflows, and the output matches the oracle
    identity (computed stably in float64)."""
    length, dim = 300, 8
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, length, dim, generator=gen, dtype=torch.float64)
    k = torch.randn(1, 1, length, dim, generator=gen, dtype=torch.float64)
    norms = torch.linspace(1.0, 40.0, length, dtype=torch.float64)
    k = k * (norms if causal else norms.flip(0))[:, None]  # bidirectional: largest first
    v = torch.randn(1, 1, length, dim, generator=gen, dtype=torch.float64)
    spec = registry.get_method("performer")
    attn = PerformerAttention(dim, 1, nb_features=16, chunk_size=32)
    out = attn(q.to(dtype), k.to(dtype), v.to(dtype), causal=causal)
    assert torch.isfinite(out).all()
    ref = spec.oracle_reference(attn, q, k, v, causal=causal, key_padding_mask=None)
    assert (out.double() - ref).abs().max().item() < (1e-4 if dtype == torch.float32 else 1e-9)


# --------------------------------------------------------------------------------------
# Blocked band: local window and the banded kernel


@SETTINGS
@given(shapes(), st.integers(1, 80))
def test_local_window_blocked_band_is_the_definition(case, window):
    batch, heads, length, dim, value_dim, seed, causal, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    fast = LocalWindowAttention(dim, heads, window=window)(
        q, k, v, causal=causal, key_padding_mask=mask
    )
    i = torch.arange(length)
    band = (i[:, None] - i[None, :]).abs() < window
    allowed = band & _visible(length, causal, mask, batch, heads)
    _agree(fast, _masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(dim), allowed, v), (q, k, v))


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 60),
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(1, 30),
    st.integers(0, 4),
    st.booleans(),
    st.integers(0, 2**16),
    st.sampled_from([1, 3000, None]),
)
def test_banded_kernel_is_the_dense_band(
    items, length, left, right, block, codes, ok, seed, chunk_bytes
):
    """Any band, block size, code alphabet and key validity, with and without lse, and
    the tiles processed one query block at a time, a few at a time, or all at once."""
    default = _banded.CHUNK_BYTES
    _banded.CHUNK_BYTES = default if chunk_bytes is None else chunk_bytes
    try:
        _check_banded_kernel(items, length, left, right, block, codes, ok, seed)
    finally:
        _banded.CHUNK_BYTES = default


def _check_banded_kernel(items, length, left, right, block, codes, ok, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(items, length, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(items, length, 2, generator=gen, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (q, k, v)]
    key_ok = torch.rand(items, length, generator=gen) < 0.7 if ok else None
    q_code = k_code = None
    if codes:
        q_code = torch.randint(0, codes, (items, length), generator=gen)
        k_code = torch.randint(0, codes, (items, length), generator=gen)
    out, lse = banded_attention(
        q, k, v, left=left, right=right, block=block, scale=0.7, key_ok=key_ok,
        q_code=q_code, k_code=k_code, with_lse=True,
    )  # fmt: skip
    plain, _ = banded_attention(
        q, k, v, left=left, right=right, block=block, scale=0.7, key_ok=key_ok,
        q_code=q_code, k_code=k_code,
    )  # fmt: skip
    with torch.no_grad():  # no backward ahead: one chunk's buffer serves every chunk
        bare, bare_lse = banded_attention(
            q, k, v, left=left, right=right, block=block, scale=0.7, key_ok=key_ok,
            q_code=q_code, k_code=k_code, with_lse=True,
        )  # fmt: skip
    torch.testing.assert_close(bare, out.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bare_lse, lse.detach(), rtol=1e-12, atol=1e-12)
    i = torch.arange(length)
    gap = i[None, :] - i[:, None]  # key minus query
    allowed = ((gap >= -left) & (gap <= right))[None].expand(items, -1, -1)
    if key_ok is not None:
        allowed = allowed & key_ok[:, None, :]
    if codes:
        allowed = allowed & (q_code[:, :, None] == k_code[:, None, :])
    scores = 0.7 * q @ k.transpose(-1, -2)
    _agree(out, _masked_softmax(scores, allowed, v), inputs)
    _agree(plain, _masked_softmax(scores, allowed, v), inputs)
    want = torch.logsumexp(scores.masked_fill(~allowed, -torch.inf), dim=-1)
    assert torch.equal(torch.isinf(lse), torch.isinf(want))
    finite = torch.isfinite(want)
    assert (lse[finite] - want[finite]).abs().max().item() <= TOL if finite.any() else True


# --------------------------------------------------------------------------------------
# LSH: factorised hashing, sorted chunks


@given(st.integers(1, 2**20), st.integers(1, 512))
@settings(max_examples=200, derandomize=True, database=None)
def test_bucket_counts_are_powers_of_two_in_small_levels(length, bucket_size):
    buckets = number_of_buckets(length, bucket_size)
    assert buckets & (buckets - 1) == 0
    assert buckets == 1 if length <= bucket_size else buckets >= 2
    if length > bucket_size:  # nearest power of two in log scale
        assert abs(math.log2(buckets) - math.log2(length / bucket_size)) <= 0.5 or buckets == 2
    levels = bucket_levels(buckets)
    assert math.prod(levels) == buckets
    assert all(2 <= f <= 2**MAX_LEVEL_BITS for f in levels)
    assert max(levels, default=0) <= 2 * min(levels, default=0)  # as even as possible


def test_hashing_is_angular_and_splits_the_buckets():
    """Bucket ids depend on the direction only, cover the whole range, and the
    directions cost O(log n_buckets), not O(n_buckets)."""
    attn = LSHAttention(16, 1, n_hashes=3, bucket_size=4, seed=5)
    x = torch.randn(4096, 16, dtype=torch.float64)
    rot, buckets = attn.rotations(16, 4096)
    assert buckets == 1024 and rot.shape == (3, 16, sum(f // 2 for f in bucket_levels(1024)))
    ids = lsh_buckets(x, rot, buckets)
    assert ids.shape == (3, 4096) and ids.min() >= 0 and ids.max() < buckets
    assert torch.equal(ids, lsh_buckets(3.5 * x, rot, buckets))
    assert len(ids[0].unique()) > buckets // 2  # random directions reach most buckets
    # the definition: level l's bucket is argmax([x R_l ; -x R_l]), mixed radix over levels
    want, radix, offset = torch.zeros(3, 4096, dtype=torch.long), 1, 0
    for size in bucket_levels(buckets):
        proj = torch.einsum("nd,rdb->rnb", x, rot[..., offset : offset + size // 2])
        want += radix * torch.cat([proj, -proj], dim=-1).argmax(dim=-1)
        radix, offset = radix * size, offset + size // 2
    assert torch.equal(ids, want)
    zero = torch.zeros(2, 16, dtype=torch.float64)  # all ties: the first direction, as argmax
    assert torch.equal(lsh_buckets(zero, rot, buckets), torch.zeros(3, 2, dtype=torch.long))


@SETTINGS
@given(shapes(max_length=60), st.integers(1, 24), st.integers(1, 3))
def test_lsh_sorted_chunks_are_the_counted_definition(case, bucket_size, rounds):
    """Against the definition written out here: per round, sort items by (bucket,
    position, key first); query i sees key j of its bucket within 2 * bucket_size items
    of it in that order (before it when causal); softmax over the multiset of finds."""
    batch, heads, length, dim, value_dim, seed, causal, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    attn = LSHAttention(dim, heads, n_hashes=rounds, bucket_size=bucket_size, seed=seed)
    fast = attn(q, k, v, causal=causal, key_padding_mask=mask)
    rot, buckets = attn.rotations(dim, length)
    qb, kb = lsh_buckets(q.detach(), rot, buckets), lsh_buckets(k.detach(), rot, buckets)
    counts = torch.zeros(batch, heads, length, length, dtype=torch.float64)
    width = 2 * bucket_size
    for r in range(rounds):
        rank = torch.argsort(sorted_order(qb[r], kb[r]), dim=-1)
        gap = rank[..., None, :length] - rank[..., length:, None]  # key rank - query rank
        found = (gap >= -width) & (gap <= (0 if causal else width))
        counts += (found & (qb[r][..., :, None] == kb[r][..., None, :])).double()
    allowed = (counts > 0) & _visible(length, False, mask, batch, heads)
    if causal:  # implied by the sort within a bucket; stated to check it
        assert not (allowed & ~torch.ones(length, length, dtype=torch.bool).tril()).any()
    scores = q @ k.transpose(-1, -2) / math.sqrt(dim) + torch.log(counts.clamp_min(1e-300))
    _agree(fast, _masked_softmax(scores, allowed, v), (q, k, v))


def test_lsh_is_exact_with_one_bucket_and_a_wide_window():
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 40, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    attn = LSHAttention(8, 2, n_hashes=2, bucket_size=40)
    for causal in (False, True):
        allowed = _visible(40, causal, None, 2, 2)
        want = _masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(8), allowed, v)
        assert (attn(q, k, v, causal=causal) - want).abs().max() < TOL


def test_lsh_cost_is_linear_up_to_logs():
    spec = registry.get_method("lsh")
    small, large = (spec.cost(CostQuery(n, 128, hp=spec.hyperparameters)) for n in (2**12, 2**16))
    assert math.log(large.flops / small.flops) / math.log(16) < 1.1
    assert math.log(large.working_bytes / small.working_bytes) / math.log(16) < 1.1


# --------------------------------------------------------------------------------------
# Linformer: pooling by segment sums


@SETTINGS
@given(shapes(), st.integers(1, 80))
def test_linformer_segment_sums_are_the_projection(case, proj_len):
    batch, heads, length, dim, value_dim, seed, _, padding = case
    (q, k, v), mask = _inputs(batch, heads, length, dim, value_dim, seed, padding)
    sk, sv, counts = block_sums(k, v, mask, proj_len)
    pk, pv, dense_counts = pooled_keys_values(k, v, mask, proj_len)
    assert torch.equal(counts.expand_as(dense_counts), dense_counts)
    safe = counts.clamp_min(1)[..., None]
    assert (sk / safe - pk).abs().max() <= TOL and (sv / safe - pv).abs().max() <= TOL
    fast = LinformerAttention(dim, heads, proj_len=proj_len)(q, k, v, key_padding_mask=mask)
    scores = (
        q @ pk.transpose(-1, -2) / math.sqrt(dim)
        + torch.log(dense_counts.clamp_min(1e-300))[:, :, None]
    )
    allowed = (dense_counts > 0)[:, :, None, :].expand_as(scores)
    _agree(fast, _masked_softmax(scores, allowed, pv), (q, k, v))
