"""pytest-benchmark underneath ``python -m harness bench``: one parametrized test per case
of a workload plan, timed by ``benchmark.pedantic``.

``run_plan`` runs pytest in-process on this file with :class:`BenchPlugin`, which
parametrizes :func:`test_bench_case` over the plan's cases, shows a progress bar and
collects one result row per case. The file is not under ``tests/`` and not named
``test_*.py``, so the normal test run (``nox -s tests``) never collects it.

What a case measures: one untimed warm-up call, then ``benchmark.pedantic`` rounds of one
call each (between 3 and ``repeats`` rounds; fewer than ``repeats`` when a call takes
longer than ``budget_s / repeats``). Each round's time comes from
``harness.measure`` (``perf_counter`` on the CPU; on CUDA, CUDA events between
synchronisations), and pytest-benchmark's own statistics of the same rounds are kept in
the row under ``pytest_benchmark``. Peak memory is one more call under
``harness.measure.peak_memory_bytes``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from harness.measure import time_once
from harness.workloads import attention as workload

__all__ = ["BenchPlugin", "PLUGIN_KEY", "run_plan", "test_bench_case"]

PLUGIN_KEY = pytest.StashKey["BenchPlugin"]()
MIN_ROUNDS = 3


class BenchPlugin:
    """Feeds a plan to :func:`test_bench_case` and collects its rows."""

    def __init__(
        self,
        plan: workload.Plan,
        *,
        repeats: int = 5,
        budget_s: float = 10.0,
        seed: int = 0,
        memory_fraction: float = 0.5,
        progress: bool = True,
    ):
        self.plan = plan
        self.repeats = repeats
        self.budget_s = budget_s
        self.seed = seed
        self.memory_fraction = memory_fraction
        self.progress = progress
        self.rows: list[dict] = []
        self.problems: list[str] = []
        self._bar = None

    def pytest_configure(self, config):
        config.stash[PLUGIN_KEY] = self

    def pytest_generate_tests(self, metafunc):
        if "bench_case" in metafunc.fixturenames:
            cases = self.plan.cases
            metafunc.parametrize("bench_case", cases, ids=[c.id for c in cases])

    def pytest_collection_finish(self, session):
        if self.progress:
            from tqdm import tqdm

            self._bar = tqdm(total=len(session.items), desc="bench", unit="case", file=sys.stderr)

    def pytest_runtest_logstart(self, nodeid, location):
        if self._bar is not None:
            self._bar.set_postfix_str(nodeid.partition("[")[2].rstrip("]")[:60])

    def pytest_collectreport(self, report):
        if report.failed:
            self.problems.append(f"collection failed: {report.longreprtext}")

    def pytest_runtest_logreport(self, report):
        if report.failed and report.when != "call":
            self.problems.append(f"{report.nodeid} ({report.when}): {report.longreprtext}")
        if report.when == "teardown" and self._bar is not None:
            self._bar.update(1)

    def pytest_sessionfinish(self, session):
        if self._bar is not None:
            self._bar.close()


def _pedantic_timer(benchmark, plugin: BenchPlugin, device: torch.device):
    def timer(fn) -> list[float]:
        warm = time_once(fn, device)
        fit = int(plugin.budget_s / max(warm, 1e-9))
        rounds = max(1, min(plugin.repeats, max(MIN_ROUNDS, fit)))
        samples: list[float] = []
        benchmark.pedantic(
            lambda: samples.append(time_once(fn, device)),
            rounds=rounds,
            iterations=1,
            warmup_rounds=0,
        )
        return samples

    return timer


def test_bench_case(benchmark, bench_case, request):
    """Measure one case of the plan (time through pytest-benchmark, peak memory, analytic
    bytes) and hand its row to the plugin."""
    plugin = request.config.stash[PLUGIN_KEY]
    variant = plugin.plan.variant(bench_case.method)
    device = torch.device(bench_case.device)
    row = workload.run_case(
        variant,
        bench_case,
        seed=plugin.seed,
        memory_fraction=plugin.memory_fraction,
        timer=_pedantic_timer(benchmark, plugin, device),
    )
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and row["status"] == "ok":
        row["pytest_benchmark"] = {
            k: getattr(stats, k) for k in ("min", "max", "mean", "median", "q1", "q3", "rounds")
        }
    plugin.rows.append(row)
    if row["status"].startswith("skipped"):
        pytest.skip(row["status"])
    if row["status"] != "ok":
        pytest.fail(row["status"], pytrace=False)


def run_plan(plugin: BenchPlugin, pytest_args: Sequence[str] = ()) -> tuple[int, list[dict]]:
    """Run the plan through pytest + pytest-benchmark in this process.

    Returns (pytest exit code, rows in plan order). pytest's own terminal output is off
    (the caller prints the tables); collection or set-up failures are in
    ``plugin.problems``."""
    args = [
        str(Path(__file__).resolve()),
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        "-s",
        "-o",
        "addopts=",
        *pytest_args,
    ]
    code = pytest.main(args, plugins=[plugin])
    order = {c.id: i for i, c in enumerate(plugin.plan.cases)}

    def key(row):
        case = workload.Case(row["method"], row["L"], row["mode"], row["pass"], row["device"])
        return order.get(case.id, len(order))

    return int(code), sorted(plugin.rows, key=key)
