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

Nothing is resolved at import time: plugins are imported only when a caller asks for
methods (:func:`all_methods`, :func:`get_method`, :func:`resolve`), so commands that use no
method keep working whatever ``LISA_BENCH_METHODS`` holds. A bad ``module:attr`` reference
(from the command line or the environment) raises :class:`PluginError`, a ValueError whose
message is one line naming the reference, where it came from and why it failed. A broken
entry point never raises: it is skipped and reported by :func:`entry_point_methods`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import math
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
    "PluginError",
    "PluginTypeError",
    "all_methods",
    "availability",
    "build",
    "builtin_methods",
    "check_request",
    "entry_point_methods",
    "env_refs",
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
    # Gradients: supports_backward says whether autograd works through the method (the
    # conformance suite then compares the gradients w.r.t. ``grad_inputs`` with autograd
    # through ``oracle_reference`` in float64); an input left out of ``grad_inputs`` reaches
    # the output only through a discrete choice (e.g. a code), so neither is compared.
    supports_backward: bool = True
    grad_inputs: tuple[str, ...] = ("q", "k", "v")
    permutation_equivariant: bool = False  # bidirectional output invariant to key order
    head_equivariant: bool = True  # False when heads carry their own state (per-head codebooks)
    availability: Callable[[], tuple[bool, str]] = _always
    source: str = "builtin"
    # cost(impls.costs.CostQuery) -> impls.costs.Cost: analytic FLOPs, compulsory traffic
    # and working bytes of one call; None = the generic estimate from the exponents
    cost: Callable[..., Any] | None = None

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


def _ref_decayed_linear(attn, q, k, v, *, causal, key_padding_mask):
    from impls.attention.linear import elu_feature_map

    i = torch.arange(q.shape[2], device=q.device, dtype=q.dtype)
    lag = (i[:, None] - i[None, :]).clamp_min(0)  # causal: only j <= i is visible
    bias = torch.log(elu_feature_map(q) @ elu_feature_map(k).transpose(-1, -2))
    bias = bias + lag * math.log(attn.gamma)
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
    from reference.lisa import lisa_via_exact_attention

    codes = attn.quantise(k, v)  # (batch, heads, L): each head is one codebook
    return lisa_via_exact_attention(
        q,
        codes,
        attn.key_codewords.to(q.dtype),
        attn.value_codewords.to(q.dtype),
        gamma=attn.gamma,
        causal=causal,
        key_padding_mask=key_padding_mask,
        sum_codebooks=False,
    )


# --------------------------------------------------------------------------------------
# Factories (imports are local so that listing the registry stays cheap).


def _fn_factory(module: str, attr: str):
    def factory(dim: int | None = None, heads: int | None = None):
        return getattr(importlib.import_module(module), attr)

    return factory


def _cost_ref(module: str, attr: str):
    """A method's cost function, imported when first asked (listing stays cheap)."""

    def cost(query):
        return getattr(importlib.import_module(module), attr)(query)

    return cost


def _cls_factory(module: str, attr: str):
    def factory(dim: int, heads: int | None = None, **hp):
        return getattr(importlib.import_module(module), attr)(dim, heads, **hp)

    return factory


def _xformers_availability() -> tuple[bool, str]:
    from impls.attention.xformers_mea import availability as check

    return check()


def _fla_availability() -> tuple[bool, str]:
    from impls.attention.fla_linear import availability as check

    return check()


def _sdpa_backend_availability(name: str):
    def check() -> tuple[bool, str]:
        from impls.attention.sdpa_backends import availability

        return availability(name)

    return check


def _lisa_availability() -> tuple[bool, str]:
    if importlib.util.find_spec("impls.attention.lisa_operator") is None:
        return False, "impls.attention.lisa_operator is missing"
    return True, ""


_HALF_AND_F32 = (torch.float16, torch.bfloat16, torch.float32)
# fla-core's linear-attention kernels: causal, no masks (variable lengths go through
# cu_seqlens), no float64, CUDA only
_FLA_CAPABILITIES = Capabilities(
    bidirectional=False,
    key_padding=False,
    dtypes=_HALF_AND_F32,
    devices=("cuda",),
    same_length=True,
)


def _fused_exact(
    name: str,
    function: str,
    summary: str,
    paper: str,
    capabilities: Capabilities | None = None,
    availability: Callable[[], tuple[bool, str]] = _always,
) -> MethodSpec:
    """An exact attention through a fused kernel (``function``: "module:attr"): the
    oracle's output to dtype rounding, memory linear in L."""
    module, attr = function.split(":")
    return MethodSpec(
        name=name,
        cost=_cost_ref("impls.attention.exact", "fused_exact_cost"),
        factory=_fn_factory(module, attr),
        exact=True,
        summary=summary,
        paper=paper,
        capabilities=capabilities or Capabilities(),
        memory_exponent=1.0,
        oracle_identity="equals the oracle to dtype rounding (always)",
        oracle_reference=_ref_exact,
        permutation_equivariant=True,
        availability=availability,
    )


def builtin_methods() -> tuple[MethodSpec, ...]:
    """The methods that ship with the project."""
    half32 = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    return (
        MethodSpec(
            name="oracle",
            cost=_cost_ref("impls.attention.exact", "oracle_cost"),
            factory=_fn_factory("impls.attention.exact", "oracle_attention"),
            exact=True,
            summary="reference.exact_attention: full score matrix, checked by eye",
            paper="Vaswani et al. 2017",
            oracle_identity="is the oracle",
            oracle_reference=_ref_exact,
            permutation_equivariant=True,
        ),
        _fused_exact(
            "sdpa",
            "impls.attention.sdpa:sdpa_attention",
            "torch.nn.functional.scaled_dot_product_attention",
            "Dao et al. 2022 (flash), Rabe & Staats 2021 (mem-efficient)",
        ),
        _fused_exact(
            "xformers_mea",
            "impls.attention.xformers_mea:xformers_attention",
            "xformers memory_efficient_attention (LowerTriangularMask for causal)",
            "Rabe & Staats 2021",
            Capabilities(dtypes=_HALF_AND_F32, devices=("cuda",)),
            _xformers_availability,
        ),
        _fused_exact(
            "sdpa_flash",
            "impls.attention.sdpa_backends:sdpa_flash_attention",
            "SDPA pinned to its FlashAttention-2 kernel (CUDA, fp16/bf16, no mask)",
            "Dao 2023",
            Capabilities(
                key_padding=False,
                dtypes=(torch.float16, torch.bfloat16),
                devices=("cuda",),
                max_head_dim=256,
            ),
            _sdpa_backend_availability("sdpa_flash"),
        ),
        _fused_exact(
            "sdpa_efficient",
            "impls.attention.sdpa_backends:sdpa_efficient_attention",
            "SDPA pinned to its memory-efficient kernel (CUDA)",
            "Rabe & Staats 2021",
            Capabilities(dtypes=_HALF_AND_F32, devices=("cuda",)),
            _sdpa_backend_availability("sdpa_efficient"),
        ),
        MethodSpec(
            name="lisa_kmeans",
            cost=_cost_ref("impls.attention.lisa_kmeans", "analytic_cost"),
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
            grad_inputs=("q",),  # k, v reach the output only through the argmin codes
            availability=_lisa_availability,
        ),
        MethodSpec(
            name="linear",
            cost=_cost_ref("impls.attention.linear", "analytic_cost"),
            factory=_cls_factory("impls.attention.linear", "LinearAttention"),
            exact=False,
            summary="linear attention, elu+1 features, causal by the chunk-parallel scan "
            "(batched chunk states, prefix over chunks, masked intra-chunk GEMM)",
            paper="Katharopoulos et al. 2020",
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with scale 0 and bias log(phi(q_i).phi(k_j)); "
            "not softmax attention, no budget (error vs softmax recorded only)",
            oracle_reference=_ref_linear,
            hyperparameters={"chunk_size": 64},
        ),
        MethodSpec(
            name="fla_linear",
            cost=_cost_ref("impls.attention.linear", "analytic_cost"),
            factory=_cls_factory("impls.attention.fla_linear", "FlaLinearAttention"),
            exact=False,
            summary="the function of `linear` (elu+1, causal) through flash-linear-"
            "attention's Triton chunk kernels (fla-core chunk_linear_attn; CUDA only)",
            paper="Katharopoulos et al. 2020; Yang et al. 2024 (fla)",
            capabilities=_FLA_CAPABILITIES,
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with scale 0 and bias log(phi(q_i).phi(k_j)) "
            "(the identity of `linear`), to fla's 1e-10 in the denominator",
            oracle_reference=_ref_linear,
            availability=_fla_availability,
        ),
        MethodSpec(
            name="decay_linear",
            cost=_cost_ref("impls.attention.decay_linear", "analytic_cost"),
            factory=_cls_factory("impls.attention.decay_linear", "DecayedLinearAttention"),
            exact=False,
            summary="linear attention (elu+1, causal) with a fixed decay gamma^(i-j), "
            "LISA's recency prior without codebooks; chunk-parallel scan",
            paper="Katharopoulos et al. 2020; Sun et al. 2023 (RetNet)",
            capabilities=Capabilities(bidirectional=False),
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with scale 0 and bias "
            "log(phi(q_i).phi(k_j)) + (i - j) log gamma",
            oracle_reference=_ref_decayed_linear,
            hyperparameters={"gamma": math.exp(-0.1), "chunk_size": 64},
        ),
        MethodSpec(
            name="fla_decay_linear",
            cost=_cost_ref("impls.attention.linear", "analytic_cost"),
            factory=_cls_factory("impls.attention.fla_linear", "FlaDecayedLinearAttention"),
            exact=False,
            summary="linear attention (elu+1, causal) with a fixed decay gamma^(i-j), as "
            "LISA's histogram decays, through fla-core's simple GLA chunk kernels (CUDA only)",
            paper="Sun et al. 2023 (RetNet); Yang et al. 2024 (fla)",
            capabilities=_FLA_CAPABILITIES,
            time_exponent=1.0,
            memory_exponent=1.0,
            oracle_identity="always: the oracle with scale 0 and bias "
            "log(phi(q_i).phi(k_j)) + (i - j) log gamma",
            oracle_reference=_ref_decayed_linear,
            hyperparameters={"gamma": math.exp(-0.1)},
            availability=_fla_availability,
        ),
        MethodSpec(
            name="performer",
            cost=_cost_ref("impls.attention.performer", "analytic_cost"),
            factory=_cls_factory("impls.attention.performer", "PerformerAttention"),
            exact=False,
            summary="FAVOR+ positive orthogonal random features, causal by the "
            "chunk-parallel scan with per-chunk stabiliser levels",
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
            cost=_cost_ref("impls.attention.local_window", "analytic_cost"),
            factory=_cls_factory("impls.attention.local_window", "LocalWindowAttention"),
            exact=False,
            summary="sliding-window attention, |i-j| < window (causal: i-window < j <= i), "
            "blocked: window-sized query blocks against their own and neighbour key blocks",
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
            cost=_cost_ref("impls.attention.lsh", "analytic_cost"),
            factory=_cls_factory("impls.attention.lsh", "LSHAttention"),
            exact=False,
            summary="Reformer-style factorised angular-LSH buckets, bucket-sorted sequence "
            "in chunks (own and previous chunk, window-masked), rounds merged by log-sum-exp",
            paper="Kitaev et al. 2020 (Reformer)",
            capabilities=Capabilities(same_length=True),
            # factorised hashing (levels of <= 16 buckets) is O(L d log L), the sort
            # O(L log L), the chunked attention O(L b d): linear up to log factors
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
            cost=_cost_ref("impls.attention.linformer", "analytic_cost"),
            factory=_cls_factory("impls.attention.linformer", "LinformerAttention"),
            exact=False,
            summary="Linformer with the paper's mean-pooling length projection (E = F), "
            "pooled by segment sums; bidirectional only",
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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class PluginError(ValueError):
    """A ``module:attr`` method reference that cannot be used.

    ``ref``: the reference as given; ``reason``: why it failed (one line); ``origin``: where
    it came from (e.g. ``"LISA_BENCH_METHODS"``), or None. ``str(error)`` is a single line
    naming them, fit to print as ``error: ...`` without a traceback."""

    def __init__(self, ref: Any, reason: str, *, origin: str | None = None) -> None:
        self.ref, self.reason, self.origin = ref, _one_line(reason), origin
        where = f" (from {origin})" if origin else ""
        super().__init__(f"method plugin {ref!r}{where}: {self.reason}")


class PluginTypeError(PluginError, TypeError):
    """The reference names an object that is not a MethodSpec (nor a callable returning
    MethodSpecs); also a TypeError."""


def _as_specs(obj: Any, where: str) -> list[MethodSpec]:
    if isinstance(obj, MethodSpec):
        return [obj]
    if callable(obj) and not isinstance(obj, type):
        try:
            produced = obj()
        except Exception as exc:
            raise ValueError(
                f"{where}: calling it to get a MethodSpec failed: {type(exc).__name__}: {exc}"
            ) from exc
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


def resolve(ref: str, *, origin: str | None = None) -> list[MethodSpec]:
    """MethodSpec(s) named by ``"package.module:attr"`` (an unpublished method).

    Raises :class:`PluginError` (a ValueError; :class:`PluginTypeError`, also a TypeError,
    when the object is not a MethodSpec) naming ``ref`` and ``origin``: a malformed
    reference, a module that fails to import (whatever its import raises), a missing
    attribute, a callable that fails or returns something else."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise PluginError(
            ref, "a method reference must look like 'package.module:attr'", origin=origin
        )
    module_name, attr = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a plugin's import may raise anything
        raise PluginError(
            ref,
            f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}",
            origin=origin,
        ) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise PluginError(
            ref, f"module {module_name!r} has no attribute {attr!r}", origin=origin
        ) from None
    try:
        specs = _as_specs(obj, attr)
    except TypeError as exc:
        raise PluginTypeError(ref, str(exc), origin=origin) from exc
    except ValueError as exc:
        raise PluginError(ref, str(exc), origin=origin) from exc
    return [s.with_source(ref) for s in specs]


def env_refs() -> list[str]:
    """The ``module:attr`` references in ``LISA_BENCH_METHODS`` (comma separated)."""
    return [r.strip() for r in os.environ.get(ENV_VAR, "").split(",") if r.strip()]


def entry_point_methods(
    reserved: Iterable[str] = (),
) -> tuple[list[MethodSpec], list[tuple[str, str]]]:
    """(methods, failures) from the ``lisa_bench.attention`` entry-point group. A broken
    entry point (fails to load, is not a MethodSpec, or defines a name already in
    ``reserved`` or defined by an earlier entry point) is skipped and reported in
    ``failures`` as (name, one-line reason) instead of raising."""
    specs: list[MethodSpec] = []
    failures: list[tuple[str, str]] = []
    taken = set(reserved)
    try:
        group = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # broken distribution metadata
        return specs, [("*", _one_line(f"listing entry points failed: {exc!r}"))]
    for ep in group:
        try:
            found = [
                s.with_source(f"entry point {ep.name} ({ep.value})")
                for s in _as_specs(ep.load(), f"entry point {ep.name!r}")
            ]
            clash = [s.name for s in found if s.name in taken]
            if clash:
                raise ValueError(f"method name {clash[0]!r} is already defined")
        except (Exception, SystemExit) as exc:  # a plugin's import may raise anything
            failures.append((ep.name, _one_line(f"{type(exc).__name__}: {exc}")))
            continue
        taken.update(s.name for s in found)
        specs += found
    return specs, failures


def all_methods(
    extra: Sequence[str] = (), *, entry_points: bool = True, env: bool = True
) -> list[MethodSpec]:
    """Built-ins, then entry points, then ``module:attr`` references from ``extra`` and from
    the ``LISA_BENCH_METHODS`` environment variable. Names must be unique.

    Broken entry points are skipped (see :func:`entry_point_methods`); a bad reference in
    ``extra`` or the environment raises :class:`PluginError` naming it and its origin, as
    does a reference defining a name that is already taken."""
    specs = list(builtin_methods())
    if entry_points:
        specs += entry_point_methods(reserved=[s.name for s in specs])[0]
    refs: list[tuple[str, str | None]] = [(r, None) for r in extra]
    if env:
        refs += [(r, ENV_VAR) for r in env_refs()]
    seen: dict[str, str] = {s.name: s.source for s in specs}
    for ref, origin in refs:
        for s in resolve(ref, origin=origin):
            if s.name in seen:
                raise PluginError(
                    ref,
                    f"two methods are named {s.name!r} (from {seen[s.name]} and {s.source})",
                    origin=origin,
                )
            seen[s.name] = s.source
            specs.append(s)
    return specs


def get_method(name_or_ref: str, extra: Sequence[str] = ()) -> MethodSpec:
    """A method by registry name, or by ``module:attr`` reference (PluginError when a
    reference, this one or one in ``extra`` / ``LISA_BENCH_METHODS``, is bad)."""
    if ":" in name_or_ref:
        found = resolve(name_or_ref)
        if len(found) != 1:
            raise ValueError(f"{name_or_ref!r} names {len(found)} methods; expected one")
        return found[0]
    specs = all_methods(extra)
    for s in specs:
        if s.name == name_or_ref:
            return s
    known = ", ".join(s.name for s in specs)
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
    """A fixed-width table of the registry (``tabulate``). By default a few columns (under
    100 characters wide for the built-in methods), with the reason each unavailable method
    cannot run here below the table; ``verbose``: every column of :func:`table_rows`, then
    each method's source, paper, summary and oracle identity."""
    import textwrap

    from tabulate import tabulate

    rows = table_rows(specs)
    if not rows:
        return "(no methods registered)"
    short = ("name", "kind", "modes", "time", "memory", "budget", "prepare", "available")
    cols = list(rows[0]) if verbose else [c for c in short if c in rows[0]]
    cells = [[r[c] for c in cols] for r in rows]
    if not verbose:  # "no: <reason>" -> "no", the reason as a note below
        at = cols.index("available")
        for line in cells:
            line[at] = line[at].partition(":")[0]
    lines = [tabulate(cells, headers=cols, tablefmt="simple", disable_numparse=True)]
    if verbose:
        lines.append("")
        for s in specs:
            lines.append(f"{s.name} [{s.source}] {s.paper}")
            lines.append(f"    {s.summary}")
            lines.append(f"    oracle identity: {s.oracle_identity}")
    else:
        notes = [(r["name"], r["available"]) for r in rows if r["available"] != "yes"]
        if notes:
            lines.append("\nnot available here:")
            lines += [
                textwrap.fill(
                    f"{name}: {why.removeprefix('no: ')}",
                    100,
                    initial_indent="  ",
                    subsequent_indent="    ",
                )
                for name, why in notes
            ]
        lines.append("(-v: every column, sources and oracle identities)")
    return "\n".join(lines)
