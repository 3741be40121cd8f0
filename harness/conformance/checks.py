"""Property checks, one function per property. Each raises AssertionError (its message
starts with the property and gives the numbers) when ``attn`` violates the property; the
suite calls them for every selected method, and ``test_self_check.py`` calls them on
deliberately broken methods (``harness.conformance.broken``). They raise explicitly, so they
also hold under ``python -O``.

``attn(q, k, v, *, causal, key_padding_mask)`` follows the q/k/v contract: q, k
(batch, heads, L, d), v (batch, heads, L, dv), key_padding_mask (batch, L) bool, True =
padded; output (batch, heads, L, dv). Checks run in float64 where a tolerance is needed:
``ATOL`` absorbs summation-order rounding and nothing else (a real violation moves outputs
by orders of magnitude more).

The dtype-adaptive rule (:func:`dtype_adaptive_bound`, flash-attention's), used for forward
outputs of exact methods and for the gradients of every method that supports backward: in a
dtype, the method may differ from the float64 truth by at most ``K_EXACT`` times what the
oracle (or the method's oracle identity) evaluated in that same dtype differs from it, plus
``EPS_FLOOR`` machine epsilons of the dtype. For gradients in float64 the identity is the
truth itself, so its own error cannot be measured; there the relative error must stay
within ``GRAD_FLOAT64_TOL`` (summation order through a different algorithm, e.g. chunked
prefix sums, and nothing else: a wrong gradient is off by orders of magnitude more).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

ATOL = 1e-10
K_EXACT = 2.0  # at most 2x the error of the oracle in that dtype ...
EPS_FLOOR = 8  # ... plus this many machine epsilons of the dtype
GRAD_FLOAT64_TOL = 1e-10  # relative; the forward oracle identity's float64 tolerance


def require(condition, message: str) -> None:
    """``assert condition, message`` that also holds under ``python -O``."""
    if not condition:
        raise AssertionError(message)


def _max_diff(a, b) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def dtype_adaptive_bound(oracle_error: float, dtype: torch.dtype) -> float:
    """``K_EXACT * oracle_error + EPS_FLOOR * eps(dtype)``: what a method may err by in
    ``dtype`` when the oracle computed in ``dtype`` errs by ``oracle_error`` (both measured
    against the float64 oracle on the same rounded inputs)."""
    return K_EXACT * oracle_error + EPS_FLOOR * torch.finfo(dtype).eps


def relative_error(out, ref) -> float:
    """``|out - ref|_F / |ref|_F`` in float64 (``|out|_F / tiny`` when ref is 0)."""
    return float((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-300))


def check_shape_dtype(attn, q, k, v, *, causal, key_padding_mask=None):
    out = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    expected = (*q.shape[:3], v.shape[-1])
    require(
        tuple(out.shape) == expected, f"contract: output shape {tuple(out.shape)} != {expected}"
    )
    require(out.dtype == q.dtype, f"contract: output dtype {out.dtype} != input dtype {q.dtype}")
    require(
        out.device == q.device,
        f"contract: output device {out.device} != input device {q.device}",
    )
    require(bool(torch.isfinite(out).all()), "contract: output has NaN/Inf for finite inputs")
    return out


def check_causality(attn, q, k, v, positions, *, seed=0, key_padding_mask=None, backward=True):
    """Changing inputs after position l changes no output at or before l, and (when the
    method supports ``backward``) the gradient of outputs <= l with respect to inputs > l
    is exactly zero."""
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
        require(
            diff <= ATOL,
            f"causality: changing inputs after position {pos} moved earlier outputs by {diff:.3g}",
        )
        if not backward:
            continue
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
        out = attn(*leaves, causal=True, key_padding_mask=key_padding_mask)
        cotangent = torch.randn(out[:, :, : pos + 1].shape, generator=gen, dtype=out.dtype)
        (out[:, :, : pos + 1] * cotangent).sum().backward()
        for name, leaf in zip("qkv", leaves, strict=True):
            if leaf.grad is None:
                continue
            future = leaf.grad[:, :, pos + 1 :]
            require(bool(torch.isfinite(leaf.grad).all()), f"causality: grad of {name} has NaN/Inf")
            worst = float(future.abs().max()) if future.numel() else 0.0
            require(
                worst == 0.0,
                f"causality: gradient of outputs <= {pos} w.r.t. {name} after {pos} is "
                f"{worst:.3g}, not 0",
            )


def check_key_padding(attn, q, k, v, mask, *, causal, seed=0, backward=True):
    """Padded keys change nothing; a fully padded row gives zeros (with finite gradients
    when the method supports ``backward``)."""
    gen = torch.Generator().manual_seed(seed)
    base = attn(q, k, v, causal=causal, key_padding_mask=mask)
    require(
        bool(torch.isfinite(base).all()),
        "key padding: output has NaN/Inf (a row whose visible keys are all padded?)",
    )
    pad = mask[:, None, :, None]
    k2 = torch.where(pad, torch.randn(k.shape, generator=gen, dtype=k.dtype) * 5, k)
    v2 = torch.where(pad, torch.randn(v.shape, generator=gen, dtype=v.dtype) * 5, v)
    out = attn(q, k2, v2, causal=causal, key_padding_mask=mask)
    diff = _max_diff(out, base)
    require(diff <= ATOL, f"key padding: changing padded keys/values moved outputs by {diff:.3g}")

    full = mask.clone()
    full[0] = True
    leaves = [t.detach().clone().requires_grad_(backward) for t in (q, k, v)]
    out = attn(*leaves, causal=causal, key_padding_mask=full)
    require(bool(torch.isfinite(out).all()), "key padding: an all-padded row gives NaN/Inf")
    zero_rows = float(out[0].detach().abs().max())
    require(
        zero_rows == 0.0,
        f"key padding: an all-padded row gives {zero_rows:.3g}, expected exact zeros",
    )
    if not backward:
        return
    out.sum().backward()
    for name, leaf in zip("qkv", leaves, strict=True):
        if leaf.grad is not None:
            require(
                bool(torch.isfinite(leaf.grad).all()), f"key padding: grad of {name} has NaN/Inf"
            )


def check_batch_independence(attn, q, k, v, *, causal, key_padding_mask=None):
    """Each batch element's output depends on that element alone."""
    full = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    for b in range(q.shape[0]):
        m = None if key_padding_mask is None else key_padding_mask[b : b + 1]
        one = attn(q[b : b + 1], k[b : b + 1], v[b : b + 1], causal=causal, key_padding_mask=m)
        diff = _max_diff(one[0], full[b])
        require(
            diff <= ATOL,
            f"batch independence: element {b} alone differs from in-batch by {diff:.3g}",
        )


def check_head_equivariance(attn, q, k, v, *, causal, key_padding_mask=None, seed=0):
    """Permuting heads of q, k, v permutes the output heads the same way."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(q.shape[1], generator=gen)
    base = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    out = attn(q[:, perm], k[:, perm], v[:, perm], causal=causal, key_padding_mask=key_padding_mask)
    diff = _max_diff(out, base[:, perm])
    require(diff <= ATOL, f"head equivariance: permuting heads moved outputs by {diff:.3g}")


def check_head_independence(attn, q, k, v, *, causal, key_padding_mask=None, seed=0):
    """Changing the inputs of head 0 changes no other head's output."""
    gen = torch.Generator().manual_seed(seed)
    base = attn(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
    changed = [t.clone() for t in (q, k, v)]
    for t in changed:
        t[:, 0] = torch.randn(t[:, 0].shape, generator=gen, dtype=t.dtype)
    out = attn(*changed, causal=causal, key_padding_mask=key_padding_mask)
    diff = _max_diff(out[:, 1:], base[:, 1:])
    require(diff <= ATOL, f"head independence: changing head 0 moved other heads by {diff:.3g}")


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
    require(diff <= ATOL, f"permutation equivariance: outputs moved by {diff:.3g}")


def check_large_magnitude(attn, q, k, v, *, causal):
    out = attn(q, k, v, causal=causal, key_padding_mask=None)
    require(
        bool(torch.isfinite(out).all()),
        f"large inputs: non-finite output for inputs of magnitude {float(q.abs().max()):.3g}",
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
    require(not failures, "bad inputs: " + "; ".join(failures))


# --------------------------------------------------------------------------------------
# Gradients against the oracle identity


def _grads(fn: Callable[..., Tensor], tensors: Sequence[Tensor], cotangent: Tensor):
    """(output, gradients of <fn(*tensors), cotangent> w.r.t. each tensor; None where the
    output does not depend on it). The product is summed in float64; the cotangent reaches
    ``fn``'s output rounded to its dtype."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad((out.double() * cotangent).sum(), leaves, allow_unused=True)
    return out.detach(), grads


def _grad_error(grad: Tensor | None, truth: Tensor | None, like: Tensor) -> float:
    """Relative Frobenius error of ``grad`` against ``truth`` (None = zeros); 0 when both
    are zero, inf when only the truth is."""
    g = torch.zeros_like(like, dtype=torch.float64) if grad is None else grad.double()
    t = torch.zeros_like(like, dtype=torch.float64) if truth is None else truth.double()
    norm = float(t.norm())
    if norm == 0.0:
        return 0.0 if float(g.norm()) == 0.0 else float("inf")
    return float((g - t).norm()) / norm


def check_gradients(
    attn,
    reference,
    q,
    k,
    v,
    *,
    causal,
    key_padding_mask=None,
    inputs: Sequence[str] = ("q", "k", "v"),
    seed: int = 0,
) -> list[dict]:
    """Gradients of the method against autograd through its oracle identity.

    ``reference(attn, q, k, v, *, causal, key_padding_mask)`` is the method's
    ``oracle_reference``. With a seeded float64 cotangent G of the output's shape
    (batch, heads, L, dv) and the loss <out, G>, for each name in ``inputs`` (a subset of
    "q", "k", "v"):

        truth  = d<reference(q64, k64, v64), G>/dx   float64, on the inputs as given (rounded)
        method = d<attn(q, k, v), G>/dx               in the inputs' dtype
        oracle = d<reference(q, k, v), G>/dx          the identity evaluated in that dtype
        relative_error(method, truth) <= dtype_adaptive_bound(relative_error(oracle, truth))
                                         (float64: <= GRAD_FLOAT64_TOL)

    A method whose output does not depend on a listed input (no gradient) is compared as
    zeros. Raises AssertionError naming every input that fails; returns one record per
    input (``input``, ``method_error``, ``oracle_error``, ``bound``) for the error log."""
    dtype = q.dtype
    gen = torch.Generator().manual_seed(seed)
    shape = (*q.shape[:3], v.shape[-1])
    cotangent = torch.randn(shape, generator=gen, dtype=torch.float64)
    tensors = (q, k, v)

    def method(a, b, c):
        return attn(a, b, c, causal=causal, key_padding_mask=key_padding_mask)

    def identity(a, b, c):
        return reference(attn, a, b, c, causal=causal, key_padding_mask=key_padding_mask)

    _, got = _grads(method, tensors, cotangent)
    _, truth = _grads(identity, [t.double() for t in tensors], cotangent)
    _, own = _grads(identity, tensors, cotangent) if dtype != torch.float64 else (None, truth)
    records, failures = [], []
    for name in inputs:
        i = "qkv".index(name)
        if got[i] is not None:
            require(bool(torch.isfinite(got[i]).all()), f"gradients: d/d{name} has NaN/Inf")
        method_err = _grad_error(got[i], truth[i], tensors[i])
        oracle_err = _grad_error(own[i], truth[i], tensors[i])
        if dtype == torch.float64:
            bound = GRAD_FLOAT64_TOL
        else:
            bound = dtype_adaptive_bound(oracle_err, dtype)
        records.append(
            {"input": name, "method_error": method_err, "oracle_error": oracle_err, "bound": bound}
        )
        if not method_err <= bound:
            missing = " (the method gives no gradient)" if got[i] is None else ""
            rule = (
                f"{GRAD_FLOAT64_TOL:g}"
                if dtype == torch.float64
                else f"{K_EXACT:g} x the identity's own error in {dtype} ({oracle_err:.3g}) "
                f"+ {EPS_FLOOR} eps"
            )
            failures.append(
                f"d/d{name}{missing}: relative error {method_err:.3g} against autograd through "
                f"the oracle identity in float64 > {rule}"
            )
    require(not failures, "gradients: " + "; ".join(failures))
    return records
