"""The registry-driven attention workload and the bench suite around it: the grid follows
the registry, analytic bytes bound measured peaks (and expose a stray L x L tensor),
skips and OOMs are reported, run-to-run comparison respects noise, the regression gate's
cases still build, results/plots are written, and the CUDA code path runs with
``torch.cuda`` mocked."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch

from harness.bench import tables as bench_report
from harness.cli import main
from harness.regress.gate_workload import GATE_CASES, METHODS, build_case, parse_case_id
from harness.workloads import attention as workload
from harness.workloads import family_module
from impls import registry
from impls.registry import MethodSpec


@pytest.fixture
def one_thread():
    """One torch thread for the measuring tests: on a machine shared with other jobs, two
    threads stall at every parallel region (results do not depend on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_plan_follows_the_registry_and_skips_with_its_reasons():
    plan = workload.make_plan([256, 1024])
    labels = {v.label for v in plan.variants}
    for spec in registry.all_methods():
        ok, reason = registry.availability(spec)
        if ok:
            assert spec.name in labels
        else:
            assert {"method": spec.name, "reason": reason} in plan.skipped_methods
    assert {"lisa W=16", "lisa W=128"} <= labels
    lisa = plan.variant("lisa W=16")
    assert lisa.params["B"] == 8 and lisa.params["gamma"] == pytest.approx(math.exp(-0.1))
    for c in plan.cases:
        v = plan.variant(c.method)
        assert v.mode_error(c.mode, "cpu") is None
    for s in plan.skipped_modes:
        spec = registry.get_method(s["method"])
        refused = "does not support causal|supports causal attention only"
        with pytest.raises(ValueError, match=refused):
            registry.check_request(spec, causal=s["mode"] == "causal")
    per_row = {(c.method, c.mode) for c in plan.cases}
    assert len(plan.cases) == len(per_row) * 2 * 2  # two lengths x two passes
    assert [c.length for c in plan.cases] == sorted(c.length for c in plan.cases)


def test_unknown_methods_modes_and_families_are_refused():
    with pytest.raises(ValueError, match="unknown method"):
        workload.make_plan([256], methods=["nope"])
    with pytest.raises(ValueError, match="unknown mode"):
        workload.make_plan([256], modes=["sideways"])
    module, reason = family_module("graph")
    assert module is not None or "no workload module" in reason
    with pytest.raises(ValueError):
        family_module("nope")


def test_analytic_bytes_bound_the_measured_peak_of_every_row(one_thread):
    pytest.importorskip("memray")
    plan = workload.make_plan([512], passes=["forward"])

    def warm_timer(fn):  # the real timer has called fn before memory is measured
        fn()
        return [1.0]

    for c in plan.cases:
        row = workload.run_case(plan.variant(c.method), c, timer=warm_timer)
        assert row["status"] == "ok", row
        assert 0 < row["peak_bytes"] <= row["analytic_bytes"], row


def test_analytic_bytes_scale_with_the_stated_memory_exponent():
    plan = workload.make_plan([256])
    for v in plan.variants:
        for p in workload.PASSES:
            small = workload.analytic_bytes(v, workload.Case(v.label, 16_384, pass_=p))
            large = workload.analytic_bytes(v, workload.Case(v.label, 65_536, pass_=p))
            growth = math.log(large / small, 4)
            expected = v.spec.memory_exponent if v.spec is not None else 1.0
            assert growth <= expected + 0.05, (v.label, p, growth)
            if v.label == "oracle":  # the score matrices dominate
                assert growth > 1.9, (v.label, p, growth)


def _quadratic_attention(dim=None, heads=None):
    def attn(q, k, v, *, causal=False, key_padding_mask=None):
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # a stray (L, L) tensor
        if causal:
            n = q.shape[2]
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -math.inf)
        return scores.softmax(-1) @ v

    return attn


SNEAKY = MethodSpec(
    name="sneaky_linear",
    factory=_quadratic_attention,
    exact=True,
    summary="claims linear memory, builds the score matrix",
    time_exponent=1.0,
    memory_exponent=1.0,
)


def test_a_stray_square_tensor_overshoots_the_analytic_bound():
    pytest.importorskip("memray")
    variant = workload.Variant("sneaky_linear", "registry", spec=SNEAKY)
    row = workload.run_case(variant, workload.Case("sneaky_linear", 2048), timer=lambda f: [1.0])
    assert row["status"] == "ok"
    assert row["peak_over_analytic"] > 1.5  # what the table and asv's track_ expose


def _failing(message):
    def factory(dim=None, heads=None):
        def attn(q, k, v, *, causal=False, key_padding_mask=None):
            raise RuntimeError(message)

        return attn

    return factory


@pytest.mark.parametrize(
    "message, status",
    [
        ("CUDA out of memory. Tried to allocate 2.00 GiB", "skipped (OOM)"),
        (
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory",
            "skipped (OOM)",
        ),
        ("shape mismatch", "error: RuntimeError: shape mismatch"),
    ],
)
def test_out_of_memory_is_a_skip_and_other_errors_are_reported(message, status):
    spec = MethodSpec(name="boom", factory=_failing(message), exact=True, summary="raises")
    variant = workload.Variant("boom", "registry", spec=spec)
    row = workload.run_case(variant, workload.Case("boom", 64))
    assert row["status"] == status


def test_a_case_that_cannot_fit_is_skipped_before_it_is_built():
    calls = []

    def factory(dim=None, heads=None):
        calls.append(dim)
        return _quadratic_attention()

    spec = MethodSpec(name="big", factory=factory, exact=True, summary="x", memory_exponent=2.0)
    variant = workload.Variant("big", "registry", spec=spec)
    row = workload.run_case(variant, workload.Case("big", 65_536), memory_fraction=1e-6)
    assert row["status"].startswith("skipped (needs ~") and not calls
    oracle = workload.make_plan([256], methods=["oracle"]).variant("oracle")
    need = workload.analytic_bytes(oracle, workload.Case("oracle", 65_536))
    assert need > 64 * 2**30  # the oracle at 65,536 is skipped on any ordinary machine


def test_forward_backward_calls_repeat_the_same_work():
    plan = workload.make_plan([128], methods=["sdpa", "lisa W=16"], passes=["forward+backward"])
    for c in plan.cases:
        fn = workload.prepare(plan.variant(c.method), c)
        first, second = fn(), fn()
        assert first.requires_grad and torch.equal(first.detach(), second.detach())


def test_the_gate_cases_still_build_and_run():
    for case_id in GATE_CASES:
        variant, case = parse_case_id(case_id)
        assert case.pass_ == "forward" and case.mode == "causal"
    out = build_case("exact (oracle)@64")()
    assert out.shape == (1, 1, 64, 128) and not out.requires_grad
    assert build_case("sdpa@64:bidirectional:forward+backward")().requires_grad
    assert METHODS["linformer"].mode == "bidirectional"
    with pytest.raises(ValueError, match="does not support causal"):
        build_case("linformer@64:causal")
    with pytest.raises(ValueError, match="unknown case"):
        build_case("nope@64")


def _row(method="m", median=1.0, q1=0.98, q3=1.02, runs=5, peak=1000, L=256):
    return {
        "method": method,
        "L": L,
        "mode": "causal",
        "pass": "forward",
        "status": "ok",
        "median_s": median,
        "q1_s": q1,
        "q3_s": q3,
        "runs": runs,
        "peak_bytes": peak,
    }


def test_comparison_marks_only_changes_beyond_the_benchmarks_noise():
    old = [_row()]
    same = bench_report.compare_runs([_row(median=1.03, q1=1.0, q3=1.05)], old)
    assert next(iter(same.values()))["flag"] == ""
    slower = bench_report.compare_runs([_row(median=1.3, q1=1.28, q3=1.33)], old)
    assert next(iter(slower.values()))["flag"] == "slower"
    faster = bench_report.compare_runs([_row(median=0.7, q1=0.69, q3=0.72)], old)
    assert next(iter(faster.values()))["flag"] == "faster"
    # a noisy benchmark (IQR 40% of its median) does not flag a 20% change
    noisy_old = [_row(q1=0.8, q3=1.2)]
    noisy = bench_report.compare_runs([_row(median=1.2, q1=1.05, q3=1.35)], noisy_old)
    assert next(iter(noisy.values()))["flag"] == ""
    # too few calls to know the noise: never flagged
    few = bench_report.compare_runs([_row(median=2.0, q1=2.0, q3=2.0, runs=1)], old)
    assert next(iter(few.values()))["flag"] == ""
    mem = bench_report.compare_runs([_row(peak=1500)], old)
    assert next(iter(mem.values()))["memory_flag"] == "more memory"
    assert bench_report.compare_runs([_row(method="other")], old) == {}


def test_summary_fits_exponents_and_finds_the_crossover():
    sizes = [256, 1024, 4096, 16384]
    rows = [_row("sdpa", 1e-9 * n**2, 1e-9 * n**2, 1e-9 * n**2, peak=10 * n, L=n) for n in sizes]
    rows += [_row("fast", 1e-6 * n, 1e-6 * n, 1e-6 * n, peak=10 * n, L=n) for n in sizes]
    summary = bench_report.summarise(rows)["causal/forward"]
    assert summary["sdpa"]["time_exponent"][0] == pytest.approx(2.0)
    assert summary["fast"]["memory_exponent"][0] == pytest.approx(1.0)
    kind, where = summary["fast"]["crossover_vs_baseline"]
    assert kind == "at" and where == pytest.approx(1000, rel=1e-6)
    table = bench_report.render_tables(rows)
    assert "attention — causal, forward" in table and "speed-up vs sdpa" in table


def test_bench_writes_json_plots_and_compares_with_its_previous_run(tmp_path, capsys):
    threads = torch.get_num_threads()
    pytest.importorskip("matplotlib")
    args = [
        "bench",
        "--lengths",
        "32",
        "64",
        "--methods",
        "sdpa",
        "lisa W=16",
        "--modes",
        "causal",
        "--repeats",
        "3",
        "--output",
        str(tmp_path / "r.json"),
        "--plots-dir",
        str(tmp_path / "plots"),
        "--history-dir",
        str(tmp_path / "history"),
        "--no-progress",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    assert torch.get_num_threads() == threads  # restored after the run
    first = json.loads((tmp_path / "r.json").read_text())
    assert first["comparison"]["previous_created"] is None
    assert first["versions"]["torch"] and first["versions"]["pytest-benchmark"]
    assert first["config"]["lengths"] == [32, 64] and first["machine_hash"]
    assert len(first["rows"]) == 2 * 2 * 2  # methods x lengths x passes
    assert all(r["pytest_benchmark"]["rounds"] == r["runs"] == 3 for r in first["rows"])
    # this machine's peaks, measured once in the worker, and every row on its roofline
    assert first["peaks_error"] is None and first["peaks"]["float32"]["gflops"] > 0
    assert first["peaks"]["float32"]["threads"] == 1
    assert all(r["roofline_fraction"] > 0 and r["bound"] for r in first["rows"])
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == [
        "attention-causal-forward-backward.png",
        "attention-causal-forward.png",
        "attention-roofline.png",
    ]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    second = json.loads((tmp_path / "r.json").read_text())
    assert second["comparison"]["previous_created"] == first["created"]
    assert set(second["comparison"]["changes"]) == {bench_report.row_key(r) for r in first["rows"]}
    assert "compared with the previous run on this machine" in printed
    assert "peaks (float32): " in printed and "% roofline" in printed


def test_missing_matplotlib_gives_a_clear_error(monkeypatch, tmp_path):
    import builtins

    from harness.bench import plots

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(plots.PlotsUnavailable, match="pip install matplotlib"):
        plots.plot_rows([_row()], tmp_path)


# --------------------------------------------------------------------------------------
# The CUDA path with torch.cuda mocked: events, synchronisation, max_memory_allocated
# after a reset, free device memory, and the CUDA-only rows.


class _FakeEvent:
    def __init__(self, enable_timing=False):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def elapsed_time(self, other):
        return (other.t - self.t) * 1e3


@pytest.fixture
def fake_cuda(monkeypatch):
    calls = {"synchronize": 0, "reset": 0, "events": 0, "empty_cache": 0}

    def event(enable_timing=False):
        calls["events"] += 1
        return _FakeEvent(enable_timing)

    def count(name, value=None):
        def f(*args, **kwargs):
            calls[name] += 1
            return value

        return f

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Event", event)
    monkeypatch.setattr(torch.cuda, "synchronize", count("synchronize"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", count("reset"))
    monkeypatch.setattr(torch.cuda, "empty_cache", count("empty_cache"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1_000)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 5_000)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr("impls.attention.xformers_mea.availability", lambda: (True, ""))

    real_prepare = workload.prepare

    def cpu_prepare(variant, case, *, seed=0):  # tensors stay on the CPU
        cpu = workload.Case(case.method, case.length, case.mode, case.pass_, "cpu")
        if variant.kind == "registry" and "cpu" not in variant.spec.capabilities.devices:
            return lambda: torch.zeros(1)  # xformers has no CPU kernel
        if variant.kind == "sdpa_flash":
            return lambda: torch.zeros(1)
        return real_prepare(variant, cpu, seed=seed)

    monkeypatch.setattr(workload, "prepare", cpu_prepare)
    return calls


def test_cuda_plan_adds_the_cuda_rows(fake_cuda):
    plan = workload.make_plan([256], device="cuda")
    labels = {v.label for v in plan.variants}
    assert {"xformers_mea", "sdpa flash bf16"} <= labels
    assert all(c.device == "cuda" for c in plan.cases)
    flash = plan.variant("sdpa flash bf16")
    assert flash.dtype == "bfloat16"
    half = workload.analytic_bytes(flash, workload.Case(flash.label, 4096, device="cuda"))
    sdpa = workload.analytic_bytes(plan.variant("sdpa"), workload.Case("sdpa", 4096))
    assert half < sdpa  # 2-byte elements
    assert workload.available_memory_bytes("cuda") == 40 * 2**30


def test_cuda_case_times_with_events_and_reads_max_memory_allocated(fake_cuda):
    plan = workload.make_plan([128], methods=["sdpa"], passes=["forward"], device="cuda")
    row = workload.run_case(plan.variant("sdpa"), plan.cases[0], repeats=3)
    assert row["status"] == "ok" and row["device"] == "cuda"
    assert row["peak_bytes"] == 4_000  # max_memory_allocated after reset minus before
    assert fake_cuda["events"] == 2 * (1 + 3) and fake_cuda["reset"] == 1
    assert fake_cuda["synchronize"] >= 2 * 4 and fake_cuda["empty_cache"] == 1
    assert 0 < row["q1_s"] <= row["median_s"] <= row["q3_s"]


def test_cuda_bench_runs_through_pytest_benchmark(fake_cuda):
    from harness.bench.pytest_suite import BenchPlugin, run_plan
    from harness.runner.isolation import InlineRunner

    plan = workload.make_plan(
        [64], methods=["sdpa", "xformers_mea"], modes=["causal"], passes=["forward"], device="cuda"
    )
    # in this process, where torch.cuda is mocked; validation needs real CUDA tensors
    plugin = BenchPlugin(
        plan, repeats=3, budget_s=1.0, progress=False, runner=InlineRunner(), validate=False
    )
    code, rows = run_plan(plugin)
    assert code == 0 and not plugin.problems
    assert [r["method"] for r in rows] == ["sdpa", "xformers_mea"]
    assert all(r["status"] == "ok" and r["device"] == "cuda" for r in rows)
    assert all(r["peak_bytes"] == 4_000 and r["runs"] == 3 for r in rows)
    assert fake_cuda["events"] == 2 * 2 * (1 + 3)  # warm-up + 3 rounds, 2 events each


def test_the_flash_row_runs_the_flash_backend_and_matches_the_oracle():
    # on the CPU torch has a flash kernel too, so the CUDA-only row's builder is exercised
    flash = workload.Variant("sdpa flash bf16", "sdpa_flash", dtype="bfloat16")
    for mode in workload.MODES:
        case = workload.Case(flash.label, 128, mode)
        assert workload.prepare(flash, case)().dtype == torch.bfloat16
        assert workload.errors_vs_oracle(flash, case)["softmax"] < 2e-2  # bf16 rounding
        backward = workload.Case(flash.label, 128, mode, "forward+backward")
        assert workload.prepare(flash, backward)().requires_grad
