"""The gate's power study: the injected slowdown is exact, and a run reports one row per
configuration from real gate verdicts (no timing is asserted)."""

from __future__ import annotations

import pytest

from harness.regress import power


class _Clock:
    """A fake perf_counter: every read advances 0.001 s; the case advances 1.0 s."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.001
        return self.now


def test_injected_slowdown_spins_factor_minus_one_times_the_call(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(power.time, "perf_counter", clock)

    def fake_case():
        clock.now += 1.0
        return "out"

    monkeypatch.setattr("harness.regress.gate_workload.build_case", lambda case_id: fake_case)
    call = power.injected_case("sdpa@64#3", 3.0)
    start = clock.now
    assert call() == "out"
    assert 3.0 <= clock.now - start <= 3.01  # the call's 1 s, then 2 s of spin
    assert power.injected_case("sdpa@64#0", 1.0) is fake_case  # A/A: the case itself


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="copy number"):
        power.parse_copy_id("sdpa@64")
    with pytest.raises(ValueError, match="factor must be >= 1"):
        power.injected_case("sdpa@64#0", 0.5)
    with pytest.raises(ValueError, match="factors"):
        power.measure_power(["sdpa@64"], factors=(0.9,), workers=(1,), pairs=1)


def test_summary_counts_alarms_and_quiet_trials():
    results = {
        "a#0": {"regression": True, "noise_floor": 0.05, "detectable": 1.2},
        "a#1": {"regression": False, "noise_floor": 0.30, "detectable": 1.9},
        "a#2": {"error": "boom", "error_kind": "error", "side": "head"},
    }
    row = power.summarise(results, 1.3, 2)
    assert (row["trials"], row["alarms"], row["rate"]) == (2, 1, 0.5)
    assert row["quiet_trials"] == 1 and row["quiet_rate"] == 1.0
    assert row["errors"] == ["boom"] and row["median_detectable"] == pytest.approx(1.55)
    low, high = row["rate_95"]
    assert 0 < low < 0.5 < high < 1
    assert "| 2 | x1.3 | 2 | 1 | 50%" in power.power_table([row])


def test_a_real_gate_run_gives_one_row_per_configuration(tmp_path):
    rows = power.measure_power(["sdpa@32"], factors=(1.0,), workers=(1,), pairs=2, rounds=7)
    (row,) = rows
    assert row["factor"] == 1.0 and row["workers_per_side"] == 1
    assert row["trials"] == 2 and not row["errors"]
    assert row["median_noise_floor"] >= 0.05 and row["median_detectable"] > 1.05
