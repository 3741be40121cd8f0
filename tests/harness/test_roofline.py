"""The roofline columns (docs/roofline.md): a row's place under this machine's measured
peaks, computed by hand here; the peaks themselves (positive, finite, cached per device,
threads and dtype); the table, JSON and plot that carry them; and a bench run whose peaks
cannot be measured, which keeps every row and says why. Nothing here asserts a timing."""

from __future__ import annotations

import json
import math

import pytest
import torch

from harness import measure_peaks as mp
from harness.bench import tables as bench_report
from harness.measure_peaks import Peaks, roofline_fields, with_roofline
from harness.workloads import attention as workload
from impls.costs import Cost

# 100 GFLOP/s and 20 GB/s: the ridge at 5 FLOP/byte
PEAKS = Peaks(100e9, 20e9, "by hand", 2048, 2**28, 0.0)


def test_a_compute_bound_row_by_hand():
    # I = 1e9 / 1e8 = 10 FLOP/byte > 5: compute bound; the least time is 1e9 / 1e11 = 10 ms
    fields = roofline_fields(Cost(1e9, 1e8, 0), 0.02, PEAKS)
    assert fields == pytest.approx(
        {
            "achieved_gflops": 50.0,  # 1e9 FLOPs / 0.02 s
            "achieved_gbps": 5.0,  # 1e8 bytes / 0.02 s
            "arithmetic_intensity": 10.0,
            "roofline_s": 0.01,  # max(1e9 / 1e11, 1e8 / 2e10) = max(0.01, 0.005)
            "roofline_fraction": 0.5,
            "bound": "compute",
        }
    )


def test_a_memory_bound_row_by_hand():
    # I = 0.1 FLOP/byte < 5: memory bound; the least time is 1e9 / 2e10 = 50 ms
    fields = roofline_fields(Cost(1e8, 1e9, 0), 0.25, PEAKS)
    assert fields["bound"] == "memory"
    assert fields["roofline_s"] == pytest.approx(0.05)  # max(1e8 / 1e11, 1e9 / 2e10)
    assert fields["roofline_fraction"] == pytest.approx(0.2)
    assert fields["achieved_gflops"] == pytest.approx(0.4)
    assert fields["achieved_gbps"] == pytest.approx(4.0)
    assert fields["arithmetic_intensity"] == pytest.approx(0.1)
    # at the ridge the two roofs give the same time: compute bound by convention
    ridge = roofline_fields(Cost(5e9, 1e9, 0), 0.1, PEAKS)
    assert ridge["bound"] == "compute" and ridge["roofline_fraction"] == pytest.approx(0.5)
    # the achieved rate over the attainable one is the same fraction
    attainable = min(PEAKS.flops_per_s, 0.1 * PEAKS.bytes_per_s) / 1e9
    assert fields["achieved_gflops"] / attainable == pytest.approx(fields["roofline_fraction"])


def test_without_peaks_or_time_a_row_gets_less():
    rates = roofline_fields(Cost(1e9, 1e8, 0), 0.02, None)
    assert set(rates) == {"achieved_gflops", "achieved_gbps", "arithmetic_intensity"}
    assert roofline_fields(Cost(1e9, 1e8, 0), None, PEAKS) == {}
    assert roofline_fields(Cost(1e9, 1e8, 0), 0.0, PEAKS) == {}
    no_traffic = roofline_fields(Cost(1e9, 0.0, 0), 0.02, PEAKS)
    assert no_traffic["arithmetic_intensity"] is None and no_traffic["bound"] == "compute"
    assert no_traffic["roofline_fraction"] == pytest.approx(0.5)


def test_peaks_round_trip_through_json():
    data = json.loads(json.dumps(PEAKS.as_dict()))
    assert data["gflops"] == 100.0 and data["gbps"] == 20.0
    assert data["ridge_flops_per_byte"] == 5.0
    assert Peaks.from_dict(data) == PEAKS


def _ok_row(**extra):
    return {"method": "m", "L": 1024, "mode": "causal", "pass": "forward", "status": "ok",
            "dtype": "float32", "median_s": 0.02, "q1_s": 0.019, "q3_s": 0.021, "runs": 3,
            "peak_bytes": 2**20, "analytic_bytes": 2**20, "analytic_flops": 1e9,
            "analytic_traffic_bytes": 1e8, **extra}  # fmt: skip


def test_with_roofline_recomputes_and_drops_stale_fields():
    stale = _ok_row(roofline_fraction=9.0, bound="memory", achieved_gflops=1.0)
    row = with_roofline(stale, PEAKS)
    assert row["roofline_fraction"] == pytest.approx(0.5) and row["bound"] == "compute"
    assert row["achieved_gflops"] == pytest.approx(50.0)
    assert stale["roofline_fraction"] == 9.0  # the input is not changed
    bare = with_roofline(stale, None)  # no peaks: rates only, no stale fraction
    assert "roofline_fraction" not in bare and "bound" not in bare
    assert bare["achieved_gbps"] == pytest.approx(5.0)
    skipped = {"method": "m", "L": 1, "status": "skipped (OOM)", "analytic_flops": 1.0}
    assert with_roofline(skipped, PEAKS) == skipped


@pytest.fixture
def quick_peaks(monkeypatch):
    """The real measurement with a smaller time budget, in a fresh cache."""
    monkeypatch.setattr(mp, "BUDGET_S", 0.05)
    mp.clear_cache()
    yield
    mp.clear_cache()


def test_measured_peaks_are_positive_finite_and_cached(quick_peaks):
    threads = torch.get_num_threads()
    first = mp.measure_peaks("cpu", 1, torch.float32)
    assert torch.get_num_threads() == threads  # restored
    for value in (first.flops_per_s, first.bytes_per_s, first.ridge_flops_per_byte):
        assert math.isfinite(value) and value > 0
    assert first.threads == 1 and first.dtype == "float32" and first.device == "cpu"
    assert first.matmul_n >= mp.MATMUL_SIDES["cpu"][0]
    assert first.copy_bytes >= 8 * mp._last_level_cache_bytes() or first.copy_bytes >= 2**28
    assert "matmul" in first.method and "copy" in first.method and first.seconds > 0
    # cached per (device, threads, dtype): the same object, no second measurement
    assert mp.measure_peaks("cpu", 1, "float32") is first
    assert mp.measure_peaks(torch.device("cpu"), 1, "torch.float32") is first
    with pytest.raises(ValueError, match="unknown dtype"):
        mp.measure_peaks("cpu", 1, "float33")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peaks_are_positive_and_finite(quick_peaks):  # pragma: no cover - GPU only
    peaks = mp.measure_peaks("cuda", None, torch.float32)
    assert math.isfinite(peaks.flops_per_s) and peaks.flops_per_s > 0
    assert math.isfinite(peaks.bytes_per_s) and peaks.bytes_per_s > 0
    assert peaks.threads is None and peaks.device.startswith("cuda")


def test_run_case_places_a_measured_row_on_the_roofline():
    plan = workload.make_plan([64], methods=["sdpa"], modes=["causal"], passes=["forward"])
    variant, case = plan.variant("sdpa"), plan.cases[0]
    row = workload.run_case(
        variant, case, timer=lambda fn: [0.5], measure_memory=False, peaks=PEAKS
    )
    cost = workload.analytic_cost(variant, case)
    assert row["status"] == "ok"
    assert row["roofline_fraction"] == pytest.approx(
        roofline_fields(cost, 0.5, PEAKS)["roofline_fraction"]
    )
    assert row["bound"] in ("compute", "memory")
    plain = workload.run_case(variant, case, timer=lambda fn: [0.5], measure_memory=False)
    assert "roofline_fraction" not in plain and plain["achieved_gflops"] > 0


def test_tables_show_rates_and_the_roofline_fraction():
    rows = [with_roofline(_ok_row(method="sdpa", median_s=0.04), PEAKS),
            with_roofline(_ok_row(method="fast"), PEAKS)]  # fmt: skip
    text = bench_report.render_tables(rows)
    header = text.splitlines()[1]
    assert "GFLOP/s" in header and "GB/s" in header and "% roofline" in header
    fast = next(line for line in text.splitlines() if line.startswith("fast"))
    assert "50.0" in fast and "5.00" in fast and "50.0%, compute" in fast and fast.endswith("ok")
    # rows without an analytic cost (the graph family) keep their old columns
    plain = {k: v for k, v in _ok_row().items() if not k.startswith("analytic_")}
    assert "GFLOP/s" not in bench_report.render_tables([plain])
    # a run without peaks: rates, and "-" for the fraction
    no_peaks = bench_report.render_tables([with_roofline(_ok_row(method="x"), None)])
    line = next(line for line in no_peaks.splitlines() if line.startswith("x"))
    assert "50.0" in line and " - " in line
    line = bench_report.render_peaks({"float32": PEAKS.as_dict()})
    assert "100.0 GFLOP/s" in line and "20.0 GB/s" in line and "ridge 5.0" in line
    assert "not measured (boom)" in bench_report.render_peaks({}, "boom")


def test_the_roofline_plot_is_written_and_its_names_do_not_collide(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from harness.bench import plots

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    rows = []
    # eight methods on almost the same point: their names must be moved apart
    for i, method in enumerate(["sdpa", "oracle", "lisa W=16", "lisa W=128", "linear",
                                "performer", "lsh", "my_plugin"]):  # fmt: skip
        for n in (1024, 4096):
            cost = Cost(1e9 * n / 1024, 1e8 * (1 + 0.01 * i), 0)
            rows.append({**_ok_row(method=method, L=n), **roofline_fields(cost, 0.02, PEAKS)})
    rows.append({**_ok_row(method="oracle", L=16384), "status": "skipped (OOM)"})
    path = plots.plot_roofline(rows, {"float32": PEAKS.as_dict()}, tmp_path)
    assert path == tmp_path / "attention-roofline.png"
    assert path.read_bytes()[:4] == b"\x89PNG"
    (fig,) = figures
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    names = [t for t in ax.texts if t.get_text() in {r["method"] for r in rows}]
    assert sorted(t.get_text() for t in names) == sorted({r["method"] for r in rows})
    boxes = [t.get_window_extent(renderer) for t in names]
    for i, a in enumerate(boxes):
        assert not any(a.overlaps(b) for b in boxes[i + 1 :]), names[i].get_text()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "arithmetic intensity" in ax.get_xlabel() and "GFLOP/s" in ax.get_ylabel()
    # no peaks, or no measured row: no plot
    assert plots.plot_roofline(rows, None, tmp_path / "none") is None
    assert plots.plot_roofline(rows[-1:], PEAKS, tmp_path / "none") is None


def _broken_peaks(device, dtypes):
    """Stands in for the worker's peaks task (pickled by reference into the worker)."""
    raise RuntimeError("no peaks on this machine today")


def test_a_run_whose_peaks_fail_keeps_every_row(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from harness.runner import attention_tasks

    monkeypatch.setattr(attention_tasks, "measure_run_peaks", _broken_peaks)
    out = tmp_path / "r.json"
    args = ["bench", "--lengths", "32", "--methods", "sdpa", "--modes", "causal",
            "--passes", "forward", "--repeats", "3", "--output", str(out),
            "--plots-dir", str(tmp_path / "plots"), "--history-dir", str(tmp_path / "h"),
            "--no-progress", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "peaks: not measured (error: RuntimeError: no peaks on this machine today)" in printed
    doc = json.loads(out.read_text())
    assert doc["complete"] and doc["peaks"] == {}
    assert "no peaks on this machine today" in doc["peaks_error"]
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["median_s"] > 0 and row["achieved_gflops"] > 0
    assert "roofline_fraction" not in row and "bound" not in row
    assert not (tmp_path / "plots" / "attention-roofline.png").exists()
    assert (tmp_path / "plots" / "attention-causal-forward.png").exists()
