"""Methods that misbehave in every way a hostile or buggy submission can: the runner must
turn each into a row with its own status while every other row survives.

Registry entries like any other, used as ``misbehaving_methods:RAISES`` and so on (this
folder is on the test run's import path). The two import-time misbehaviours live in
their own modules: ``misbehaving_import_abort`` and ``misbehaving_import_slow``.
"""

from __future__ import annotations

import os
import time

import torch

from impls.registry import MethodSpec
from reference.attention import exact_attention


def _exact_identity(attn, q, k, v, *, causal, key_padding_mask):
    return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


def raises(q, k, v, *, causal=False, key_padding_mask=None):
    raise RuntimeError("this method always raises")


def hangs(q, k, v, *, causal=False, key_padding_mask=None):
    time.sleep(3600)


def aborts(q, k, v, *, causal=False, key_padding_mask=None):
    os.abort()


def exits(q, k, v, *, causal=False, key_padding_mask=None):
    os._exit(3)


def allocates(q, k, v, *, causal=False, key_padding_mask=None):
    hoard = []
    while True:
        hoard.append(torch.empty(2**26))  # 256 MiB of address space a step


def returns_nan(q, k, v, *, causal=False, key_padding_mask=None):
    return torch.full_like(q, float("nan"))


def peeks(q, k, v, *, causal=False, key_padding_mask=None):
    """Claims causal, attends to everything."""
    return exact_attention(q, k, v, key_padding_mask=key_padding_mask)


def wrong_shape(q, k, v, *, causal=False, key_padding_mask=None):
    return exact_attention(q, k, v, causal=causal)[..., :-1, :]


def prints(q, k, v, *, causal=False, key_padding_mask=None):
    """Correct, but chatty on stdout."""
    print('{"not": "a protocol message"}')
    return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


def _spec(name, fn):
    return MethodSpec(
        name=name,
        factory=lambda dim=None, heads=None: fn,
        exact=True,
        summary=f"misbehaving: {name}",
        oracle_identity="exact softmax attention",
        oracle_reference=_exact_identity,
        time_exponent=2.0,
        memory_exponent=1.0,
    )


RAISES = _spec("bad_raises", raises)
HANGS = _spec("bad_hangs", hangs)
ABORTS = _spec("bad_aborts", aborts)
EXITS = _spec("bad_exits", exits)
ALLOCATES = _spec("bad_allocates", allocates)
RETURNS_NAN = _spec("bad_nan", returns_nan)
PEEKS = _spec("bad_peeks", peeks)
WRONG_SHAPE = _spec("bad_shape", wrong_shape)
PRINTS = _spec("chatty_but_correct", prints)


def sleepy(q, k, v, *, causal=False, key_padding_mask=None):
    """Correct and slow (0.2 s a call, or ``SLEEPY_SECONDS``): gives an interrupt test
    time to land mid-run."""
    time.sleep(float(os.environ.get("SLEEPY_SECONDS", "0.2")))
    return exact_attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


SLEEPY = _spec("slow_but_correct", sleepy)
