"""The attention workload: one definition of the grid that ``nox -s bench``, asv and the
regression gate measure.

Rows (``Variant``):

* every method of the registry (``impls.registry.all_methods()``) that can run on the
  chosen device, batch 1, 1 head of dim 128, float32 (a method that cannot run here is
  listed as skipped with the registry's reason); methods with learned state are built by
  ``impls.registry.build`` with a seeded calibration batch of the workload distribution
  (never the measured inputs);
* the LISA operator rows of the foundation comparison, ``lisa W=16`` and ``lisa W=128``:
  ``impls.attention.lisa.lisa_attention`` with B = 8 codebooks, dim 128, gamma =
  exp(-0.1), hard key codes drawn uniformly;
* on CUDA, ``sdpa flash bf16``: the registry's ``sdpa_flash`` (SDPA restricted to the flash
  backend, which needs a half dtype there) in bfloat16, so the flash kernel is measured and
  not whichever backend SDPA picks; ``sdpa_flash`` itself is skipped in the float32 rows.

Columns (``Case``): sequence length L (quick grid 256, 1,024, 4,096; full grid 256 ..
65,536), mode (causal, bidirectional; a mode the method refuses through
``impls.registry.check_request`` is skipped with its reason) and pass (forward; forward
and backward with gradients w.r.t. every floating input).

Each case carries its analytic working memory (``analytic_bytes``: the bytes a correct
implementation allocates during one call, inputs excluded), so a measured peak far above
it exposes a stray L x L tensor. A case whose analytic need exceeds a fraction of the
available memory is skipped before it is built, and an out-of-memory error while running
is reported as "skipped (OOM)".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from harness.measure import available_memory_bytes, peak_memory_bytes, time_call
from harness.workloads.grids import ERROR_LENGTHS, FULL_LENGTHS, GRIDS, QUICK_LENGTHS, Grid
from impls import registry
from impls.costs import Cost, CostQuery, fallback_cost
from impls.registry import MethodSpec

__all__ = [
    "BASELINE",
    "ORACLE",
    "ERROR_LENGTHS",
    "GRIDS",
    "QUICK_LENGTHS",
    "FULL_LENGTHS",
    "Grid",
    "draw_inputs",
    "MODES",
    "PASSES",
    "Case",
    "Plan",
    "Variant",
    "analytic_bytes",
    "available_memory_bytes",
    "is_oom",
    "errors_vs_oracle",
    "make_plan",
    "prepare",
    "run_case",
    "variants",
]


MODES = ("causal", "bidirectional")
PASSES = ("forward", "forward+backward")
BATCH, HEADS, DIM = 1, 1, 128
BOOKS = 8  # LISA operator rows
GAMMA = math.exp(-0.1)
LISA_WORDS = (16, 128)
CAL_BATCH, CAL_LENGTH, CAL_SEED_OFFSET = 1, 1_024, 1_000_003
BASELINE = "sdpa"  # exact attention every row is compared with (same run)
ORACLE = "oracle"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
INPUT_KINDS = ("gaussian", "vocabulary")
VOCABULARY, VOCABULARY_NOISE, VOCABULARY_TABLE_SEED = 16, 0.05, 7


def draw_inputs(
    kind: str,
    shape: tuple[int, int, int, int],
    seed: int,
    *,
    dtype: torch.dtype = torch.float64,
    value_dim: int | None = None,
) -> list[torch.Tensor]:
    """Seeded q, k of ``shape`` (batch, heads, L, d) and v of (batch, heads, L, dv),
    ``dv = value_dim`` (default d), from one input distribution of the workload:

    * ``gaussian``: independent standard-normal entries (what every timed case uses);
    * ``vocabulary``: each position is one of ``VOCABULARY`` = 16 tokens, drawn uniformly
      per (batch, position), whose q, k and v embeddings (per head, standard normal, from
      a fixed table) are shared by every occurrence, plus N(0, 0.05^2) noise. Repeated
      tokens make attention rows peaked and low-rank: the regime codeword methods aim at.

    Drawn in float64 on the CPU, then cast to ``dtype``."""
    if kind not in INPUT_KINDS:
        raise ValueError(f"kind: expected one of {list(INPUT_KINDS)}, got {kind!r}")
    if len(shape) != 4 or any(int(n) < 1 for n in shape):
        raise ValueError(f"shape: expected (batch, heads, L, d), all >= 1, got {shape!r}")
    batch, heads, length, dim = (int(n) for n in shape)
    value_dim = dim if value_dim is None else int(value_dim)
    widths = (dim, dim, value_dim)
    gen = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        out = [
            torch.randn(batch, heads, length, w, generator=gen, dtype=torch.float64) for w in widths
        ]
    else:
        table = torch.Generator().manual_seed(VOCABULARY_TABLE_SEED)
        emb = [
            torch.randn(heads, VOCABULARY, w, generator=table, dtype=torch.float64) for w in widths
        ]
        ids = torch.randint(0, VOCABULARY, (batch, length), generator=gen)
        out = []
        for e in emb:
            x = e[:, ids].permute(1, 0, 2, 3)  # (batch, heads, L, d)
            noise = torch.randn(x.shape, generator=gen, dtype=torch.float64)
            out.append(x + VOCABULARY_NOISE * noise)
    return [t.to(dtype) for t in out]


@dataclass(frozen=True)
class Variant:
    """One row of the workload: a registry method or a LISA operator setting."""

    label: str
    kind: str  # "registry" | "lisa_operator" | "sdpa_flash"
    spec: MethodSpec | None = None
    words: int | None = None
    dtype: str = "float32"
    params: dict = field(default_factory=dict, compare=False, hash=False)
    time_exponent: float | None = None  # the registry's expected exponents in L
    memory_exponent: float | None = None

    def stripped(self) -> Variant:
        """This row without its registry entry (plain data that pickles): what a parent
        process needs to plan and report, while only the worker holds method code."""
        return replace(self, spec=None)

    def mode_error(self, mode: str, device: str) -> str | None:
        """Why this row cannot run in ``mode`` on ``device`` (None when it can)."""
        if self.spec is None:
            return None
        try:
            registry.check_request(
                self.spec,
                causal=mode == "causal",
                dtype=DTYPES[self.dtype],
                device=device,
                head_dim=DIM,
            )
        except ValueError as error:
            return str(error)
        return None


@dataclass(frozen=True)
class Case:
    """One measured point: a row at one length, mode and pass, on one device."""

    method: str
    length: int
    mode: str = "causal"
    pass_: str = "forward"
    device: str = "cpu"

    @property
    def causal(self) -> bool:
        return self.mode == "causal"

    @property
    def backward(self) -> bool:
        return self.pass_ == "forward+backward"

    @property
    def id(self) -> str:
        return f"{self.method}|{self.mode}|{self.pass_}|L={self.length}"

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "L": self.length,
            "mode": self.mode,
            "pass": self.pass_,
            "device": self.device,
        }


@dataclass
class Plan:
    """The grid to measure, with what was left out and why."""

    variants: list[Variant]
    cases: list[Case]
    skipped_methods: list[dict]  # {"method", "reason"}: cannot run here at all
    skipped_modes: list[dict]  # {"method", "mode", "reason"}: refused by check_request
    sources: list[str] = field(default_factory=list)  # outside references the plan used

    def variant(self, label: str) -> Variant:
        for v in self.variants:
            if v.label == label:
                return v
        raise KeyError(label)


def _lisa_variant(words: int) -> Variant:
    return Variant(
        f"lisa W={words}",
        "lisa_operator",
        words=words,
        params={"B": BOOKS, "W": words, "gamma": GAMMA, "codes": "hard"},
        time_exponent=1.0,
        memory_exponent=1.0,
    )


def variants(
    device: str | torch.device = "cpu", *, extra: Sequence[str] = (), discover: bool = True
) -> tuple[list[Variant], list[dict]]:
    """(rows that can run on ``device``, [{"method", "reason"}] for those that cannot).

    ``extra``: ``module:attr`` references of outside methods; ``discover=False`` takes
    only those beside the built-ins (no entry points, no ``LISA_BENCH_METHODS``): the
    isolated runner resolves every outside source itself, one at a time."""
    device = torch.device(device).type
    rows: list[Variant] = []
    skipped: list[dict] = []
    for spec in registry.all_methods(extra, entry_points=discover, env=discover):
        ok, reason = registry.availability(spec)
        if ok and device not in spec.capabilities.devices:
            ok, reason = False, f"does not run on {device} (devices: {spec.capabilities.devices})"
        if ok and torch.float32 not in spec.capabilities.dtypes:
            ok, reason = False, "does not support float32"
        if not ok:
            skipped.append({"method": spec.name, "reason": reason})
            continue
        rows.append(
            Variant(
                spec.name,
                "registry",
                spec=spec,
                params=dict(spec.hyperparameters),
                time_exponent=spec.time_exponent,
                memory_exponent=spec.memory_exponent,
            )
        )
    rows += [_lisa_variant(w) for w in LISA_WORDS]
    if device == "cuda":
        rows.append(
            Variant(
                "sdpa flash bf16",
                "sdpa_flash",
                dtype="bfloat16",
                params={"backend": "flash"},
                time_exponent=2.0,
                memory_exponent=1.0,
            )
        )
    return rows, skipped


def make_plan(
    lengths: Sequence[int] = QUICK_LENGTHS,
    *,
    methods: Sequence[str] | None = None,
    modes: Sequence[str] = MODES,
    passes: Sequence[str] = PASSES,
    device: str | torch.device = "cpu",
    extra: Sequence[str] = (),
    discover: bool = True,
) -> Plan:
    """The grid: every runnable row x length x supported mode x pass (sorted by length, so
    the short cases run first)."""
    device = torch.device(device).type
    rows, skipped = variants(device, extra=extra, discover=discover)
    if methods is not None:
        known = {v.label for v in rows} | {s["method"] for s in skipped}
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {sorted(known)}")
        rows = [v for v in rows if v.label in methods]
        skipped = [s for s in skipped if s["method"] in methods]
    for name, values, allowed in (("mode", modes, MODES), ("pass", passes, PASSES)):
        bad = [x for x in values if x not in allowed]
        if bad:
            raise ValueError(f"unknown {name}(s) {bad}; known: {list(allowed)}")
    skipped_modes = []
    usable: list[tuple[Variant, str]] = []
    for v in rows:
        for mode in modes:
            why = v.mode_error(mode, device)
            if why is None:
                usable.append((v, mode))
            else:
                skipped_modes.append({"method": v.label, "mode": mode, "reason": why})
    cases = [
        Case(v.label, n, mode, p, device)
        for n in sorted(set(lengths))
        for v, mode in usable
        for p in passes
    ]
    return Plan(rows, cases, skipped, skipped_modes)


# --------------------------------------------------------------------------------------
# Analytic cost: each method states its own (``MethodSpec.cost``, see ``impls.costs``);
# the workload only says which call it makes. An entry without a cost model gets the
# generic estimate from its memory exponent.


def analytic_cost(variant: Variant, case: Case) -> Cost:
    """FLOPs, compulsory traffic and working bytes of one call of ``case``."""
    item = torch.empty((), dtype=DTYPES[variant.dtype]).element_size()
    if variant.kind == "lisa_operator":
        from impls.attention.lisa_operator import operator_cost

        return operator_cost(
            case.length, BOOKS, variant.words, DIM, backward=case.backward, itemsize=item
        )
    query = CostQuery(
        length=case.length,
        dim=DIM,
        heads=HEADS,
        batch=BATCH,
        causal=case.causal,
        backward=case.backward,
        itemsize=item,
        hp=dict(variant.spec.hyperparameters) if variant.spec is not None else {},
    )
    if variant.kind == "sdpa_flash":
        from impls.attention.exact import fused_exact_cost

        return fused_exact_cost(query)
    if variant.spec.cost is not None:
        return variant.spec.cost(query)
    return fallback_cost(query, variant.spec.memory_exponent)


def analytic_bytes(variant: Variant, case: Case) -> int:
    """Expected working bytes of one call of ``case`` (inputs excluded): a measured peak
    far above it exposes a stray (L, L) tensor."""
    return analytic_cost(variant, case).working_bytes


# --------------------------------------------------------------------------------------
# Building a case


def _randn(shape, gen, device, dtype, grad):
    x = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
    return x.requires_grad_(grad)


def _case_seed(seed: int, case: Case) -> int:
    return seed * 1_000_003 + case.length  # same inputs for every method at one length


# built (and calibrated) methods, reused across lengths: key -> (spec, method)
_BUILT: dict[tuple, tuple[MethodSpec, object]] = {}


def build_method(
    spec: MethodSpec,
    device: torch.device,
    dtype: torch.dtype,
    seed: int = 0,
    *,
    inputs: str = "gaussian",
):
    """``impls.registry.build`` with the registry defaults, on ``device``; a method with
    learned state is calibrated on a seeded batch of the workload distribution ``inputs``
    (:func:`draw_inputs`, length ``CAL_LENGTH``, drawn from ``seed`` + an offset, never
    the measured inputs). Built once per (spec object, device, dtype, seed, inputs) and
    reused: building is set-up (random features, k-means), not part of any measured call."""
    key = (spec.name, spec.source, str(device), str(dtype), seed, inputs)
    if key not in _BUILT or _BUILT[key][0] is not spec:
        calibration = None
        if spec.calibrate:
            shape = (CAL_BATCH, HEADS, CAL_LENGTH, DIM)
            drawn = draw_inputs(inputs, shape, seed * 1_000_003 + CAL_SEED_OFFSET, dtype=dtype)
            calibration = [t.to(device) for t in drawn]
        attn = registry.build(spec, DIM, HEADS, calibration=calibration)
        if isinstance(attn, torch.nn.Module):
            attn = attn.to(device)
        _BUILT[key] = (spec, attn)
    return _BUILT[key][1]


def _build_registry(variant: Variant, case: Case, gen, device, dtype, seed):
    attn = build_method(variant.spec, device, dtype, seed)
    q, k, v = (
        _randn((BATCH, HEADS, case.length, DIM), gen, device, dtype, case.backward)
        for _ in range(3)
    )
    call = lambda: attn(q, k, v, causal=case.causal)  # noqa: E731
    call.attn = attn
    return call, (q, k, v)


def _build_lisa(variant: Variant, case: Case, gen, device, dtype, seed):
    from impls.attention.lisa import lisa_attention

    words = variant.words
    query = _randn((BATCH, BOOKS, case.length, DIM), gen, device, dtype, case.backward)
    codes = torch.randint(0, words, (BATCH, BOOKS, case.length), generator=gen).to(device)
    kc = _randn((BOOKS, words, DIM), gen, device, dtype, case.backward)
    vc = _randn((BOOKS, words, DIM), gen, device, dtype, case.backward)

    def call():
        return lisa_attention(query, codes, kc, vc, gamma=GAMMA, causal=case.causal)

    call.codes = codes
    return call, (query, kc, vc)


def _build_sdpa_flash(variant: Variant, case: Case, gen, device, dtype, seed):
    from impls.attention.sdpa_backends import sdpa_flash_attention

    q, k, v = (
        _randn((BATCH, HEADS, case.length, DIM), gen, device, dtype, case.backward)
        for _ in range(3)
    )
    return lambda: sdpa_flash_attention(q, k, v, causal=case.causal), (q, k, v)


_BUILDERS = {
    "registry": _build_registry,
    "lisa_operator": _build_lisa,
    "sdpa_flash": _build_sdpa_flash,
}


def prepare(variant: Variant, case: Case, *, seed: int = 0) -> Callable[[], object]:
    """A no-argument callable running ``case`` once: the forward under inference mode, or
    forward and backward (gradients of every floating input are reset before each call,
    so repeated calls do the same work)."""
    device = torch.device(case.device)
    gen = torch.Generator().manual_seed(_case_seed(seed, case))
    forward, leaves = _BUILDERS[variant.kind](
        variant, case, gen, device, DTYPES[variant.dtype], seed
    )
    if not case.backward:

        def run_forward():
            with torch.inference_mode():
                return forward()

        return run_forward
    grad_gen = torch.Generator().manual_seed(_case_seed(seed, case) + 1)
    with torch.no_grad():
        shape = forward().shape
    grad_out = torch.randn(shape, generator=grad_gen).to(device=device, dtype=DTYPES[variant.dtype])

    def run_forward_backward():
        for leaf in leaves:
            leaf.grad = None
        out = forward()
        out.backward(grad_out)
        return out

    return run_forward_backward


# --------------------------------------------------------------------------------------
# Measuring a case


def is_oom(error: BaseException) -> bool:
    """True for out-of-memory errors (CPU allocators raise RuntimeError mentioning memory)."""
    if isinstance(error, MemoryError):
        return True
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    text = str(error).lower()
    markers = ("out of memory", "can't allocate", "not enough memory", "failed to allocate")
    return isinstance(error, RuntimeError) and any(m in text for m in markers)


def _stats(samples: Sequence[float]) -> dict:
    """Median and quartiles of timed samples (the same rule as ``harness.measure``)."""
    if len(samples) >= 4:
        q1, _, q3 = statistics.quantiles(samples, n=4)
    else:
        q1, q3 = min(samples), max(samples)
    return {"median_s": statistics.median(samples), "q1_s": q1, "q3_s": q3, "runs": len(samples)}


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def run_case(
    variant: Variant,
    case: Case,
    *,
    seed: int = 0,
    memory_fraction: float = 0.5,
    timer: Callable[[Callable[[], object]], Sequence[float] | dict] | None = None,
    repeats: int = 5,
    budget_s: float = 20.0,
    measure_memory: bool = True,
    peaks=None,
) -> dict:
    """Measure one case; returns a JSON-serialisable row whose ``status`` is "ok",
    "skipped (...)" or "error: ...".

    ``timer(fn)`` returns timed samples of ``fn()`` (seconds) or a dict of statistics; by
    default ``harness.measure.time_call`` (CUDA events on CUDA). Peak memory is one extra
    call under ``harness.measure.peak_memory_bytes`` (memray on CPU, max_memory_allocated
    after a reset on CUDA). A measured row carries what its analytic cost achieved
    (``achieved_gflops``, ``achieved_gbps``, ``arithmetic_intensity``) and, given this
    machine's ``peaks`` (``harness.measure_peaks.Peaks``), its place on the roofline
    (``roofline_s``, ``roofline_fraction``, ``bound``; see
    ``harness.measure_peaks.roofline_fields``)."""
    from harness.measure_peaks import roofline_fields

    row = {**case.as_dict(), "params": variant.params, "dtype": variant.dtype}
    cost = analytic_cost(variant, case)
    row.update(cost.as_dict())
    need = cost.working_bytes
    device = torch.device(case.device)
    if need > memory_fraction * available_memory_bytes(device):
        row["status"] = f"skipped (needs ~{_human_bytes(need)})"
        return row
    fn = None
    try:
        fn = prepare(variant, case, seed=seed)
        if timer is None:
            timing = time_call(fn, repeats=repeats, budget_s=budget_s, device=device).as_dict()
        else:
            measured = timer(fn)
            timing = measured if isinstance(measured, dict) else _stats(measured)
        row.update(timing)
        row["peak_bytes"] = peak_memory_bytes(fn, device) if measure_memory else None
    except Exception as error:  # noqa: BLE001 - a benchmark row reports, never crashes
        if is_oom(error):
            row["status"] = "skipped (OOM)"
        else:
            row["status"] = f"error: {type(error).__name__}: {error}"[:300]
        return row
    finally:
        del fn
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row["status"] = "ok"
    # what the analytic cost says this time achieved, and against the machine's peaks
    row.update(roofline_fields(cost, row.get("median_s"), peaks))
    if row.get("peak_bytes"):
        row["peak_over_analytic"] = row["peak_bytes"] / need
    return row


# --------------------------------------------------------------------------------------
# Accuracy at small L (asv track_ benchmarks)


def _rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref))


def errors_vs_oracle(variant: Variant, case: Case, *, seed: int = 0) -> dict[str, float | None]:
    """Relative error ||out - ref|| / ||ref|| of one forward call (the measured inputs)
    against the float64 oracle: ``softmax``, exact softmax attention on the same q, k, v
    (the method's approximation error; None for the LISA operator rows, which take codes
    and not keys); ``identity``, the output the method's oracle identity predicts (its
    implementation error; None when the registry states none). Builds (L, L) matrices:
    small L only."""
    from reference.attention import exact_attention

    device = torch.device(case.device)
    gen = torch.Generator().manual_seed(_case_seed(seed, case))
    forward_case = Case(case.method, case.length, case.mode, "forward", case.device)
    call, leaves = _BUILDERS[variant.kind](
        variant, forward_case, gen, device, DTYPES[variant.dtype], seed
    )
    with torch.inference_mode():
        out = call()
    if variant.kind == "lisa_operator":
        from reference.lisa import lisa_via_exact_attention

        query, kc, vc = (t.double() for t in leaves)
        ref = lisa_via_exact_attention(query, call.codes, kc, vc, gamma=GAMMA, causal=case.causal)
        return {"softmax": None, "identity": _rel_error(out, ref)}
    if variant.kind == "sdpa_flash":
        q, k, v = (t.double() for t in leaves)
        return {
            "softmax": _rel_error(out, exact_attention(q, k, v, causal=case.causal)),
            "identity": None,
        }
    q, k, v = (t.double() for t in leaves)
    errors = {"softmax": _rel_error(out, exact_attention(q, k, v, causal=case.causal))}
    spec = variant.spec
    errors["identity"] = None
    if spec is not None and spec.oracle_reference is not None:
        ref = spec.oracle_reference(call.attn, q, k, v, causal=case.causal, key_padding_mask=None)
        errors["identity"] = _rel_error(out, ref)
    return errors


def error_vs_exact(
    variant: Variant, length: int, inputs: str, *, causal: bool, seed: int = 1
) -> float:
    """Relative Frobenius error ``||out - exact||_F / ||exact||_F`` of a registry row in
    its dtype against ``reference.exact_attention`` in float64, on :func:`draw_inputs`
    ``inputs`` of shape (BATCH, HEADS, length, DIM); a method with learned state is
    calibrated on a separate draw of the same distribution (:func:`build_method`). The
    leaderboard's error column. Builds (L, L) matrices: short L only."""
    from reference.attention import exact_attention

    if variant.kind != "registry":
        raise ValueError(f"variant: expected a registry row, got kind {variant.kind!r}")
    device = torch.device("cpu")
    dtype = DTYPES[variant.dtype]
    attn = build_method(variant.spec, device, dtype, 0, inputs=inputs)
    q, k, v = draw_inputs(inputs, (BATCH, HEADS, length, DIM), seed)
    with torch.inference_mode():
        out = attn(q.to(dtype), k.to(dtype), v.to(dtype), causal=causal)
    return _rel_error(out, exact_attention(q, k, v, causal=causal))
