"""The method registry: one entry per attention method drives tests, benchmarks and reports.

Each :class:`MethodSpec` states what a method is (name, family, exact or approximate),
what it supports (causal, key padding, dtypes, devices, max head dim), its expected cost
exponents in L, the oracle identity it satisfies and when, its hyperparameters with
defaults (and which one is the accuracy budget), and a factory
``factory(dim, heads, **hyperparameters) -> attn`` where ``attn(q, k, v, *, causal=False,
key_padding_mask=None)`` follows the q/k/v contract of ``reference.attention``.

Methods with learned or random state are nn.Modules. If the entry says ``calibrate=True``
the object has ``prepare(q, k, v, *, key_padding_mask=None)``, which the harness calls once
on a seeded calibration batch drawn from the same workload distribution as the measured
inputs (never on the inputs being attended: a codebook fitted on them would leak future
tokens into past outputs). :func:`build` does both steps.

Sources of methods, in order: the built-ins below; packages that publish entry points in
the group ``lisa_bench.attention`` (the entry point names a MethodSpec, or a callable
returning one or a list of them); ``module:attr`` references, from the command line or
from the environment variable ``LISA_BENCH_METHODS`` (comma separated). A method that
cannot run here stays listed, and :func:`availability` says why.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "Capabilities",
    "MethodSpec",
    "all_methods",
    "availability",
    "build",
    "builtin_methods",
    "check_request",
    "entry_point_methods",
    "format_table",
    "get_method",
    "resolve",
]

ENTRY_POINT_GROUP = "lisa_bench.attention"
ENV_VAR = "LISA_BENCH_METHODS"

ALL_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class Capabilities:
    """What a method accepts. ``same_length``: it needs Lq == Lk even when not causal."""

    causal: bool = True
    bidirectional: bool = True
    key_padding: bool = True
    dtypes: tuple[torch.dtype, ...] = ALL_FLOAT
    devices: tuple[str, ...] = ("cpu", "cuda")
    max_head_dim: int | None = None
    same_length: bool = False


def _always() -> tuple[bool, str]:
    return True, ""


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry (see the module docstring)."""

    name: str
    factory: Callable[..., Callable[..., Tensor]]
    exact: bool
    summary: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    family: str = "attention"
    paper: str = ""
    time_exponent: float = 2.0
    memory_exponent: float = 2.0
    oracle_identity: str = ""
    # oracle_reference(attn, q, k, v, *, causal, key_padding_mask) -> the output the oracle
    # identity predicts, computed with reference.exact_attention; None when there is none.
    oracle_reference: Callable[..., Tensor] | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    budget: str | None = None  # hyperparameter whose growth must reduce the error
    budget_values: tuple[Any, ...] = ()  # small-to-large values used by the conformance suite
    calibrate: bool = False  # needs prepare(q, k, v) on a calibration batch before use
    permutation_equivariant: bool = False  # bidirectional output invariant to key order
    head_equivariant: bool = True  # False when heads carry their own state (per-head codebooks)
    availability: Callable[[], tuple[bool, str]] = _always
    source: str = "builtin"

    def with_source(self, source: str) -> MethodSpec:
        return dataclasses.replace(self, source=source)


# --------------------------------------------------------------------------------------
# Oracle identities (each computes, with the oracle, what the method must return).


def _oracle(q, k, v, **kw):
    from reference.attention import exact_attention

    return exact_attention(q, k, v, **kw)


def _ref_exact(attn, q, k, v, *, causal, key_padding_mask):
    return _oracle(q, k, v, causal=causal, key_padding_mask=key_padding_mask)


def _ref_local(attn, q, k, v, *, causal, key_padding_mask):
    i = torch.arange(q.shape[2], device=q.device)
    band = (i[:, None] - i[None, :]).abs() < attn.window
    bias = torch.zeros(band.shape, dtype=q.dtype, device=q.device).masked_fill(~band, -torch.inf)
    return _oracle(q, k, v, causal=causal, key_padding_mask=key_padding_mask, bias=bias)


def _ref_linear(attn, q, k, v, *, causal, key_padding_mask):
    from impls.attention.linear import elu_feature_map

    bias = torch.log(elu_feature_map(q) @ elu_feature_map(k).transpose(-1, -2))
    return _oracle(q, k, v, causal=causal, key_padding_mask=key_padding_mask, bias=bias, scale=0.0)


def _ref_performer(attn, q, k, v, *, causal, key_padding_mask):
    from impls.attention.performer import performer_log_kernel

    bias = performer_log_kernel(attn, q, k)
    return _oracle(q, k, v, causal=causal, key_padding_mask=key_padding_mask, bias=bias, scale=0.0)


def _ref_lsh(attn, q, k, v, *, causal, key_padding_mask):
    from impls.attention.lsh import lsh_visibility_counts

    counts = lsh_visibility_counts(attn, q, k, causal=causal, key_padding_mask=key_padding_mask)
    return _oracle(q, k, v, bias=torch.log(counts))


def _ref_linformer(attn, q, k, v, *, causal, key_padding_mask):
    from impls.attention.linformer import pooled_keys_values

    pk, pv, counts = pooled_keys_values(k, v, key_padding_mask, attn.proj_len)
    return _oracle(q, pk, pv, bias=torch.log(counts)[:, :, None, :])


def _ref_lisa(attn, q, k, v, *, causal, key_padding_mask):
    codes = attn.quantise(k, v)  # (batch, heads, L)
    head = torch.arange(codes.shape[1], device=codes.device)[None, :, None]
    kq = attn.key_codewords.to(q.dtype)[head, codes]
    vq = attn.value_codewords.to(q.dtype)[head, codes]
    if attn.gamma == 1.0:
        return _oracle(q, kq, vq, causal=causal, key_padding_mask=key_padding_mask)
    import math

    i = torch.arange(q.shape[2], device=q.device, dtype=q.dtype)
    bias = math.log(attn.gamma) * (i[:, None] - i[None, :]).abs()
    return _oracle(q, kq, vq, causal=causal, key_padding_mask=key_padding_mask, bias=bias)


# --------------------------------------------------------------------------------------
# Factories (imports are local so that listing the registry stays cheap).


def _fn_factory(module: str, attr: str):
    def factory(dim: int | None = None, heads: int | None = None):
        return getattr(importlib.import_module(module), attr)

    return factory


def _cls_factory(module: str, attr: str):
    def factory(dim: int, heads: int | None = None, **hp):
        return getattr(importlib.import_module(module), attr)(dim, heads, **hp)

    return factory


def _xformers_availability() -> tuple[bool, str]:
    from impls.attention.xformers_mea import availability as check

    return check()


def _lisa_availability() -> tuple[bool, str]:
    if importlib.util.find_spec("impls.attention.lisa_operator") is None:
        return False, "impls.attention.lisa_operator is missing"
    return True, ""


def builtin_methods() -> tuple[MethodSpec, ...]:
    """The methods that ship with the project."""
    half32 = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    return (
        MethodSpec(
            name="oracle",
            factory=_fn_factory("impls.attention.exact", "oracle_attention"),
            exact=True,
            summary="reference.exact_attention: full score matrix, checked by eye",
            paper="Vaswani et al. 2017",
            oracle_identity="is the oracle",
            oracle_reference=_ref_exact,
            permutation_equivariant=True,
        ),
        MethodSpec(
            name="sdpa",
            factory=_fn_factory("impls.attention.sdpa", "sdpa_attention"),
            exact=True,
            summary="torch.nn.functional.scaled_dot_product_attention",
            paper="Dao et al. 2022 (flash), Rabe & Staats 2021 (mem-efficient)",
            memory_exponent=1.0,
            oracle_identity="equals the oracle to dtype rounding (always)",
            oracle_reference=_ref_exact,
            permutation_equivariant=True,
        ),
        MethodSpec(
            name="xformers_mea",
            factory=_fn_factory("impls.attention.xformers_mea", "xformers_attention"),
            exact=True,
            summary="xformers memory_efficient_attention (LowerTriangularMask for causal)",
            paper="Rabe & Staats 2021",
            capabilities=Capabilities(
                dtypes=(torch.float16, torch.bfloat16, torch.float32), devices=("cuda",)
            ),
            memory_exponent=1.0,
            oracle_identity="equals the oracle to dtype rounding (always)",
            oracle_reference=_ref_exact,
            permutation_equivariant=True,
            availability=_xformers_availability,
        ),
        MethodSpec(
            name="lisa_kmeans",
            factory=_cls_factory("impls.attention.lisa_kmeans", "LisaKMeansAttention"),
            exact=False,
            summary="LISA operator over k-means codes of [k;v] (one codebook per head, "
            "fitted on a calibration batch by prepare())",
            paper="Wu et al., WWW 2021",
            capabilities=Capabilities(dtypes=half32, same_length=True),
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="gamma=1: equals the oracle on the quantised keys/values "
            "(Kc[code_j], Vc[code_j]); gamma<1: plus bias log(gamma)|l-j|",
            oracle_reference=_ref_lisa,
            hyperparameters={
                "codewords": 64,
                "iters": 20,
                "seed": 0,
                "gamma": 1.0,
                "chunk_size": 256,
            },
            budget="codewords",
            budget_values=(2, 8, 32, 128),
            calibrate=True,
            head_equivariant=False,
            availability=_lisa_availability,
        ),
        MethodSpec(
            name="linear",
            factory=_cls_factory("impls.attention.linear", "LinearAttention"),
            exact=False,
            summary="linear attention, elu+1 features, causal by chunked prefix sums",
            paper="Katharopoulos et al. 2020",
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with scale 0 and bias log(phi(q_i).phi(k_j)); "
            "not softmax attention, no budget (error vs softmax recorded only)",
            oracle_reference=_ref_linear,
            hyperparameters={"chunk_size": 64},
        ),
        MethodSpec(
            name="performer",
            factory=_cls_factory("impls.attention.performer", "PerformerAttention"),
            exact=False,
            summary="FAVOR+ positive orthogonal random features, causal by prefix sums",
            paper="Choromanski et al. 2021",
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with scale 0 and bias log(phi(q_i).phi(k_j)) "
            "for the drawn features; error vs softmax falls as nb_features grows",
            oracle_reference=_ref_performer,
            hyperparameters={"nb_features": 256, "seed": 0, "chunk_size": 64},
            budget="nb_features",
            budget_values=(8, 64, 512),
        ),
        MethodSpec(
            name="local_window",
            factory=_cls_factory("impls.attention.local_window", "LocalWindowAttention"),
            exact=False,
            summary="sliding-window attention, |i-j| < window (causal: i-window < j <= i)",
            paper="Beltagy et al. 2020 (Longformer), local attention",
            capabilities=Capabilities(same_length=True),
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with bias -inf outside the band; exact when "
            "window >= L",
            oracle_reference=_ref_local,
            hyperparameters={"window": 64},
            budget="window",
            budget_values=(2, 8, 32, 64),
        ),
        MethodSpec(
            name="lsh",
            factory=_cls_factory("impls.attention.lsh", "LSHAttention"),
            exact=False,
            summary="Reformer-style angular-LSH buckets, sliding window over the "
            "bucket-sorted sequence, rounds merged by log-sum-exp",
            paper="Kitaev et al. 2020 (Reformer)",
            capabilities=Capabilities(same_length=True),
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with bias log(count_ij) (rounds in which "
            "query i finds key j); exact when bucket_size >= L",
            oracle_reference=_ref_lsh,
            hyperparameters={"n_hashes": 2, "bucket_size": 32, "seed": 0},
            budget="bucket_size",
            budget_values=(2, 8, 64),
        ),
        MethodSpec(
            name="linformer",
            factory=_cls_factory("impls.attention.linformer", "LinformerAttention"),
            exact=False,
            summary="Linformer with mean-pooling length projection; bidirectional only",
            paper="Wang et al. 2020",
            capabilities=Capabilities(causal=False),
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle on block-mean keys/values with bias "
            "log(block count); exact when proj_len >= L",
            oracle_reference=_ref_linformer,
            hyperparameters={"proj_len": 64},
            budget="proj_len",
            budget_values=(2, 8, 32, 64),
        ),
    )


# --------------------------------------------------------------------------------------
# Discovery


def _as_specs(obj: Any, where: str) -> list[MethodSpec]:
    if isinstance(obj, MethodSpec):
        return [obj]
    if callable(obj) and not isinstance(obj, type):
        try:
            produced = obj()
        except Exception as exc:
            raise ValueError(f"{where}: calling it to get a MethodSpec failed: {exc}") from exc
        if isinstance(produced, MethodSpec):
            return [produced]
        if isinstance(produced, Iterable):
            specs = list(produced)
            if specs and all(isinstance(s, MethodSpec) for s in specs):
                return specs
    raise TypeError(
        f"{where} must be a MethodSpec or a callable returning MethodSpec(s), "
        f"got {type(obj).__name__}"
    )


def resolve(ref: str) -> list[MethodSpec]:
    """MethodSpec(s) named by ``"package.module:attr"`` (an unpublished method)."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"method reference must look like 'package.module:attr', got {ref!r}")
    module_name, attr = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for {ref!r}: {exc}") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return [s.with_source(ref) for s in _as_specs(obj, ref)]


def entry_point_methods() -> tuple[list[MethodSpec], list[tuple[str, str]]]:
    """(methods, failures) from the ``lisa_bench.attention`` entry-point group; a broken
    entry point is reported in ``failures`` as (name, reason) instead of raising."""
    specs: list[MethodSpec] = []
    failures: list[tuple[str, str]] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            specs += [
                s.with_source(f"entry point {ep.name} ({ep.value})")
                for s in _as_specs(ep.load(), f"entry point {ep.name!r}")
            ]
        except Exception as exc:
            failures.append((ep.name, f"{type(exc).__name__}: {exc}"))
    return specs, failures


def all_methods(
    extra: Sequence[str] = (), *, entry_points: bool = True, env: bool = True
) -> list[MethodSpec]:
    """Built-ins, then entry points, then ``module:attr`` references from ``extra`` and from
    the ``LISA_BENCH_METHODS`` environment variable. Names must be unique."""
    specs = list(builtin_methods())
    if entry_points:
        specs += entry_point_methods()[0]
    refs = list(extra)
    if env and os.environ.get(ENV_VAR):
        refs += [r.strip() for r in os.environ[ENV_VAR].split(",") if r.strip()]
    for ref in refs:
        specs += resolve(ref)
    seen: dict[str, str] = {}
    for s in specs:
        if s.name in seen:
            raise ValueError(
                f"two methods are named {s.name!r} (from {seen[s.name]} and {s.source})"
            )
        seen[s.name] = s.source
    return specs


def get_method(name_or_ref: str, extra: Sequence[str] = ()) -> MethodSpec:
    """A method by registry name, or by ``module:attr`` reference."""
    if ":" in name_or_ref:
        found = resolve(name_or_ref)
        if len(found) != 1:
            raise ValueError(f"{name_or_ref!r} names {len(found)} methods; expected one")
        return found[0]
    for s in all_methods(extra):
        if s.name == name_or_ref:
            return s
    known = ", ".join(s.name for s in all_methods(extra))
    raise ValueError(f"unknown method {name_or_ref!r}; known: {known}")


# --------------------------------------------------------------------------------------
# Use


def availability(spec: MethodSpec) -> tuple[bool, str]:
    """(True, "") if the method can run on this machine, else (False, reason)."""
    try:
        ok, reason = spec.availability()
    except Exception as exc:  # an availability check must never crash the caller
        return False, f"availability check failed: {type(exc).__name__}: {exc}"
    if ok and not any(d == "cpu" or torch.cuda.is_available() for d in spec.capabilities.devices):
        return False, f"needs one of the devices {spec.capabilities.devices}"
    return bool(ok), reason


def check_request(
    spec: MethodSpec,
    *,
    causal: bool,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    head_dim: int | None = None,
    key_padding: bool = False,
) -> None:
    """Raise ValueError if the method cannot serve this request (the harness calls it before
    building or timing anything), e.g. causal use of a bidirectional-only method."""
    cap = spec.capabilities
    if causal and not cap.causal:
        raise ValueError(
            f"method {spec.name!r} does not support causal attention (bidirectional only)"
        )
    if not causal and not cap.bidirectional:
        raise ValueError(f"method {spec.name!r} supports causal attention only")
    if key_padding and not cap.key_padding:
        raise ValueError(f"method {spec.name!r} does not support key_padding_mask")
    if dtype is not None and dtype not in cap.dtypes:
        raise ValueError(
            f"method {spec.name!r} does not support dtype {dtype}; "
            f"supported: {', '.join(str(d) for d in cap.dtypes)}"
        )
    if device is not None and torch.device(device).type not in cap.devices:
        raise ValueError(
            f"method {spec.name!r} does not run on {torch.device(device).type}; "
            f"supported: {', '.join(cap.devices)}"
        )
    if head_dim is not None and cap.max_head_dim is not None and head_dim > cap.max_head_dim:
        raise ValueError(
            f"method {spec.name!r} supports head dim <= {cap.max_head_dim}, got {head_dim}"
        )


def build(
    spec: MethodSpec,
    dim: int,
    heads: int,
    *,
    calibration: Sequence[Tensor] | None = None,
    calibration_mask: Tensor | None = None,
    **overrides: Any,
) -> Callable[..., Tensor]:
    """Instantiate a method: ``spec.factory(dim, heads, **(defaults | overrides))``, then, for
    ``calibrate=True`` methods, ``prepare(q, k, v)`` on the calibration batch (required)."""
    unknown = set(overrides) - set(spec.hyperparameters)
    if unknown:
        raise ValueError(
            f"method {spec.name!r} has no hyperparameter(s) {sorted(unknown)}; "
            f"known: {sorted(spec.hyperparameters)}"
        )
    hp = {**spec.hyperparameters, **overrides}
    attn = spec.factory(dim, heads, **hp)
    if spec.calibrate:
        if calibration is None:
            raise ValueError(
                f"method {spec.name!r} has learned state: pass calibration=(q, k, v), a seeded "
                "batch from the workload distribution (not the inputs to be attended)"
            )
        q, k, v = calibration
        attn.prepare(q, k, v, key_padding_mask=calibration_mask)
    return attn


def _fmt_dtypes(dtypes: Sequence[torch.dtype]) -> str:
    short = {
        torch.float16: "f16",
        torch.bfloat16: "bf16",
        torch.float32: "f32",
        torch.float64: "f64",
    }
    return ",".join(short.get(d, str(d).replace("torch.", "")) for d in dtypes)


def table_rows(specs: Sequence[MethodSpec]) -> list[dict[str, str]]:
    """One dict of printable columns per method (availability included)."""
    rows = []
    for s in specs:
        ok, reason = availability(s)
        cap = s.capabilities
        modes = "+".join(
            m for m, on in (("causal", cap.causal), ("bidir", cap.bidirectional)) if on
        )
        hp = ", ".join(f"{k}={v}" for k, v in s.hyperparameters.items()) or "-"
        rows.append(
            {
                "name": s.name,
                "family": s.family,
                "kind": "exact" if s.exact else "approx",
                "modes": modes,
                "padding": "yes" if cap.key_padding else "no",
                "dtypes": _fmt_dtypes(cap.dtypes),
                "devices": ",".join(cap.devices),
                "max_d": str(cap.max_head_dim) if cap.max_head_dim else "-",
                "time": f"L^{s.time_exponent:g}",
                "memory": f"L^{s.memory_exponent:g}",
                "budget": s.budget or "-",
                "prepare": "yes" if s.calibrate else "no",
                "hyperparameters": hp,
                "available": "yes" if ok else f"no: {reason}",
            }
        )
    return rows


def format_table(specs: Sequence[MethodSpec], *, verbose: bool = False) -> str:
    """A fixed-width table of the registry; ``verbose`` adds identities and sources."""
    rows = table_rows(specs)
    if not rows:
        return "(no methods registered)"
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in cols))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols).rstrip() for r in rows]
    if verbose:
        lines.append("")
        for s in specs:
            lines.append(f"{s.name} [{s.source}] {s.paper}")
            lines.append(f"    {s.summary}")
            lines.append(f"    oracle identity: {s.oracle_identity}")
    return "\n".join(lines)


def signature_of(spec: MethodSpec) -> str:
    """Human-readable factory signature (for error messages and docs)."""
    try:
        return str(inspect.signature(spec.factory))
    except (TypeError, ValueError):
        return "(...)"
