"""The leaderboard pipeline: per method, in this order,

1. **conformance**: the installed suite (``harness.conformance``) on this method alone,
   ``python -m harness conformance --method NAME`` in a subprocess whose working directory
   is a temporary one (no repository needed), with ``LISA_BENCH_METHODS`` carrying the
   plugins. A method that fails (or whose suite cannot run) gets no speed score. LISA
   layers (``lisa-base``, ``lisa-soft``, ``lisa-mini``) are layers, not q/k/v operators:
   status ``n/a`` (their tests live in tests/attention).
2. **error against exact attention**: relative Frobenius error
   ``|out - exact|_F / |exact|_F`` of the method in float32 against
   ``reference.exact_attention`` in float64 on the workload's two input distributions
   (``harness.workloads.attention.draw_inputs``: standard-normal q/k/v, and a vocabulary
   workload where tokens are one of 16 items with fixed embeddings plus noise) at each of
   ``ERROR_LENGTHS`` (256 and 1,024), with the workload's batch, heads and head dim
   (1, 1, 128); causal when supported, else bidirectional. Calibrated methods are
   prepared on a separate seeded draw of the same distribution.
3. **time and memory on an L grid**: exactly the bench's cases (``Case(method, L, mode,
   "forward")`` through ``harness.runner.attention_tasks.measure_case``, one isolated call
   per case): the same inputs, timer and peak-memory measurement as ``python -m harness
   bench``, so a leaderboard figure and a bench figure of one case agree. The grid is a
   named one of ``harness.workloads.attention.GRIDS`` (``leaderboard-quick``: L = 256 ..
   16,384; ``leaderboard-full``: to 131,072 for linear-time rows, 65,536 for exact ones);
   the float64 oracle stays at L <= 4,096 (``reference_only``: not part of the headline).
   Each time and peak is divided by SDPA's in the same mode measured in the same run.
   Layers are timed as layers (batch 1, width 128) against the SDPA adapter layer.
4. **fitted exponents** of time and memory in L (``harness.scaling.fit_exponent``), the
   **crossover length** against SDPA (``crossover_length``) and the **headline**: the
   ratios at the longest L every compared row reached (``speed["headline"]``,
   ``doc["headline_length"]``).
5. **downstream** HR@10 / NDCG@10 (and @5) of the SASRec-style model with this attention
   (``harness.seqrec``), plus its epoch time and training-step peak memory.
6. **associative recall**: held-out accuracy of the fixed MQAR model
   (``harness.tasks.associative_recall``) with this attention at each of ``mqar_lengths``
   (``mqar_steps`` training steps; each of ``mqar_seeds``, by default the first of
   ``seeds``), for causal methods and the LISA layers: the long-range column, which
   separates methods that the downstream scores tie (``mqar_lengths=()`` leaves it out).
   With several seeds the cell is the mean with its 95% t-interval, and a method whose
   difference to sdpa, paired by seed, is within noise is marked a tie.
7. **long history**: the downstream model again with the window widened to
   ``long_history_len`` (``long_history_epochs`` epochs, the first seed): quality and
   epoch time where a linear-time method's cost advantage is real (off in the quick
   preset; 1,000 on the full board's ML-1M).
"""

from __future__ import annotations

import datetime as _dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from harness.leaderboard.store import headline_length, machine_hash, new_document, rank_rows
from harness.results import config_hash, machine_fingerprint
from harness.workloads.attention import BASELINE, ERROR_LENGTHS, GRIDS, Grid

__all__ = ["LeaderboardConfig", "run_leaderboard", "run_conformance", "select_methods"]

LAYER_METHODS = ("lisa-base", "lisa-soft", "lisa-mini")
# the directory that holds the harness package (a checkout, or site-packages when installed):
# the conformance subprocess imports harness, impls and reference from there
IMPORT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LeaderboardConfig:
    """What a leaderboard run measures. ``grid``: a named grid of
    ``harness.workloads.attention.GRIDS`` (its lengths, and the caps that keep exact rows
    and the float64 oracle short); ``lengths``: your own lengths instead, with the named
    grid's caps. The speed cases are the bench's (the workload's batch, heads, head dim
    and inputs; forward; float32); ``repeats`` and ``budget_s`` are the bench timer's."""

    quick: bool = True
    grid: str = "leaderboard-quick"
    lengths: tuple[int, ...] | None = None
    error_lengths: tuple[int, ...] = ERROR_LENGTHS
    repeats: int = 3
    budget_s: float = 5.0
    dataset: str = "synthetic"
    dataset_card: str | None = None  # your own interactions instead of ``dataset``
    seqrec_dim: int = 32
    seqrec_max_len: int = 40
    seqrec_epochs: int = 20
    seqrec_patience: int = 3
    seqrec_lr: float = 1e-3
    seeds: tuple[int, ...] = (0,)
    mqar_lengths: tuple[int, ...] = (256,)
    mqar_steps: int = 300
    mqar_seeds: tuple[int, ...] = ()  # the MQAR column's seeds; () = the first of seeds
    long_history_len: int | None = None
    long_history_epochs: int = 5
    synthetic_users: int = 600
    synthetic_items: int = 300
    conformance_timeout_s: float = 900.0
    stage_timeout_s: float = 3600.0
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def full(cls) -> LeaderboardConfig:
        return cls(
            quick=False,
            grid="leaderboard-full",
            repeats=5,
            budget_s=20.0,
            dataset="ml-1m",
            seqrec_dim=128,
            seqrec_max_len=200,
            seqrec_epochs=200,
            seqrec_patience=5,
            mqar_lengths=(256, 1024),
            long_history_len=1000,
            long_history_epochs=25,
        )

    def speed_grid(self) -> Grid:
        """The named grid, or ``lengths`` under its caps."""
        named = GRIDS[self.grid]
        if self.lengths is None:
            return named
        return Grid("custom", tuple(self.lengths), named.quadratic_max, named.materialized_max)

    def check(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"grid: expected one of {sorted(GRIDS)}, got {self.grid!r}")
        for name in ("lengths", "error_lengths"):
            values = getattr(self, name)
            if values is None and name == "lengths":
                continue
            if not values or any(int(n) < 2 for n in values):
                raise ValueError(f"{name} must be a non-empty list of ints >= 2, got {values}")
            if list(values) != sorted(set(values)):
                raise ValueError(f"{name} must be strictly increasing, got {values}")
        for name in ("repeats", "seqrec_dim", "seqrec_max_len", "seqrec_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        lengths = list(self.mqar_lengths)
        if lengths != sorted(set(lengths)) or any(int(n) < 32 for n in lengths):
            raise ValueError(
                f"mqar_lengths must be strictly increasing ints >= 32, got {self.mqar_lengths}"
            )
        if int(self.mqar_steps) < 1:
            raise ValueError(f"mqar_steps must be >= 1, got {self.mqar_steps!r}")
        seeds = list(self.mqar_seeds)
        if len(set(seeds)) != len(seeds) or any(
            isinstance(s, bool) or not isinstance(s, int) for s in seeds
        ):
            raise ValueError(f"mqar_seeds must be distinct ints, got {self.mqar_seeds!r}")
        if self.long_history_len is not None and (
            isinstance(self.long_history_len, bool)
            or not isinstance(self.long_history_len, int)
            or self.long_history_len <= self.seqrec_max_len
        ):
            raise ValueError(
                f"long_history_len (--long-history-len) must be None or an int wider than "
                f"seqrec_max_len (--max-len, {self.seqrec_max_len}), got {self.long_history_len!r}"
            )
        if int(self.long_history_epochs) < 1:
            raise ValueError(f"long_history_epochs must be >= 1, got {self.long_history_epochs!r}")


# --------------------------------------------------------------------------------------
# Methods


def select_methods(
    names: Sequence[str] | None,
    plugins: Sequence[str],
    *,
    discover: bool = True,
    submitted: Sequence[str] | None = None,
) -> list[tuple[str, Any]]:
    """[(name, spec or None for LISA layers)]: ``names`` (all registry methods and the
    LISA layers when None), plus every method the ``submitted`` references define
    (default: ``plugins``). ``discover=False``: only the built-ins and ``plugins`` (no
    entry points or ``LISA_BENCH_METHODS``)."""
    from harness.seqrec.sasrec import canonical_method
    from impls import registry

    specs = {s.name: s for s in registry.all_methods(plugins, entry_points=discover, env=discover)}
    added = plugins if submitted is None else submitted
    plugin_names = [s.name for ref in added for s in registry.resolve(ref)]
    if names is None:
        chosen = [*specs, *LAYER_METHODS]
    else:
        chosen = [canonical_method(n) for n in names]
        chosen += [n for n in plugin_names if n not in chosen]
    out = []
    for name in dict.fromkeys(chosen):
        if name in LAYER_METHODS:
            out.append((name, None))
        elif name in specs:
            out.append((name, specs[name]))
        else:
            known = ", ".join([*specs, *LAYER_METHODS])
            raise ValueError(f"--methods: unknown method {name!r}; known: {known}")
    return out


# --------------------------------------------------------------------------------------
# 1. Conformance


def _subprocess_env(plugins: Sequence[str], results_dir: str) -> dict:
    """The environment of the conformance subprocess: ``LISA_BENCH_METHODS`` extended by
    ``plugins`` (so that their method names resolve), ``LISA_BENCH_RESULTS`` set to
    ``results_dir``, and ``PYTHONPATH`` leading with :data:`IMPORT_ROOT` followed by this
    process's import path (where the plugins were found)."""
    env = dict(os.environ)
    refs = [r for r in env.get("LISA_BENCH_METHODS", "").split(",") if r.strip()]
    refs += [p for p in plugins if p not in refs]
    if refs:
        env["LISA_BENCH_METHODS"] = ",".join(refs)
    env["LISA_BENCH_RESULTS"] = results_dir
    paths = [p for p in sys.path if p and Path(p).exists()]
    env["PYTHONPATH"] = os.pathsep.join([str(IMPORT_ROOT), *paths])
    return env


def run_conformance(name: str, plugins: Sequence[str] = (), *, timeout_s: float = 900.0) -> dict:
    """Run the installed conformance suite on one method (see the module docstring):
    ``python -m harness conformance --method NAME`` in a subprocess, from a temporary
    working directory, its JUnit report read back. Returns ``status`` ("passed",
    "failed" or "timeout"), the counts ``passed`` / ``failed`` / ``skipped``, ``seconds``,
    the ``command`` to rerun it, and for a failure ``failures`` (one "test id: first line
    of its message" each), ``reason`` and ``log_tail``."""
    begin = time.perf_counter()
    try:
        return _run_conformance(name, plugins, timeout_s, begin)
    except subprocess.TimeoutExpired:
        return {
            "status": "timeout",
            "reason": f"the conformance suite did not finish within {timeout_s:g} s",
            "seconds": round(time.perf_counter() - begin, 2),
        }


def _failures(junit: Path) -> list[str]:
    """'test id: first line of the failure message' for each failed or errored test."""
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for bad in (*case.findall("failure"), *case.findall("error")):
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            out.append(f"{case.get('name')}: {message[0][:300] if message else '(no message)'}")
    return out


def _run_conformance(name, plugins, timeout_s, begin) -> dict:
    """:func:`run_conformance` without the timeout handling."""
    with tempfile.TemporaryDirectory() as tmp:
        env = _subprocess_env(plugins, tmp)
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "harness", "conformance", "--method", name]
        command += ["--junitxml", str(junit), "--results-dir", tmp]
        done = subprocess.run(
            command,
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        failures = _failures(junit) if junit.is_file() else []
        if junit.is_file():
            for suite_el in ET.parse(junit).getroot().iter("testsuite"):
                for k in counts:
                    counts[k] += int(suite_el.get(k, 0))
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    ok = done.returncode == 0 and passed > 0 and not (counts["failures"] or counts["errors"])
    result = {
        "status": "passed" if ok else "failed",
        "passed": passed,
        "failed": counts["failures"] + counts["errors"],
        "skipped": counts["skipped"],
        "seconds": round(time.perf_counter() - begin, 2),
        "command": f"LISA_BENCH_METHODS=<plugins> python -m harness conformance --method {name}",
    }
    if not ok:
        result["failures"] = failures
        if not failures and passed == 0:
            failures = [f"no conformance test ran for {name!r} (exit code {done.returncode})"]
        result["reason"] = "; ".join(failures[:3]) or "the suite did not pass (see log_tail)"
        result["log_tail"] = (done.stdout + done.stderr)[-3000:]
    return result


# --------------------------------------------------------------------------------------
# 2. Error against exact attention (the workload's inputs and dims)


def _mode(spec) -> bool:
    """Whether the leaderboard runs ``spec`` causally (whenever it supports it)."""
    return bool(spec.capabilities.causal)


def error_against_exact(spec, *, lengths: Sequence[int] = ERROR_LENGTHS) -> dict:
    """Relative errors on the workload's input distributions at each of ``lengths`` (see
    the module docstring). ``gaussian`` / ``vocabulary``: at the first length (the
    headline column); ``by_length``: {distribution: [error per length]}."""
    from harness.workloads import attention as workload

    causal = _mode(spec)
    variant = workload.Variant(spec.name, "registry", spec=spec, params=dict(spec.hyperparameters))
    out: dict[str, Any] = {
        "mode": "causal" if causal else "bidirectional",
        "length": int(lengths[0]),
        "lengths": [int(n) for n in lengths],
        "dim": workload.DIM,
        "by_length": {},
    }
    for kind in workload.INPUT_KINDS:
        errors = [workload.error_vs_exact(variant, n, kind, causal=causal) for n in lengths]
        out[kind] = errors[0]
        out["by_length"][kind] = errors
    return out


# --------------------------------------------------------------------------------------
# 3-4. Time and memory on the L grid: bench's case path (harness.runner.attention_tasks)


def _ratios(values, base):
    return [(v / b) if (v is not None and b) else None for v, b in zip(values, base, strict=True)]


def _scaling(grid: dict, base: dict) -> dict:
    """Ratios against the baseline at the row's lengths, fitted exponents and crossover.
    ``grid`` and ``base``: {"lengths", "time_s", "memory_bytes", ...} (base may cover more
    lengths; a length it lacks gives a None ratio)."""
    from harness.scaling import crossover_length, fit_exponent

    lengths = grid["lengths"]
    at = {n: i for i, n in enumerate(base["lengths"])}
    base_time = [base["time_s"][at[n]] if n in at else None for n in lengths]
    base_mem = [base["memory_bytes"][at[n]] if n in at else None for n in lengths]
    kind, where = crossover_length(lengths, grid["time_s"], base_time)
    return {
        **grid,
        "time_ratio": _ratios(grid["time_s"], base_time),
        "memory_ratio": _ratios(grid["memory_bytes"], base_mem),
        "time_exponent": fit_exponent(lengths, grid["time_s"]),
        "memory_exponent": fit_exponent(lengths, grid["memory_bytes"]),
        "crossover": {"kind": kind, "length": where},
    }


def add_headlines(rows: Sequence[dict]) -> int | None:
    """Set ``speed["headline"] = {"length", "time_ratio", "memory_ratio"}`` on every row
    with a speed grid, at :func:`headline_length` (rows that did not reach it get None
    ratios). Returns that length (:func:`harness.leaderboard.store.headline_length`)."""
    at = headline_length(rows)
    for r in rows:
        speed = r.get("speed")
        if not speed or not speed.get("lengths"):
            continue
        head = {"length": at, "time_ratio": None, "memory_ratio": None}
        if at is not None and at in speed["lengths"]:
            i = speed["lengths"].index(at)
            head["time_ratio"] = speed["time_ratio"][i]
            head["memory_ratio"] = speed["memory_ratio"][i]
        speed["headline"] = head
    return at


# --------------------------------------------------------------------------------------
# 5. Downstream


def _downstream(name: str, task, cfg: LeaderboardConfig, plugins, progress: bool) -> dict:
    import statistics

    from harness.seqrec.training import TrainConfig, train_and_evaluate

    runs = []
    for seed in cfg.seeds:
        tc = TrainConfig(
            d_model=cfg.seqrec_dim,
            max_len=cfg.seqrec_max_len,
            epochs=cfg.seqrec_epochs,
            patience=cfg.seqrec_patience,
            lr=cfg.seqrec_lr,
            seed=seed,
        )
        run = train_and_evaluate(task, name, tc, extra=tuple(plugins), progress=progress)
        if run.get("status", "ok") != "ok":
            return {"status": f"seed {seed}: {run['status']}", "dataset": task.data.name}
        runs.append(run)
    out: dict[str, Any] = {"dataset": task.data.name, "seeds": list(cfg.seeds), "runs": len(runs)}
    out["status"] = "ok"
    for key in ("HR@5", "NDCG@5", "HR@10", "NDCG@10"):
        values = [r["test"][key] for r in runs]
        out[key] = statistics.mean(values)
        out[key + " sd"] = statistics.stdev(values) if len(values) > 1 else None
    out["epoch_time_s"] = statistics.median(r["epoch_time_s"] for r in runs)
    peaks = [r["train_step_peak_bytes"] for r in runs if r["train_step_peak_bytes"] is not None]
    out["train_step_peak_bytes"] = max(peaks) if peaks else None
    out["best_epochs"] = [r["best_epoch"] for r in runs]
    return out


# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Stages as the isolated worker runs them (module-level, so they pickle). Methods are
# named, never passed: the worker resolves them itself, so an outside method's code is
# only ever imported there.

_TASKS: dict[tuple, Any] = {}


def _spec_in_worker(name: str, plugins: Sequence[str]):
    from impls import registry

    for spec in registry.all_methods(list(plugins), entry_points=False, env=False):
        if spec.name == name:
            return spec
    raise ValueError(f"unknown method {name!r}")


def stage_select(
    names: Sequence[str] | None, sources: Sequence[str], submitted: Sequence[str]
) -> list[tuple[str, dict]]:
    """(worker) The chosen methods as plain data: [(name, info)], info None for layers.
    ``sources``: every outside reference that loaded; ``submitted``: those the user named."""
    from impls import registry

    out = []
    for name, spec in select_methods(names, sources, discover=False, submitted=submitted):
        if spec is None:
            out.append((name, None))
            continue
        ok, reason = registry.availability(spec)
        out.append(
            (
                name,
                {
                    "source": spec.source,
                    "exact": spec.exact,
                    "causal": bool(spec.capabilities.causal),
                    "time_exponent": spec.time_exponent,
                    "memory_exponent": spec.memory_exponent,
                    "available": ok,
                    "reason": reason,
                },
            )
        )
    return out


def stage_validate(name: str, plugins: Sequence[str]) -> str | None:
    """(worker) ``harness.runner.validation`` on the method in its leaderboard mode."""
    from harness.runner.validation import check_attention_row
    from harness.workloads.attention import Variant

    spec = _spec_in_worker(name, plugins)
    variant = Variant(spec.name, "registry", spec=spec, params=dict(spec.hyperparameters))
    return check_attention_row(variant, "causal" if _mode(spec) else "bidirectional")


def stage_error(name: str, plugins: Sequence[str], lengths: Sequence[int]) -> dict:
    """(worker) :func:`error_against_exact`."""
    return error_against_exact(_spec_in_worker(name, plugins), lengths=lengths)


def stage_layer_case(name: str, length: int, repeats: int, budget_s: float) -> dict:
    """(worker) One LISA layer (or SDPA's adapter layer for "sdpa") at ``length``: batch
    1, width ``DIM`` of the workload, causal, forward under inference mode; the bench's
    timer (``harness.runner.attention_tasks.sampling_timer``) and peak memory
    (``harness.measure.peak_memory_bytes``). A row like :func:`measure_case`'s."""
    from harness.measure import peak_memory_bytes
    from harness.runner.attention_tasks import sampling_timer
    from harness.seqrec.sasrec import make_attention_layer
    from harness.workloads import attention as workload

    torch.manual_seed(0)
    layer = make_attention_layer(name, workload.DIM).eval()
    x = torch.randn(1, length, workload.DIM, generator=torch.Generator().manual_seed(3))
    if hasattr(layer, "calibrate"):
        cal = workload.draw_inputs(
            "gaussian", (workload.CAL_BATCH, 1, workload.CAL_LENGTH, workload.DIM), 12345
        )[0]
        layer.calibrate(cal[:, 0].float())

    def call():
        with torch.inference_mode():
            return layer(x, causal=True)

    device = torch.device("cpu")
    samples = sampling_timer(repeats, budget_s, device)(call)
    row = {"method": name, "L": length, "mode": "causal", "pass": "forward", "status": "ok"}
    row["median_s"] = statistics.median(samples)
    row["samples_s"] = samples
    row["peak_bytes"] = peak_memory_bytes(call, device)
    return row


def stage_downstream(name: str, cfg: LeaderboardConfig, plugins, progress: bool) -> dict:
    """(worker) :func:`_downstream` on the configured data set (loaded once per worker)."""
    task = load_leaderboard_task(cfg)
    return _downstream(name, task, cfg, plugins, progress)


def stage_long_history(name: str, cfg: LeaderboardConfig, plugins, progress: bool) -> dict:
    """(worker) :func:`stage_downstream` with the window widened to
    ``cfg.long_history_len``, ``cfg.long_history_epochs`` epochs and the first seed; the
    result also names ``max_len`` and ``epochs``."""
    wide = replace(
        cfg,
        seqrec_max_len=cfg.long_history_len,
        seqrec_epochs=cfg.long_history_epochs,
        seeds=tuple(cfg.seeds[:1]),
    )
    out = stage_downstream(name, wide, plugins, progress)
    out.update(max_len=cfg.long_history_len, epochs=cfg.long_history_epochs)
    return out


def stage_mqar(name: str, cfg: LeaderboardConfig, plugins: Sequence[str]) -> dict:
    """(worker) MQAR accuracy of ``name`` at each of ``cfg.mqar_lengths``, trained once
    per seed of ``cfg.mqar_seeds`` (default: the first of ``cfg.seeds``):
    ``{"lengths", "accuracy" (the mean over the seeds, per length), "seeds", "per_seed"
    (per length, the accuracy of each seed), "half_width" (per length, of the 95%
    t-interval; None with one seed), "chance", "steps", "seed" (the first), "train_seconds"
    (per length, summed over the seeds)}``."""
    from harness.seqrec.statistics import mean_interval
    from harness.tasks import associative_recall as ar

    method = ar.LAYER_METHODS.get(name) or _spec_in_worker(name, plugins)
    seeds = list(cfg.mqar_seeds) or [cfg.seeds[0]]
    runs = [
        [ar.train_and_evaluate(method, n, steps=cfg.mqar_steps, seed=s) for s in seeds]
        for n in cfg.mqar_lengths
    ]
    per_seed = [[r["accuracy"] for r in at_length] for at_length in runs]
    intervals = [mean_interval(values) for values in per_seed]
    return {
        "lengths": list(cfg.mqar_lengths),
        "accuracy": [i.mean for i in intervals],
        "seeds": seeds,
        "per_seed": per_seed,
        "half_width": [i.half_width for i in intervals],
        "chance": runs[0][0]["chance"],
        "steps": cfg.mqar_steps,
        "seed": seeds[0],
        "train_seconds": [round(sum(r["train_seconds"] for r in at), 3) for at in runs],
    }


def downstream_baselines(task) -> dict:
    """The model-free rankings of the downstream column, on the same test targets and
    sampled negatives every method is scored on (``harness.seqrec.baselines``):
    ``{"split", "repeat_share", "repeat_threshold", "metrics": {name: {"HR@10", ...}}}``.
    A method below "popularity" has learned nothing the item counts do not give."""
    from harness.seqrec.baselines import REPEAT_THRESHOLD, baseline_metrics, repeat_share

    return {
        "split": "test",
        "repeat_share": repeat_share(task, "test"),
        "repeat_threshold": REPEAT_THRESHOLD,
        "metrics": baseline_metrics(task, "test", seed=0),
    }


def load_leaderboard_task(cfg: LeaderboardConfig):
    """The downstream task of ``cfg`` (cached per process)."""
    from harness.seqrec.synthetic_sequences import SyntheticConfig
    from harness.seqrec.training import load_task

    key = (cfg.dataset, cfg.dataset_card, cfg.synthetic_users, cfg.synthetic_items)
    if key in _TASKS:
        return _TASKS[key]
    if cfg.dataset_card is not None:  # your own interactions (docs/data.md)
        from harness.datasets.user_files import load_interactions
        from harness.seqrec.sequences import leave_last_out
        from harness.seqrec.training import SeqRecTask

        data = load_interactions(None, card=cfg.dataset_card)
        try:
            train, valid, test = leave_last_out(data, num_negatives=100, seed=0)
        except ValueError as exc:
            raise ValueError(f"--dataset-card {cfg.dataset_card}: {exc}") from exc
        _TASKS[key] = SeqRecTask(data=data, train=train, valid=valid, test=test)
    else:
        _TASKS[key] = load_task(
            cfg.dataset,
            seed=0,
            synthetic=SyntheticConfig(num_users=cfg.synthetic_users, num_items=cfg.synthetic_items),
        )
    return _TASKS[key]


def _first_line(outcome) -> str:
    return outcome.describe().splitlines()[0][:300]


def _speed_grid(name, kind, lengths, plugins, cfg, runner, peaks=None) -> dict:
    """(parent) Time and memory of one row at each of ``lengths``, one isolated call per
    case: an operator through bench's own ``measure_case`` (same case definition, timer
    and memory measurement as ``python -m harness bench``), a layer through
    :func:`stage_layer_case`. A case that times out, runs out of memory or is skipped for
    its size ends the row's grid (longer lengths are marked skipped). ``peaks``: this
    run's machine peaks ({dtype: Peaks}), for each operator case's roofline fraction."""
    from harness.runner.attention_tasks import measure_case
    from harness.workloads.attention import Case

    out: dict[str, list] = {
        "time_s": [],
        "memory_bytes": [],
        "status": [],
        "roofline_fraction": [],
    }
    stop = None
    for n in lengths:
        row: dict = {}
        if stop is not None:
            status = f"skipped ({stop} at a shorter L)"
        else:
            if kind == "layer":
                outcome = runner.call(stage_layer_case, name, n, cfg.repeats, cfg.budget_s)
            else:
                case = Case(name, n, kind, "forward", "cpu")
                outcome = runner.call(
                    measure_case,
                    name,
                    case,
                    tuple(plugins),
                    seed=0,
                    memory_fraction=0.5,
                    repeats=cfg.repeats,
                    budget_s=cfg.budget_s,
                    validate=False,
                    peaks=peaks,
                )
            row = outcome.value if outcome.ok else {}
            status = row.get("status", "ok") if outcome.ok else _first_line(outcome)
            if not outcome.ok and outcome.status in ("timeout", "oom", "crashed"):
                stop = outcome.status
            elif status.startswith("skipped"):
                stop = "skipped"
        ok = status == "ok"
        out["status"].append(status)
        out["time_s"].append(row.get("median_s") if ok else None)
        out["memory_bytes"].append(row.get("peak_bytes") if ok else None)
        out["roofline_fraction"].append(row.get("roofline_fraction") if ok else None)
    return {"lengths": [int(n) for n in lengths], **out}


# --------------------------------------------------------------------------------------


class _Baselines:
    """SDPA's speed grid per kind ("causal", "bidirectional", "layer"), measured once per
    run on its lengths of the grid, with this run's ``peaks``."""

    def __init__(self, cfg, runner, peaks, say, sdpa_info: dict):
        self.cfg, self.runner, self.peaks, self.say = cfg, runner, peaks, say
        exponents = (sdpa_info["time_exponent"], sdpa_info["memory_exponent"])
        self.lengths = cfg.speed_grid().lengths_for(*exponents)
        self.grids: dict[str, dict | None] = {}

    def __call__(self, kind: str) -> dict | None:
        if kind not in self.grids:
            self.say(f"[baseline] sdpa {kind} on L = {list(self.lengths)}")
            measured = _speed_grid(
                BASELINE, kind, self.lengths, (), self.cfg, self.runner, self.peaks
            )
            if not any(t is not None for t in measured["time_s"]):
                self.say(f"[baseline] sdpa {kind}: {measured['status'][0]}")
                measured = None
            self.grids[kind] = measured
        return self.grids[kind]


def run_leaderboard(
    cfg: LeaderboardConfig,
    *,
    methods: Sequence[str] | None = None,
    plugins: Sequence[str] = (),
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    conformance: bool = True,
    runner=None,
    journal=None,
) -> dict:
    """Run the pipeline; returns a leaderboard document (``harness.leaderboard.store``).

    Every stage that calls a method runs in ``runner`` (an isolated worker; one is made
    with the default limits when None): a stage that raises, crashes, hangs or runs out of
    memory is recorded in the row's ``stages`` with its status and the board goes on.
    Before its speed and downstream stages an operator must pass validation
    (``harness.runner.validation``: shape, finite, no causal leak, its oracle identity) and
    a conformance suite that was run must have passed. ``journal`` (a
    ``harness.runner.journal.RunJournal``) receives each finished row; rows already in it
    are taken as they are (resume). The document's ``complete`` says whether every chosen
    method got a row."""
    from harness.runner.isolation import IsolatedRunner, Limits

    cfg.check()
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    own_runner = runner is None
    if own_runner:
        runner = IsolatedRunner(Limits(timeout_s=cfg.stage_timeout_s, threads=cfg.threads))
    try:
        return _run_leaderboard(
            cfg,
            methods,
            plugins,
            progress,
            say,
            conformance,
            runner,
            journal,
        )
    finally:
        if own_runner:
            runner.close()


def _run_leaderboard(cfg, methods, plugins, progress, say, conformance, runner, journal) -> dict:
    from harness.runner.attention_tasks import load_sources

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    plugins = list(plugins)
    good, failed_sources = load_sources(runner, plugins)
    for ref, reason in failed_sources.items():
        say(f"[{ref}] {reason}")
    submitted_ok = [p for p in plugins if p in good]
    selected = runner.call(stage_select, methods, good, submitted_ok)
    if not selected.ok:
        first = selected.message.splitlines()[0] if selected.message else selected.status
        raise ValueError(first.removeprefix("ValueError: "))
    chosen = selected.value
    fingerprint = machine_fingerprint()
    mhash = machine_hash(fingerprint)
    config = {**asdict(cfg), "methods": [n for n, _ in chosen], "plugins": plugins}
    ignored = ("methods", "plugins", "stage_timeout_s")
    chash = config_hash({k: v for k, v in config.items() if k not in ignored})
    task = load_leaderboard_task(cfg)
    doc = new_document()
    doc["machines"][mhash] = fingerprint
    doc["configs"][chash] = config
    doc["data_checksums"][task.data.name] = task.data.checksum
    doc["downstream_baselines"] = downstream_baselines(task)
    submitted = set(good) | set(failed_sources)

    from harness.runner.attention_tasks import measure_peaks_in

    peaks, peaks_error = measure_peaks_in(runner, "cpu", ["float32"])
    doc["peaks"] = {k: p.as_dict() for k, p in peaks.items()}
    if peaks_error:
        say(f"peaks: not measured ({peaks_error}); rows have no roofline fraction")
        doc["peaks_error"] = peaks_error
    sdpa_info = dict(chosen).get(BASELINE) or {"time_exponent": 2.0, "memory_exponent": 1.0}
    baseline = _Baselines(cfg, runner, peaks, say, sdpa_info)

    rows = []
    for ref, reason in failed_sources.items():
        rows.append(
            {
                "method": ref,
                "machine": mhash,
                "config_hash": chash,
                "measured_at": _now(),
                "level": "operator",
                "source": ref,
                "exact": None,
                "data_checksum": task.data.checksum,
                "status": "failed",
                "stages": {"load": reason},
                "conformance": {"status": "not-run", "reason": reason},
                "notes": [reason],
                "submitted": True,
            }
        )
    for name, info in chosen:
        if journal is not None and name in journal.rows:
            say(f"[{name}] from the journal")
            rows.append(journal.rows[name])
            continue
        row = _method_row(
            name,
            info,
            cfg,
            task,
            mhash,
            chash,
            (good, submitted_ok),
            progress,
            say,
            conformance,
            runner,
            baseline,
        )
        row["submitted"] = info is not None and info["source"] in submitted
        if journal is not None:
            journal.record(name, row)
        rows.append(row)
    doc["headline_length"] = add_headlines(rows)
    doc["rows"] = rank_rows(rows)
    doc["complete"] = True
    return doc


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _record_training_stage(row: dict, key: str, outcome) -> None:
    """A downstream-style stage's outcome into ``row``: its value under ``key`` when the
    call and the training both report "ok"; otherwise the runner's or the training's
    status in ``row["stages"][key]`` and a note."""
    row["stage_seconds"][key] = round(outcome.seconds, 3)
    why = "ok" if outcome.ok else _first_line(outcome)
    if outcome.ok and outcome.value.get("status", "ok") != "ok":
        why = outcome.value["status"]
    row["stages"][key] = why
    if why == "ok":
        row[key] = outcome.value
    else:
        row["notes"].append(f"{key.replace('_', ' ')} {why}")


def _method_row(
    name, info, cfg, task, mhash, chash, sources, progress, say, conformance, runner, baseline
) -> dict:
    """One method through every stage (see :func:`run_leaderboard`). ``sources``:
    (every outside reference that loaded, the user's own among them)."""
    plugins, submitted = sources
    grid = cfg.speed_grid()
    row: dict[str, Any] = {
        "method": name,
        "machine": mhash,
        "config_hash": chash,
        "measured_at": _now(),
        "level": "layer" if info is None else "operator",
        "source": "impls.attention.lisa_layers" if info is None else info["source"],
        "exact": None if info is None else info["exact"],
        "data_checksum": task.data.checksum,
        "stages": {},
        "stage_seconds": {},
        "notes": [],
    }
    if info is not None and not info["available"]:
        row["conformance"] = {"status": "skipped", "reason": info["reason"]}
        row["notes"].append(f"cannot run here: {info['reason']}")
        row["status"] = "skipped"
        say(f"[{name}] skipped: {info['reason']}")
        return row
    # 1. conformance
    if info is None:
        row["conformance"] = {
            "status": "n/a",
            "reason": "a layer, not a q/k/v operator (tested in tests/attention)",
        }
    elif conformance:
        say(f"[{name}] conformance suite")
        row["conformance"] = run_conformance(name, submitted, timeout_s=cfg.conformance_timeout_s)
    else:
        row["conformance"] = {"status": "not-run", "reason": "--no-conformance"}
    say(f"[{name}] conformance: {row['conformance']['status']}")
    # 1b. validation: what every timed row must pass, whatever conformance said
    usable = row["conformance"]["status"] in ("passed", "n/a", "not-run")
    if info is not None:
        outcome = runner.call(stage_validate, name, plugins)
        problem = outcome.value if outcome.ok else _first_line(outcome)
        row["stage_seconds"]["validation"] = round(outcome.seconds, 3)
        row["stages"]["validation"] = "ok" if problem is None else f"invalid: {problem}"
        if problem is not None:
            usable = False
            row["notes"].append(f"invalid: {problem}")
            say(f"[{name}] invalid: {problem}")
    if not usable and row["conformance"]["status"] not in ("passed", "n/a", "not-run"):
        row["notes"].append("no speed or downstream score: conformance did not pass")
    # 2. error against exact attention
    if info is not None:
        outcome = runner.call(stage_error, name, plugins, cfg.error_lengths)
        row["error"] = outcome.value if outcome.ok else {"failed": _first_line(outcome)}
        row["stage_seconds"]["error"] = round(outcome.seconds, 3)
        row["stages"]["error"] = "ok" if outcome.ok else _first_line(outcome)
    # 3-4. speed
    row["speed"] = None
    if usable:
        kind = "layer" if info is None else ("causal" if info["causal"] else "bidirectional")
        exponents = (1.0, 1.0) if info is None else (info["time_exponent"], info["memory_exponent"])
        lengths = grid.lengths_for(*exponents)
        base = baseline(kind)
        say(f"[{name}] time/memory ({kind}) on L = {list(lengths)}")
        begin = time.perf_counter()
        if name == BASELINE and kind != "layer":
            measured = base
        else:
            measured = _speed_grid(name, kind, lengths, plugins, cfg, runner, baseline.peaks)
        row["stage_seconds"]["speed"] = round(time.perf_counter() - begin, 3)
        bad = [] if measured is None else [s for s in measured["status"] if s != "ok"]
        failures = [s for s in bad if not s.startswith("skipped")]
        row["stages"]["speed"] = "ok" if not failures else failures[0]
        if measured is not None and base is not None:
            label = "sdpa layer" if kind == "layer" else f"sdpa {kind}"
            extra = {} if kind == "layer" else {"mode": kind}
            row["speed"] = {"baseline": label, **extra, **_scaling(measured, base)}
            row["speed"]["reference_only"] = len(lengths) < len(grid.lengths_for(exponents[0], 1.0))
            if bad:
                row["notes"].append(f"speed: {len(bad)} of {len(lengths)} lengths not ok")
        else:
            row["notes"].append("speed: the sdpa baseline could not be measured")
    # 5. downstream
    row["downstream"] = None
    if info is not None and not info["causal"]:
        row["notes"].append("no downstream score: the model needs causal attention")
    elif usable:
        say(f"[{name}] downstream on {task.data.name}")
        outcome = runner.call(stage_downstream, name, cfg, submitted, progress)
        _record_training_stage(row, "downstream", outcome)
    # 6. associative recall
    row["mqar"] = None
    if cfg.mqar_lengths and usable and (info is None or info["causal"]):
        say(f"[{name}] associative recall at L = {list(cfg.mqar_lengths)}")
        outcome = runner.call(stage_mqar, name, cfg, plugins)
        row["stage_seconds"]["mqar"] = round(outcome.seconds, 3)
        row["stages"]["mqar"] = "ok" if outcome.ok else _first_line(outcome)
        if outcome.ok:
            row["mqar"] = outcome.value
        else:
            row["notes"].append(f"mqar {row['stages']['mqar']}")
    # 7. long history
    row["long_history"] = None
    if cfg.long_history_len and usable and (info is None or info["causal"]):
        say(f"[{name}] long history: window {cfg.long_history_len} on {task.data.name}")
        outcome = runner.call(stage_long_history, name, cfg, submitted, progress)
        _record_training_stage(row, "long_history", outcome)
    bad = [s for s in row["stages"].values() if s != "ok"]
    failed_conf = row["conformance"]["status"] not in ("passed", "n/a", "not-run", "skipped")
    row["status"] = "failed" if bad or failed_conf else "ok"
    return row
