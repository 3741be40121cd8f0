"""pytest-benchmark underneath ``python -m harness bench``: one parametrized test per case
of a workload plan.

``run_plan`` runs pytest in-process on this file with :class:`BenchPlugin`, which
parametrizes :func:`test_bench_case` over the plan's cases, shows a progress bar and
collects one result row per case. The file is not under ``tests/`` and not named
``test_*.py``, so the normal test run (``nox -s tests``) never collects it.

Every case runs in the isolated worker (``harness.runner``): validated first, then one
untimed warm-up call and between 3 and ``repeats`` timed calls (fewer than ``repeats``
when a call takes longer than ``budget_s / repeats``), then one call under the memory
profiler; given the run's peaks (measured once per run in the same worker), the row is
placed on the roofline (``harness.measure_peaks``). The worker's samples are handed to
pytest-benchmark as the rounds of the case's ``benchmark`` fixture, so its statistics,
``--benchmark-autosave`` and ``--benchmark-compare`` see the isolated timings. A case
that crashes, hangs, runs out of memory or fails validation is a row with that status;
the run goes on. Each finished row is appended to the run's journal before the next case
starts; a case already in the journal (``--resume``) is not measured again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.runner.attention_tasks import measure_case
from harness.runner.isolation import IsolatedRunner
from harness.runner.journal import RunJournal
from harness.workloads import attention as workload

__all__ = ["BenchPlugin", "PLUGIN_KEY", "run_plan", "test_bench_case"]

PLUGIN_KEY = pytest.StashKey["BenchPlugin"]()


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
        runner: IsolatedRunner | None = None,
        journal: RunJournal | None = None,
        validate: bool = True,
        peaks: dict | None = None,
    ):
        if runner is None:
            raise ValueError("BenchPlugin needs an IsolatedRunner (runner=...)")
        self.runner = runner
        self.journal = journal
        self.validate = validate
        self.peaks = peaks or {}  # {dtype name: harness.measure_peaks.Peaks}
        self.plan = plan
        self.repeats = repeats
        self.budget_s = budget_s
        self.seed = seed
        self.memory_fraction = memory_fraction
        self.progress = progress
        self.rows: list[dict] = []
        self.problems: list[str] = []
        self.regressions: list[str] = []  # from --benchmark-compare-fail
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
        self._compare_with_saved_runs(session)

    def _compare_with_saved_runs(self, session) -> None:
        """pytest-benchmark compares and checks ``--benchmark-compare-fail`` while it prints
        its terminal summary, which this in-process run switches off: print it here (after
        its own session hook has loaded the saved runs) and keep the regressions."""
        bench = getattr(session.config, "_benchmarksession", None)
        if bench is None or not (bench.compare or bench.compare_fail):
            return
        from pytest_benchmark.session import PerformanceRegression

        try:
            bench.display(_PlainReporter())
        except PerformanceRegression:
            self.regressions = [f"{name}: {why}" for name, why in bench.performance_regressions]


class _PlainReporter:
    """The few terminal-reporter calls pytest-benchmark's tables make, as plain text on
    stdout (colour markup dropped)."""

    def __init__(self):
        self._fresh_line = True

    def write(self, text: str, **markup) -> None:
        sys.stdout.write(text)
        self._fresh_line = text.endswith("\n")

    def write_line(self, text: str = "", **markup) -> None:
        self.write(f"{text}\n")

    def ensure_newline(self) -> None:
        if not self._fresh_line:
            self.write("\n")

    def section(self, title: str, sep: str = "-", **markup) -> None:
        self.write_line(f" {title} ".center(100, sep))

    def rewrite(self, text: str, **markup) -> None:
        self.write(f"\r{text}")


def _record_samples(benchmark, samples: Sequence[float]) -> None:
    """Hand samples timed in the worker to pytest-benchmark as the rounds of this case
    (its statistics object is filled exactly as ``pedantic`` fills it, one round per
    sample), so its reports, autosave and compare work on isolated timings."""
    if not samples or getattr(benchmark, "disabled", False):
        return
    stats = benchmark._make_stats(1)
    for seconds in samples:
        stats.update(seconds)


def _failed_row(plugin: BenchPlugin, case: workload.Case, outcome) -> dict:
    variant = plugin.plan.variant(case.method)
    first = outcome.message.splitlines()[0] if outcome.message else ""
    row = {**case.as_dict(), "params": variant.params, "dtype": variant.dtype}
    row["status"] = f"{outcome.status}: {first}"[:300]
    row["message"] = outcome.message[-2000:]
    row["seconds_until_recovered"] = outcome.seconds
    return row


def test_bench_case(benchmark, bench_case, request):
    """Measure one case of the plan in the isolated worker (or take it from the journal)
    and hand its row to the plugin."""
    plugin = request.config.stash[PLUGIN_KEY]
    row = plugin.journal.rows.get(bench_case.id) if plugin.journal else None
    if row is None:
        outcome = plugin.runner.call(
            measure_case,
            bench_case.method,
            bench_case,
            tuple(plugin.plan.sources),
            seed=plugin.seed,
            memory_fraction=plugin.memory_fraction,
            repeats=plugin.repeats,
            budget_s=plugin.budget_s,
            validate=plugin.validate,
            peaks=plugin.peaks,
        )
        row = outcome.value if outcome.ok else _failed_row(plugin, bench_case, outcome)
        row["case_wall_s"] = outcome.seconds  # the whole isolated call, checks included
        if plugin.journal is not None:
            plugin.journal.record(bench_case.id, row)
    samples = row.get("samples_s") or []
    _record_samples(benchmark, samples)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and row["status"] == "ok" and samples:
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
