"""Gradients against the oracle identity, for every method that supports backward and
states an ``oracle_reference``.

For each supported mode and dtype, on two seeded inputs (L = 37 unpadded; L = 64 with key
padding when supported), batch 2, heads 2, d = dv = 16: dq, dk and dv of the method
(those in its ``grad_inputs``) under a seeded cotangent, against autograd through its
``oracle_reference`` in float64 on the same rounded inputs, by relative Frobenius error,
within the dtype-adaptive rule (``checks.check_gradients``): at most 2x the error of the
identity evaluated in that dtype, plus 8 eps. Errors go to the error log.
"""

from __future__ import annotations

from harness.conformance.checks import check_gradients
from harness.conformance.selection import per_method_mode
from harness.conformance.workload import MODES, make, padding_mask, qkv

BATCH, HEADS, DIM = 2, 2, 16
CASES = ((37, False), (64, True))  # (length, with key padding)


@per_method_mode(lambda s, m: s.supports_backward and s.oracle_reference is not None)
def test_gradients_match_oracle_identity(spec, mode, error_log):
    causal = MODES[mode]
    attn = make(spec, DIM, HEADS, DIM)
    for dtype in spec.capabilities.dtypes:
        for seed, (length, padded) in enumerate(CASES):
            q, k, v = qkv(BATCH, HEADS, length, DIM, DIM, seed=300 + seed, dtype=dtype)
            mask = None
            if padded and spec.capabilities.key_padding:
                mask = padding_mask(BATCH, length, seed=300 + seed)
            records = check_gradients(
                attn,
                spec.oracle_reference,
                q,
                k,
                v,
                causal=causal,
                key_padding_mask=mask,
                inputs=spec.grad_inputs,
                seed=seed,
            )
            for record in records:
                error_log.record(
                    test="gradient_vs_identity",
                    method=spec.name,
                    mode=mode,
                    dtype=str(dtype),
                    length=length,
                    mask=mask is not None,
                    **record,
                )
