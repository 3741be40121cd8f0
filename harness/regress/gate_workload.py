"""The attention scaling workload as the regression gate and ``python -m harness memray``
see it: named forward cases over sequence length L, built from the one definition in
:mod:`harness.workloads.attention` (every available registry method at batch 1, 1 head of
dim 128, and the LISA operator rows ``lisa W=16`` / ``lisa W=128`` with B = 8 codebooks,
dim 128, gamma = exp(-0.1), hard codes; inputs seeded).

``METHODS`` maps a row label to a :class:`Method` whose ``build(L, device, generator)``
returns a no-argument causal forward call (bidirectional for bidirectional-only methods)
and whose ``bytes_needed(L)`` is the analytic working memory. ``build_case`` and
``GATE_CASES`` serve the regression gate: a case id is ``"<method>@<L>"``, optionally
``"<method>@<L>:<mode>:<pass>"`` (e.g. ``"sdpa@1024:bidirectional:forward+backward"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from harness.workloads import attention as workload
from harness.workloads.attention import (
    FULL_LENGTHS,
    QUICK_LENGTHS,
    Case,
    Variant,
)

__all__ = [
    "ALIASES",
    "DEFAULT_LENGTHS",
    "FULL_LENGTHS",
    "GATE_CASES",
    "METHODS",
    "Method",
    "QUICK_LENGTHS",
    "build_case",
    "parse_case_id",
]

DEFAULT_LENGTHS = workload.GRIDS["memory"].lengths
# Labels used before rows came from the registry; still accepted in case ids.
ALIASES = {"exact (oracle)": "oracle"}


@dataclass(frozen=True)
class Method:
    """A forward case family of one row: ``build(L, device, generator) -> call``."""

    name: str
    build: Callable[[int, torch.device, torch.Generator], Callable[[], torch.Tensor]]
    bytes_needed: Callable[[int], int]  # analytic working memory at length L
    params: dict = field(default_factory=dict)
    mode: str = "causal"


def _default_mode(variant: Variant, device: str) -> str:
    return "causal" if variant.mode_error("causal", device) is None else "bidirectional"


def _method(variant: Variant) -> Method:
    mode = _default_mode(variant, "cpu")

    def build(length: int, device: torch.device, g: torch.Generator):
        case = Case(variant.label, length, mode, "forward", torch.device(device).type)
        return workload.prepare(variant, case, seed=g.initial_seed())

    def bytes_needed(length: int) -> int:
        return workload.analytic_bytes(variant, Case(variant.label, length, mode))

    return Method(variant.label, build, bytes_needed, dict(variant.params), mode)


METHODS: dict[str, Method] = {v.label: _method(v) for v in workload.variants("cpu")[0]}


# Cases the regression gate times by default: "<method>@<L>", small enough for a
# pull-request run (each sample is repeated to last >= 20 ms).
GATE_CASES = (
    "exact (oracle)@1024",
    "sdpa@1024",
    "sdpa@4096",
    "lisa W=16@1024",
    "lisa W=16@4096",
    "lisa W=128@4096",
)


def parse_case_id(case_id: str, device: str = "cpu") -> tuple[Variant, Case]:
    """``"<method>@<L>[:<mode>[:<pass>]]"`` -> (row, case); ValueError when unknown."""
    name, _, rest = case_id.rpartition("@")
    length, *tail = rest.split(":")
    name = ALIASES.get(name, name)
    rows = {v.label: v for v in workload.variants(device)[0]}
    if name not in rows or not length.isdigit() or len(tail) > 2:
        raise ValueError(
            f"unknown case {case_id!r}; expected '<method>@<L>[:<mode>[:<pass>]]' with method "
            f"in {sorted(rows) + sorted(ALIASES)}"
        )
    variant = rows[name]
    mode = tail[0] if tail else _default_mode(variant, device)
    pass_ = tail[1] if len(tail) > 1 else "forward"
    if mode not in workload.MODES or pass_ not in workload.PASSES:
        raise ValueError(
            f"case {case_id!r}: mode must be one of {workload.MODES} and pass one of "
            f"{workload.PASSES}"
        )
    why = variant.mode_error(mode, device)
    if why:
        raise ValueError(f"case {case_id!r}: {why}")
    return variant, Case(name, int(length), mode, pass_, device)


def build_case(case_id: str) -> Callable[[], torch.Tensor]:
    """The regression gate's entry point: a case id -> a no-argument call (forward under
    inference mode unless the id asks for forward+backward), on the CPU, seed 0."""
    variant, case = parse_case_id(case_id)
    return workload.prepare(variant, case, seed=0)
