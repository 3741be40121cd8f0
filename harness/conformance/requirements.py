"""What a registry entry (``impls.registry.MethodSpec``) must state before it is tested.

Required, always (no default in MethodSpec):

* ``name``: a non-empty string (it names the method's tests and leaderboard row);
* ``factory``: a callable ``factory(dim, heads, **hyperparameters) -> attn``;
* ``exact``: a bool (exact methods get the dtype-adaptive error rule, approximate ones the
  error-against-budget test);
* ``summary``: a non-empty one-line description.

Required when another field is given (their defaults are consistent):

* ``oracle_identity``: a non-empty description when ``oracle_reference`` is given;
* ``oracle_reference``: callable or None;
* ``budget``: one of ``hyperparameters``, with ``budget_values`` holding >= 2 values;
* ``grad_inputs``: a non-empty subset of ("q", "k", "v") when ``supports_backward``;
* ``capabilities``: a ``Capabilities`` with at least one mode, dtype and device;
* ``time_exponent``, ``memory_exponent``: positive numbers.

Everything else is optional. :func:`entry_problems` lists what is missing, each message
naming the field.
"""

from __future__ import annotations

import numbers

import torch

__all__ = ["REQUIRED_FIELDS", "entry_problems"]

REQUIRED_FIELDS = ("name", "factory", "exact", "summary")


def _blank(value) -> bool:
    return not isinstance(value, str) or not value.strip()


def entry_problems(spec) -> list[str]:
    """One message per unmet requirement of ``spec`` (module docstring), each starting with
    the field's name; [] when the entry is complete."""
    from impls.registry import Capabilities, MethodSpec

    if not isinstance(spec, MethodSpec):
        return [f"the entry is a {type(spec).__name__}, not an impls.registry.MethodSpec"]
    out = []
    if _blank(spec.name):
        out.append("name: required, a non-empty string")
    if not callable(spec.factory):
        out.append("factory: required, a callable factory(dim, heads, **hyperparameters)")
    if not isinstance(spec.exact, bool):
        out.append(f"exact: required, a bool (got {spec.exact!r})")
    if _blank(spec.summary):
        out.append("summary: required, a non-empty one-line description")
    if spec.oracle_reference is not None:
        if not callable(spec.oracle_reference):
            out.append("oracle_reference: must be a callable or None")
        if _blank(spec.oracle_identity):
            out.append(
                "oracle_identity: required when oracle_reference is given: say in words "
                "what the reference computes and when the method equals it"
            )
    if spec.budget is not None:
        if spec.budget not in spec.hyperparameters:
            out.append(
                f"budget: {spec.budget!r} is not one of the hyperparameters "
                f"{sorted(spec.hyperparameters)}"
            )
        if len(spec.budget_values) < 2:
            out.append("budget_values: required when budget is given, at least 2 values")
    if spec.supports_backward:
        grads = tuple(spec.grad_inputs)
        if not grads or not set(grads) <= {"q", "k", "v"}:
            out.append(
                f"grad_inputs: must be a non-empty subset of ('q', 'k', 'v') when "
                f"supports_backward is True (got {grads!r})"
            )
    cap = spec.capabilities
    if not isinstance(cap, Capabilities):
        out.append("capabilities: must be an impls.registry.Capabilities")
    else:
        if not (cap.causal or cap.bidirectional):
            out.append("capabilities: supports neither causal nor bidirectional attention")
        if not cap.dtypes or not all(
            isinstance(d, torch.dtype) and d.is_floating_point for d in cap.dtypes
        ):
            out.append("capabilities.dtypes: must list at least one floating-point torch dtype")
        if not cap.devices:
            out.append("capabilities.devices: must list at least one device type")
    for field in ("time_exponent", "memory_exponent"):
        value = getattr(spec, field)
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
            out.append(f"{field}: must be a positive number (got {value!r})")
    return out
