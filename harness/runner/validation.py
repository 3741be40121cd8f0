"""Validation before timing: a row is timed only after its output on a small seeded input
passed these checks (``check_attention_row``); otherwise it is "invalid" with the reason,
and its time is never reported.

On an input of ``CHECK_LENGTH`` positions built exactly as the measured inputs are
(``harness.workloads.attention``'s builders, same dims and dtype):

1. **contract**: the output is a tensor of shape (batch, heads, L, dv) for a q/k/v method,
   (batch, L, dv) for the LISA operator rows, in the input dtype;
2. **finite**: no NaN or infinity;
3. **causal leak** (causal mode): every input at positions t > ``CHECK_SPLIT`` is
   replaced by fresh values (keys, values, queries; LISA: query rows and key codes); the
   outputs at positions <= ``CHECK_SPLIT`` must not move by more than
   ``LEAK_TOLERANCE`` x (1 + max |out|). Both outputs compared come from calls after the
   first: on this project's 2-core test machine (Xeon with AMX, torch 2.13 CPU, 2
   threads, loaded) the first float32 exact-attention call of a fresh process returned,
   in about 1 to 5 runs of 100, outputs off by up to 8e-5 (70x its usual float32 error,
   the same values each time) where every later call was exact to rounding;
4. **oracle identity**: ``||out - ref|| / ||ref||`` against what the method's registry
   entry says it computes, evaluated with ``reference.exact_attention`` in float64, must
   be at most ``IDENTITY_TOLERANCE[dtype]``. These bounds are loose on purpose (an exact
   identity in float32 lands near 1e-6): this gate catches a method computing something
   else; the conformance suite applies the strict, dtype-adaptive rule. A method whose
   entry states no identity skips this check, and the row says so.
"""

from __future__ import annotations

import torch

from harness.workloads import attention as workload

__all__ = ["CHECK_LENGTH", "check_attention_row"]

CHECK_LENGTH = 96
CHECK_SPLIT = 40
LEAK_TOLERANCE = 1e-5
IDENTITY_TOLERANCE = {"float32": 1e-3, "float64": 1e-8, "bfloat16": 5e-2, "float16": 1e-2}


def _expected_shape(variant: workload.Variant, leaves) -> tuple[int, ...]:
    if variant.kind == "lisa_operator":
        query, _kc, vc = leaves
        return (query.shape[0], query.shape[2], vc.shape[-1])
    q, _k, v = leaves
    return (*q.shape[:-1], v.shape[-1])


def _perturb_future(call, leaves, split: int, gen: torch.Generator) -> None:
    """Overwrite, in place, every input position after ``split`` (dim -2 of each leaf
    that has a position axis; the LISA rows' key codes along their last axis)."""
    with torch.no_grad():
        for leaf in leaves:
            if leaf.dim() == 4:  # (batch, heads|books, L, d)
                fresh = torch.randn(leaf[..., split + 1 :, :].shape, generator=gen)
                leaf[..., split + 1 :, :] = 3.0 * fresh.to(leaf.dtype)
        codes = getattr(call, "codes", None)
        if codes is not None:
            words = int(codes.max()) + 1
            fresh = torch.randint(0, max(words, 2), codes[..., split + 1 :].shape, generator=gen)
            codes[..., split + 1 :] = (fresh + 1) % max(words, 2)


def check_attention_row(
    variant: workload.Variant, mode: str, device: str = "cpu", seed: int = 0
) -> str | None:
    """None when ``variant`` passes every check in ``mode`` (see the module docstring),
    else the first failure as one line."""
    case = workload.Case(variant.label, CHECK_LENGTH, mode, "forward", device)
    dtype = workload.DTYPES[variant.dtype]
    gen = torch.Generator().manual_seed(seed * 7_919 + 17)
    build = workload._BUILDERS[variant.kind]
    call, leaves = build(variant, case, gen, torch.device(device), dtype, seed)
    with torch.inference_mode():
        out = call()
    if not isinstance(out, torch.Tensor):
        return f"returned {type(out).__name__}, not a tensor"
    want = _expected_shape(variant, leaves)
    if tuple(out.shape) != want:
        return f"output shape {tuple(out.shape)}, expected {want}"
    if out.dtype != dtype:
        return f"output dtype {out.dtype}, expected {dtype} (the input dtype)"
    bad = (~torch.isfinite(out)).sum().item()
    if bad:
        return f"{bad} non-finite output value(s) on a standard-normal input of L={CHECK_LENGTH}"
    if mode == "causal":
        # a second call as the reference, not the first (see the module docstring, 3.)
        with torch.inference_mode():
            before = call()[..., : CHECK_SPLIT + 1, :].double().clone()
        _perturb_future(call, leaves, CHECK_SPLIT, gen)
        with torch.inference_mode():
            after = call()[..., : CHECK_SPLIT + 1, :].double()
        moved = (after - before).abs().max().item()
        scale = 1.0 + before.abs().max().item()
        if not moved <= LEAK_TOLERANCE * scale:
            return (
                f"causal leak: outputs at positions <= {CHECK_SPLIT} moved by {moved:.3g} when "
                f"only later inputs changed"
            )
    identity = workload.errors_vs_oracle(
        variant, workload.Case(variant.label, CHECK_LENGTH, mode, "forward", device), seed=seed
    )["identity"]
    if identity is not None:
        bound = IDENTITY_TOLERANCE.get(variant.dtype, 1e-3)
        if not identity <= bound:
            return f"oracle identity: relative error {identity:.3g} > {bound:g} ({variant.dtype})"
    return None
