"""Property checks, one function per property. Each raises AssertionError (with numbers)
when ``attn`` violates the property; the tests call them for every registry entry, and
``test_conformance_self_check.py`` calls them on deliberately broken methods.

``attn(q, k, v, *, causal, key_padding_mask)`` follows the q/k/v contract. Checks run in
float64 where a tolerance is needed: ``ATOL`` absorbs summation-order rounding and nothing
else (a real violation moves outputs by orders of magnitude more).
"""

from __future__ import annotations

import torch

ATOL = 1e-10


def _max_diff(a, b) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def check_shape_dtype(attn, q, k, v, *, causal, key_padding_mask=None):
    out = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    expected = (*q.shape[:3], v.shape[-1])
    assert tuple(out.shape) == expected, f"output shape {tuple(out.shape)} != {expected}"
    assert out.dtype == q.dtype, f"output dtype {out.dtype} != input dtype {q.dtype}"
    assert out.device == q.device, f"output device {out.device} != input device {q.device}"
    assert bool(torch.isfinite(out).all()), "output has NaN/Inf for finite inputs"
    return out


def check_causality(attn, q, k, v, positions, *, seed=0, key_padding_mask=None):
    """Changing inputs after position l changes no output at or before l, and the gradient
    of outputs <= l with respect to inputs > l is exactly zero."""
    gen = torch.Generator().manual_seed(seed)
    base = attn(q, k, v, causal=True, key_padding_mask=key_padding_mask)
    length = q.shape[2]
    for pos in positions:
        if pos >= length - 1:
            continue
        changed = [t.clone() for t in (q, k, v)]
        for t in changed:
            t[:, :, pos + 1 :] = (
                torch.randn(t[:, :, pos + 1 :].shape, generator=gen, dtype=t.dtype) * 3.0
            )
        out = attn(*changed, causal=True, key_padding_mask=key_padding_mask)
        diff = _max_diff(out[:, :, : pos + 1], base[:, :, : pos + 1])
        assert diff <= ATOL, (
            f"changing inputs after position {pos} moved earlier outputs by {diff:.3g}"
        )

        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
        out = attn(*leaves, causal=True, key_padding_mask=key_padding_mask)
        cotangent = torch.randn(out[:, :, : pos + 1].shape, generator=gen, dtype=out.dtype)
        (out[:, :, : pos + 1] * cotangent).sum().backward()
        for name, leaf in zip("qkv", leaves, strict=True):
            if leaf.grad is None:
                continue
            future = leaf.grad[:, :, pos + 1 :]
            assert bool(torch.isfinite(leaf.grad).all()), f"grad of {name} has NaN/Inf"
            worst = float(future.abs().max()) if future.numel() else 0.0
            assert worst == 0.0, (
                f"gradient of outputs <= {pos} w.r.t. {name} after {pos} is {worst:.3g}, not 0"
            )


def check_key_padding(attn, q, k, v, mask, *, causal, seed=0):
    """Padded keys change nothing; a fully padded row gives zeros with finite gradients."""
    gen = torch.Generator().manual_seed(seed)
    base = attn(q, k, v, causal=causal, key_padding_mask=mask)
    assert bool(torch.isfinite(base).all()), (
        "output has NaN/Inf under key padding (a row whose visible keys are all padded?)"
    )
    pad = mask[:, None, :, None]
    k2 = torch.where(pad, torch.randn(k.shape, generator=gen, dtype=k.dtype) * 5, k)
    v2 = torch.where(pad, torch.randn(v.shape, generator=gen, dtype=v.dtype) * 5, v)
    out = attn(q, k2, v2, causal=causal, key_padding_mask=mask)
    diff = _max_diff(out, base)
    assert diff <= ATOL, f"changing padded keys/values moved outputs by {diff:.3g}"

    full = mask.clone()
    full[0] = True
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out = attn(*leaves, causal=causal, key_padding_mask=full)
    assert bool(torch.isfinite(out).all()), "an all-padded row gives NaN/Inf"
    zero_rows = float(out[0].detach().abs().max())
    assert zero_rows == 0.0, f"an all-padded row gives {zero_rows:.3g}, expected exact zeros"
    out.sum().backward()
    for name, leaf in zip("qkv", leaves, strict=True):
        if leaf.grad is not None:
            assert bool(torch.isfinite(leaf.grad).all()), f"grad of {name} has NaN/Inf"


def check_batch_independence(attn, q, k, v, *, causal, key_padding_mask=None):
    """Each batch element's output depends on that element alone."""
    full = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    for b in range(q.shape[0]):
        m = None if key_padding_mask is None else key_padding_mask[b : b + 1]
        one = attn(q[b : b + 1], k[b : b + 1], v[b : b + 1], causal=causal, key_padding_mask=m)
        diff = _max_diff(one[0], full[b])
        assert diff <= ATOL, f"batch element {b} alone differs from in-batch by {diff:.3g}"


def check_head_equivariance(attn, q, k, v, *, causal, key_padding_mask=None, seed=0):
    """Permuting heads of q, k, v permutes the output heads the same way."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(q.shape[1], generator=gen)
    base = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    out = attn(q[:, perm], k[:, perm], v[:, perm], causal=causal, key_padding_mask=key_padding_mask)
    diff = _max_diff(out, base[:, perm])
    assert diff <= ATOL, f"head permutation is not equivariant (diff {diff:.3g})"


def check_head_independence(attn, q, k, v, *, causal, key_padding_mask=None, seed=0):
    """Changing the inputs of head 0 changes no other head's output."""
    gen = torch.Generator().manual_seed(seed)
    base = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    changed = [t.clone() for t in (q, k, v)]
    for t in changed:
        t[:, 0] = torch.randn(t[:, 0].shape, generator=gen, dtype=t.dtype)
    out = attn(*changed, causal=causal, key_padding_mask=key_padding_mask)
    diff = _max_diff(out[:, 1:], base[:, 1:])
    assert diff <= ATOL, f"changing head 0 moved other heads' outputs by {diff:.3g}"


def check_permutation_equivariance(attn, q, k, v, *, key_padding_mask=None, seed=0):
    """Bidirectional exact attention: permuting keys/values (with their mask) leaves the
    output unchanged, permuting queries permutes the output."""
    gen = torch.Generator().manual_seed(seed)
    length = k.shape[2]
    pk = torch.randperm(length, generator=gen)
    pq = torch.randperm(q.shape[2], generator=gen)
    base = attn(q, k, v, causal=False, key_padding_mask=key_padding_mask)
    m = None if key_padding_mask is None else key_padding_mask[:, pk]
    out = attn(q[:, :, pq], k[:, :, pk], v[:, :, pk], causal=False, key_padding_mask=m)
    diff = _max_diff(out, base[:, :, pq])
    assert diff <= ATOL, f"not permutation-equivariant (diff {diff:.3g})"


def check_large_magnitude(attn, q, k, v, *, causal):
    out = attn(q, k, v, causal=causal, key_padding_mask=None)
    assert bool(torch.isfinite(out).all()), (
        f"non-finite output for inputs of magnitude {float(q.abs().max()):.3g}"
    )


def bad_inputs(q, k, v, mask):
    """(label, args, kwargs, exception type, word the message must contain)."""
    nan_q = q.clone()
    nan_q[0, 0, 0, 0] = float("nan")
    inf_v = v.clone()
    inf_v[-1, -1, -1, -1] = float("inf")
    return [
        ("q rank 3", (q[0], k, v), {}, ValueError, "q"),
        ("k rank 5", (q, k[None], v), {}, ValueError, "k"),
        ("batch mismatch", (q, k[:1], v[:1]), {}, ValueError, "batch"),
        ("head dim mismatch", (q, k[..., :-1], v), {}, ValueError, "dim"),
        ("k/v length mismatch", (q, k, v[:, :, :-1]), {}, ValueError, "length"),
        ("NaN in q", (nan_q, k, v), {}, ValueError, "q"),
        ("Inf in v", (q, k, inf_v), {}, ValueError, "v"),
        ("empty batch", (q[:0], k[:0], v[:0]), {}, ValueError, "batch"),
        ("integer dtype", (q.long(), k.long(), v.long()), {}, TypeError, "q"),
        ("mixed dtypes", (q, k.float(), v), {}, TypeError, "dtype"),
        ("not a tensor", (q.tolist(), k, v), {}, TypeError, "q"),
        (
            "mask wrong shape",
            (q, k, v),
            {"key_padding_mask": mask[:, :-1]},
            ValueError,
            "key_padding_mask",
        ),
        (
            "mask not bool",
            (q, k, v),
            {"key_padding_mask": mask.float()},
            TypeError,
            "key_padding_mask",
        ),
    ]


def check_bad_inputs(attn, q, k, v, mask, *, causal):
    failures = []
    for label, args, kwargs, exc_type, word in bad_inputs(q, k, v, mask):
        try:
            attn(*args, causal=causal, **kwargs)
        except exc_type as exc:
            if word not in str(exc):
                failures.append(f"{label}: message {str(exc)!r} does not name {word!r}")
        except Exception as exc:
            failures.append(
                f"{label}: raised {type(exc).__name__} ({exc}), expected {exc_type.__name__}"
            )
        else:
            failures.append(f"{label}: accepted, expected {exc_type.__name__}")
    assert not failures, "; ".join(failures)


def relative_error(out, ref) -> float:
    return float((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-300))
