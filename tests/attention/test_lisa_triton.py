"""The Triton LISA kernels (impls/attention/lisa_triton.py) under Triton's interpreter, on CPU:
forward equal to the torch operator and to the float64 oracle (reference/lisa.py) to float32
tolerance, gradients (recomputed through the torch operator) likewise, long sequences stay
finite and keep far-away codewords in the log domain, and the dispatch in lisa_operator.

The interpreter must be switched on before triton is first imported in the process (the
language's own helpers are built at import), hence the environment variable below. When
triton was imported without it (or TRITON_INTERPRET=0 is set), the same tests run the
compiled kernels on CUDA tensors if a GPU is present, and are skipped otherwise."""

from __future__ import annotations

import dataclasses
import itertools
import os

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton's first import
pytest.importorskip("triton", reason="triton is not installed (pip install triton / .[gpu])")

import torch  # noqa: E402
from lisa_cases import LisaCase, make_case  # noqa: E402

from impls.attention import lisa_operator, lisa_triton  # noqa: E402
from impls.attention.lisa_operator import lisa_attention  # noqa: E402
from reference.lisa import lisa_reference, lisa_via_exact_attention  # noqa: E402

INTERPRET = lisa_triton.interpreter_active()
# the interpreter runs CPU tensors; without it the compiled kernels need CUDA tensors
DEVICE = "cpu" if INTERPRET else ("cuda" if torch.cuda.is_available() else None)
needs_interpreter = pytest.mark.skipif(not INTERPRET, reason="needs Triton's interpreter")
pytestmark = [
    pytest.mark.skipif(
        DEVICE is None,
        reason="no Triton interpreter (TRITON_INTERPRET=1 must be set before triton's first "
        "import) and no CUDA device",
    ),
    # the interpreter evaluates log(0) = -inf (empty histogram entries) with numpy
    pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter"),
]

F32 = torch.float32
F64 = torch.float64
# float32 against float64: a few ulps of the largest |value| per accumulated term
ATOL, RTOL = 2e-5, 2e-5


def _case(**kw) -> LisaCase:
    """make_case's seeded inputs, on DEVICE."""
    case = make_case(**kw)
    return dataclasses.replace(
        case, **{f.name: getattr(case, f.name).to(DEVICE) for f in dataclasses.fields(case)}
    )


def _codes(case: LisaCase, soft: bool) -> torch.Tensor:
    return case.soft_codes if soft else case.hard_codes


def _run(case: LisaCase, soft: bool, backend: str, **kw) -> torch.Tensor:
    return lisa_attention(
        case.query,
        _codes(case, soft),
        case.key_codewords,
        case.value_codewords,
        backend=backend,
        **kw,
    )


def _oracle(case: LisaCase, soft: bool, **kw) -> torch.Tensor:
    codes = _codes(case, soft)
    return lisa_reference(
        case.query.to(F64),
        codes.to(F64) if soft else codes,
        case.key_codewords.to(F64),
        case.value_codewords.to(F64),
        **kw,
    )


def _forward_cases():
    """Every L, gamma and causal setting, hard and soft codes; B, W, d, the chunk size
    (dividing L or not) and key padding (on in two cases of three) cycle through their
    values so that each meets each code kind."""
    cases = []
    shapes = list(itertools.product((1, 2), (3, 8), (4, 16)))  # (B, W, d)
    chunks = (16, 12, 64, 7)  # 16, 64 divide L = 64; 12 and 7 divide no L > 7
    grid = itertools.product((1, 7, 33, 64), (1.0, 0.9, 0.5), (True, False), (False, True))
    for k, (length, gamma, causal, soft) in enumerate(grid):
        books, words, dim = shapes[k % len(shapes)]
        chunk = chunks[(k // 3) % len(chunks)]
        masked = k % 3 != 2
        cases.append(
            pytest.param(
                length,
                books,
                words,
                dim,
                chunk,
                gamma,
                causal,
                soft,
                masked,
                id=f"L{length}-B{books}-W{words}-d{dim}-C{chunk}-g{gamma}-"
                f"{'causal' if causal else 'bidir'}-{'soft' if soft else 'hard'}"
                f"{'-padded' if masked else ''}",
            )
        )
    return cases


@pytest.mark.parametrize("length,books,words,dim,chunk,gamma,causal,soft,masked", _forward_cases())
def test_forward_matches_torch_operator_and_oracle(
    length, books, words, dim, chunk, gamma, causal, soft, masked
):
    case = _case(
        seed=length * 131 + books * 17 + words * 5 + dim,
        n=2,
        books=books,
        length=length,
        dim=dim,
        words=words,
        dv=5,
        dtype=F32,
    )
    mask = case.mask if masked else None
    kw = dict(gamma=gamma, causal=causal, key_padding_mask=mask, chunk_size=chunk)
    out = _run(case, soft, "triton", **kw)
    assert out.dtype == F32 and out.shape == (2, length, 5)
    torch.testing.assert_close(out, _run(case, soft, "torch", **kw), atol=ATOL, rtol=RTOL)
    oracle = _oracle(case, soft, gamma=gamma, causal=causal, key_padding_mask=mask)
    torch.testing.assert_close(out.to(F64), oracle, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("causal", [True, False])
def test_result_does_not_depend_on_chunk_size(causal):
    case = _case(seed=3, n=1, books=2, length=40, dim=4, words=3, dtype=F32)
    kw = dict(gamma=0.7, causal=causal, key_padding_mask=case.mask)
    results = [_run(case, False, "triton", chunk_size=c, **kw) for c in (3, 16, 512)]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("gamma", [1.0, 0.5, 0.02])
@pytest.mark.parametrize("causal", [True, False])
def test_float64_matches_oracle_to_float64_precision(gamma, causal):
    case = _case(seed=11, n=2, books=2, length=21, dim=4, words=3, dtype=F64)
    kw = dict(gamma=gamma, causal=causal, key_padding_mask=case.mask)
    for soft in (False, True):
        out = _run(case, soft, "triton", chunk_size=8, **kw)
        assert out.dtype == F64
        torch.testing.assert_close(out, _oracle(case, soft, **kw), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_like_the_torch_operator(dtype):
    case = _case(seed=5, n=1, books=2, length=20, dim=4, words=3, dtype=dtype)
    kw = dict(gamma=0.9, causal=True, key_padding_mask=case.mask)
    out = _run(case, False, "triton", **kw)
    assert out.dtype == dtype
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out, _run(case, False, "torch", **kw), atol=eps, rtol=eps)


def test_empty_histograms_give_exact_zeros():
    case = _case(seed=9, n=2, books=2, length=12, dim=4, words=3, dtype=F32)
    mask = torch.zeros(2, 12, dtype=torch.bool, device=DEVICE)
    mask[0] = True  # batch element 0: every key padded
    mask[1, :4] = True  # batch element 1: causal rows 0..3 see only padded keys
    for causal in (True, False):
        out = _run(case, False, "triton", gamma=0.5, causal=causal, key_padding_mask=mask)
        assert bool((out[0] == 0).all())
        if causal:
            assert bool((out[1, :4] == 0).all()) and bool((out[1, 4:] != 0).any())


@pytest.mark.parametrize("causal", [True, False])
def test_overflowing_scores_raise(causal):
    case = _case(seed=7, n=1, books=2, length=9, dim=4, words=3, dtype=F32)
    with pytest.raises(FloatingPointError, match="query, key_codewords"):
        lisa_attention(
            case.query * 1e20,
            case.hard_codes,
            case.key_codewords * 1e20,
            case.value_codewords,
            causal=causal,
            backend="triton",
        )


def test_invalid_input_raises_the_operators_errors():
    case = _case(seed=7, n=1, books=1, length=9, dim=4, words=3, dtype=F32)
    with pytest.raises(ValueError, match="key_codes"):
        lisa_triton.lisa_attention_triton(
            case.query, case.hard_codes + 3, case.key_codewords, case.value_codewords
        )


@pytest.mark.parametrize(
    "soft,causal,gamma", [(False, True, 0.9), (True, False, 0.5), (True, True, 1.0)]
)
def test_gradients_match_torch_operator_and_oracle(soft, causal, gamma):
    case = _case(seed=13, n=2, books=2, length=19, dim=4, words=3, dv=4, dtype=F32)
    kw = dict(gamma=gamma, causal=causal, key_padding_mask=case.mask, chunk_size=5)
    weight = torch.randn(2, 19, 4, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    base = [case.query, _codes(case, soft), case.key_codewords, case.value_codewords]
    grads = {}
    for name in ("triton", "torch", "oracle"):
        dtype = F64 if name == "oracle" else F32
        inputs = [t.to(dtype) if t.is_floating_point() else t for t in base]
        inputs = [t.clone().requires_grad_(t.is_floating_point()) for t in inputs]
        if name == "oracle":
            out = lisa_reference(*inputs, gamma=gamma, causal=causal, key_padding_mask=case.mask)
        else:
            out = lisa_attention(*inputs, backend=name, **kw)
        wanted = [t for t in inputs if t.requires_grad]
        grads[name] = torch.autograd.grad((out * weight.to(dtype)).sum(), wanted)
    for got, torch_grad, oracle_grad in zip(*grads.values(), strict=True):
        torch.testing.assert_close(got, torch_grad, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(got.to(F64), oracle_grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("causal", [True, False])
def test_long_sequence_strong_decay_is_finite_and_matches_torch(causal):
    case = _case(seed=17, n=1, books=1, length=4096, dim=16, words=8, dv=4, dtype=F32)
    kw = dict(gamma=0.5, causal=causal, key_padding_mask=case.mask)
    out = _run(case, False, "triton", **kw)
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out, _run(case, False, "torch", **kw), atol=ATOL, rtol=RTOL)


def test_far_codeword_keeps_its_weight_in_the_log_domain():
    """Codeword 0 is seen only at position 0 but scores 300 above the others: its decayed
    histogram weight 0.5^l underflows float32 after ~150 positions, yet it dominates every
    row up to l ~ 300 / log 2 ~ 433 (exp(300 - l log 2) vs at most 2). A linear-domain state
    would drop it; the log-domain state keeps it (the float64 identity oracle agrees)."""
    length, words = 1024, 4
    codes = torch.randint(1, words, (1, 1, length), generator=torch.Generator().manual_seed(1))
    codes[0, 0, 0] = 0
    query = torch.zeros(1, 1, length, 4)
    query[..., 0] = 300.0
    key_codewords = torch.zeros(1, words, 4)
    key_codewords[0, 0, 0] = 1.0
    value_codewords = torch.randn(1, words, 3, generator=torch.Generator().manual_seed(2))
    args = tuple(t.to(DEVICE) for t in (query, codes, key_codewords, value_codewords))
    kw = dict(gamma=0.5, causal=True, scale=1.0)
    out = lisa_attention(*args, backend="triton", **kw)
    torch.testing.assert_close(out[0, 400], args[3][0, 0], atol=1e-6, rtol=1e-6)
    oracle = lisa_via_exact_attention(
        *(t.to(F64) if t.is_floating_point() else t for t in args), **kw
    )
    # logits near 300 in float32 carry ~300 * 2^-23 absolute error: a 1e-4 relative weight
    torch.testing.assert_close(out.to(F64), oracle, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(
        out, lisa_attention(*args, backend="torch", **kw), atol=1e-3, rtol=1e-3
    )


# ------------------------------------------------------------------------------ dispatch


@needs_interpreter
def test_dispatch_follows_backend_and_environment(monkeypatch):
    cpu = torch.zeros(1, 1, 2, 2)
    monkeypatch.delenv("LISA_BENCH_TRITON", raising=False)
    assert lisa_operator._triton_backend(cpu, "auto") is None  # CPU: torch path
    assert lisa_operator._triton_backend(cpu, "torch") is None
    assert lisa_operator._triton_backend(cpu, "triton") is lisa_triton
    monkeypatch.setenv("LISA_BENCH_TRITON", "interpret")
    assert lisa_operator._triton_backend(cpu, "auto") is lisa_triton
    assert lisa_operator._triton_backend(cpu, "torch") is None
    monkeypatch.setenv("LISA_BENCH_TRITON", "0")
    assert lisa_operator._triton_backend(cpu, "auto") is None
    with pytest.raises(ValueError, match="backend"):
        lisa_operator._triton_backend(cpu, "cuda")


@needs_interpreter
def test_environment_variable_routes_lisa_attention_through_triton(monkeypatch):
    case = _case(seed=21, n=1, books=1, length=5, dim=4, words=3, dtype=F32)
    calls = []
    real = lisa_triton.lisa_attention_triton

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(lisa_triton, "lisa_attention_triton", spy)
    monkeypatch.setenv("LISA_BENCH_TRITON", "interpret")
    _run(case, False, "auto")
    assert calls == [1]
    monkeypatch.setenv("LISA_BENCH_TRITON", "0")
    _run(case, False, "auto")
    assert calls == [1]


def test_cpu_tensors_without_the_interpreter_raise(monkeypatch):
    case = make_case(seed=21, n=1, books=1, length=5, dim=4, words=3, dtype=F32)
    monkeypatch.setattr(lisa_triton, "interpreter_active", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        _run(case, False, "triton")
