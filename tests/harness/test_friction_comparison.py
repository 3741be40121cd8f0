"""The "vs previous" comparison of ``python -m harness bench`` on identical reruns (A/A):
false alarms are rare, a 2x change is always marked, and the header states the rule."""

from __future__ import annotations

import random

from harness.bench import tables as bench_report
from harness.workloads.attention import _stats


def _row(index: int, samples: list[float], *, keep_samples: bool = True) -> dict:
    row = {
        "method": f"m{index}",
        "L": 256,
        "mode": "causal",
        "pass": "forward",
        "status": "ok",
        "peak_bytes": 1000,
        **_stats(samples),  # median and quartiles exactly as the timed rows get them
    }
    if keep_samples:
        row["samples_s"] = samples
    return row


def _runs(seed: int, pairs: int, *, scale: float = 1.0, drift: float = 0.0, keep=True):
    """Two runs of ``pairs`` cases: 3 or 5 calls each, per-call noise 1-10% (log-normal),
    optionally a whole-run drift factor (what load or clock changes do between runs); the
    first run's times are multiplied by ``scale``."""
    rng = random.Random(seed)
    current, previous = [], []
    for i in range(pairs):
        sigma, calls = rng.choice([0.01, 0.03, 0.1]), rng.choice([3, 5])
        for run, factor in ((current, scale), (previous, 1.0)):
            shift = rng.lognormvariate(0.0, drift) if drift else 1.0
            samples = [factor * shift * rng.lognormvariate(0.0, sigma) for _ in range(calls)]
            run.append(_row(i, samples, keep_samples=keep))
    return current, previous


def _marked(changes: dict) -> int:
    return sum(1 for c in changes.values() if c["flag"])


def test_identical_reruns_are_rarely_marked():
    for keep in (True, False):  # with samples (U test) and as in old history files
        current, previous = _runs(1, 1000, keep=keep)
        changes = bench_report.compare_runs(current, previous)
        assert len(changes) == 1000
        assert _marked(changes) <= 5, keep  # <= 0.5% of cases (measured: 0)


def test_reruns_with_run_level_drift_are_rarely_marked():
    # every call of a run shifted together by ~5% (log-normal): the old IQR-overlap rule
    # marked about a third of these cases
    current, previous = _runs(2, 1000, drift=0.05)
    assert _marked(bench_report.compare_runs(current, previous)) <= 25  # <= 2.5%


def test_a_2x_change_is_always_marked():
    for seed, keep in ((3, True), (4, False)):
        current, previous = _runs(seed, 300, scale=2.0, keep=keep)
        slower = bench_report.compare_runs(current, previous)
        faster = bench_report.compare_runs(previous, current)
        # every case whose measured spread is at most 5% (per-call noise 1% or 3%)
        quiet = [k for k, r in zip(slower, previous, strict=True) if _rel_noise(r) <= 0.05]
        assert quiet
        assert all(slower[k]["flag"] == "slower" for k in quiet)
        assert all(faster[k]["flag"] == "faster" for k in quiet)


def _rel_noise(row: dict) -> float:
    return (row["q3_s"] - row["q1_s"]) / row["median_s"]


def test_a_2x_change_with_samples_carries_its_p_value():
    rng = random.Random(5)
    old = [rng.lognormvariate(0.0, 0.02) for _ in range(5)]
    new = [2 * rng.lognormvariate(0.0, 0.02) for _ in range(5)]
    (change,) = bench_report.compare_runs([_row(0, new)], [_row(0, old)]).values()
    assert change["flag"] == "slower"
    assert change["p_value"] is not None and change["p_value"] < bench_report.ALPHA
    assert "SLOWER (p=" in change["text"]
    # an old history file without samples: the threshold alone decides, no p-value
    (change,) = bench_report.compare_runs(
        [_row(0, new)], [_row(0, old, keep_samples=False)]
    ).values()
    assert change["flag"] == "slower" and change["p_value"] is None


def test_a_change_below_twenty_percent_is_never_marked():
    old = [1.0, 1.001, 1.002, 1.003, 1.004]
    new = [1.15 * x for x in old]  # fully separated, tiny IQR, but only 15%
    (change,) = bench_report.compare_runs([_row(0, new)], [_row(0, old)]).values()
    assert change["flag"] == ""


def test_comparison_header_states_the_rule():
    current, previous = _runs(6, 3)
    text = bench_report.render_comparison(
        bench_report.compare_runs(current, previous), "2024-01-01T00:00:00"
    )
    assert bench_report.COMPARISON_RULE in " ".join(text.split())
    assert "Mann-Whitney" in text and "20%" in text and "3x the larger relative IQR" in text
