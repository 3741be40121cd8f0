"""The conformance suite for attention methods, as an installed, public API.

Run it on a method (a registry name, an installed entry point's name, or a
``module:attr`` reference to a ``MethodSpec``)::

    python -m harness conformance --method mypkg.attn:SPEC
    python -m harness conformance --method my_attention --junitxml report.xml

or the whole suite with pytest, on the built-ins plus ``LISA_BENCH_METHODS``::

    pytest --pyargs harness.conformance
    LISA_BENCH_METHODS=mypkg.attn:SPEC pytest --pyargs harness.conformance -k my_attention

Neither needs the repository: everything ships in this package. What it checks is listed in
``docs/adding-a-method.md``; the modules:

* ``checks``: one function per property (``check_causality``, ``check_gradients``, ...)
  and the dtype-adaptive error rule;
* ``requirements``: :func:`entry_problems`, what a registry entry must state;
* ``selection`` and ``pytest_hooks``: how tests are parametrized over the chosen methods;
* ``workload``: seeded inputs; ``broken``: deliberately broken methods for self-checks;
* ``runner``: :func:`resolve_methods` and :func:`run`, behind the command;
* ``test_*.py``: the suite.

Public names for method authors (importing this package does not import pytest):

* :func:`validate_qkv` — the standard input checks of the q/k/v contract, raising
  TypeError/ValueError naming the bad argument;
* :func:`entry_problems` and ``REQUIRED_FIELDS`` — what a ``MethodSpec`` must state;
* :func:`resolve_methods`, :func:`run` — the conformance command as functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.conformance.requirements import REQUIRED_FIELDS, entry_problems

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["REQUIRED_FIELDS", "entry_problems", "resolve_methods", "run", "validate_qkv"]


def validate_qkv(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    key_padding_mask: Tensor | None = None,
    same_length: bool = False,
    method: str = "attention",
) -> None:
    """Check inputs of the q/k/v contract; return None when they are valid.

    q, k (batch, heads, Lq|Lk, d), v (batch, heads, Lk, dv), floating point, one dtype and
    device, finite, batch >= 1; key_padding_mask None or bool (batch, Lk), True = padded;
    ``causal`` a bool, and Lq == Lk when causal or ``same_length`` (methods that index
    positions). Raises TypeError/ValueError whose message starts with ``method`` and names
    the offending argument (what the suite's bad-input test expects)."""
    from impls.attention._validation import check_attention_inputs

    check_attention_inputs(
        q,
        k,
        v,
        causal=causal,
        key_padding_mask=key_padding_mask,
        same_length=same_length,
        method=method,
    )


def resolve_methods(methods, plugins=()):
    """See :func:`harness.conformance.runner.resolve_methods`."""
    from harness.conformance.runner import resolve_methods as resolve

    return resolve(methods, plugins)


def run(specs, **kwargs) -> int:
    """See :func:`harness.conformance.runner.run`."""
    from harness.conformance.runner import run as run_suite

    return run_suite(specs, **kwargs)
