"""The leaderboard pipeline: per method, in this order,

1. **conformance**: ``pytest tests/conformance`` in a subprocess, on the node ids of this
   method (collected with ``-k NAME``, then kept only when their parameter id is exactly
   ``NAME`` or ``NAME-<mode>``), with ``LISA_BENCH_METHODS`` carrying the plugins. A method
   that fails (or whose suite cannot run) gets no speed score. LISA layers (``lisa-base``,
   ``lisa-soft``, ``lisa-mini``) are layers, not q/k/v operators: status ``n/a`` (their
   tests live in tests/attention).
2. **error against exact attention**: relative Frobenius error
   ``|out - exact|_F / |exact|_F`` of the method in float32 against
   ``reference.exact_attention`` in float64, on two seeded workloads (standard-normal
   q/k/v; a vocabulary workload where tokens are one of 16 items with fixed embeddings plus
   noise), batch 2, heads 2, L = 256, d = 32; causal when supported, else bidirectional.
   Calibrated methods are prepared on a separate seeded draw of the same workload.
3. **time and memory on an L grid**: forward pass, batch 1, one head of dim ``dim``,
   float32, causal when supported; median wall time (``harness.measure.time_call``) and
   peak heap allocated during one call (``peak_memory_bytes``, memray), each divided by
   SDPA's in the same mode measured in the same run. Layers are timed as layers
   (batch 1, width ``dim``) against the SDPA adapter layer.
4. **fitted exponents** of time and memory in L (``harness.scaling.fit_exponent``) and
   the **crossover length** against SDPA (``crossover_length``).
5. **downstream** HR@10 / NDCG@10 (and @5) of the SASRec-style model with this attention
   (``harness.tasks``), plus its epoch time and training-step peak memory.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.leaderboard.store import machine_hash, new_document, rank_rows
from harness.results import config_hash, machine_fingerprint

__all__ = ["LeaderboardConfig", "run_leaderboard", "run_conformance", "select_methods"]

LAYER_METHODS = ("lisa-base", "lisa-soft", "lisa-mini")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LeaderboardConfig:
    quick: bool = True
    lengths: tuple[int, ...] = (256, 512, 1024)
    dim: int = 64
    repeats: int = 3
    budget_s: float = 5.0
    error_length: int = 256
    dataset: str = "synthetic"
    seqrec_dim: int = 32
    seqrec_max_len: int = 40
    seqrec_epochs: int = 20
    seqrec_patience: int = 3
    seqrec_lr: float = 1e-3
    seeds: tuple[int, ...] = (0,)
    synthetic_users: int = 600
    synthetic_items: int = 300
    conformance_timeout_s: float = 900.0
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def full(cls) -> LeaderboardConfig:
        return cls(
            quick=False,
            lengths=(1024, 2048, 4096, 8192),
            repeats=5,
            budget_s=20.0,
            dataset="ml-1m",
            seqrec_dim=128,
            seqrec_max_len=200,
            seqrec_epochs=200,
            seqrec_patience=5,
        )

    def check(self) -> None:
        if not self.lengths or any(int(n) < 2 for n in self.lengths):
            raise ValueError(f"lengths must be a non-empty list of ints >= 2, got {self.lengths}")
        if list(self.lengths) != sorted(set(self.lengths)):
            raise ValueError(f"lengths must be strictly increasing, got {self.lengths}")
        for name in ("dim", "repeats", "seqrec_dim", "seqrec_max_len", "seqrec_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")


# --------------------------------------------------------------------------------------
# Methods


def select_methods(names: Sequence[str] | None, plugins: Sequence[str]) -> list[tuple[str, Any]]:
    """[(name, spec or None for LISA layers)]: ``names`` (all registry methods and the
    LISA layers when None), plus every method the plugins define."""
    from harness.tasks.seqrec_model import canonical_method
    from impls import registry

    specs = {s.name: s for s in registry.all_methods(plugins)}
    plugin_names = [s.name for ref in plugins for s in registry.resolve(ref)]
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
    env = dict(os.environ)
    refs = [r for r in env.get("LISA_BENCH_METHODS", "").split(",") if r.strip()]
    refs += [p for p in plugins if p not in refs]
    if refs:
        env["LISA_BENCH_METHODS"] = ",".join(refs)
    env["LISA_BENCH_RESULTS"] = results_dir
    paths = [p for p in sys.path if p and Path(p).exists()]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    return env


def run_conformance(
    name: str, plugins: Sequence[str] = (), *, timeout_s: float = 900.0, root: Path = REPO_ROOT
) -> dict:
    """Run the conformance suite on one method (see the module docstring)."""
    suite = root / "tests" / "conformance"
    if not suite.is_dir():
        return {"status": "not-run", "reason": f"conformance suite not found at {suite}"}
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        env = _subprocess_env(plugins, tmp)
        base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        collect = subprocess.run(
            [*base, str(suite), "--collect-only", "-q", "-k", name],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        pattern = re.compile(r"\[" + re.escape(name) + r"(-(causal|bidirectional))?\]$")
        ids = [line.strip() for line in collect.stdout.splitlines() if pattern.search(line.strip())]
        if not ids:
            tail = (collect.stdout + collect.stderr)[-2000:]
            return {
                "status": "failed",
                "reason": f"no conformance test collected for {name!r} (is it registered?)",
                "log_tail": tail,
            }
        junit = Path(tmp) / "junit.xml"
        done = subprocess.run(
            [*base, *ids, "-q", f"--junitxml={junit}"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
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
        "command": f"LISA_BENCH_METHODS=<plugins> pytest tests/conformance -k {name}",
    }
    if not ok:
        result["log_tail"] = (done.stdout + done.stderr)[-3000:]
    return result


# --------------------------------------------------------------------------------------
# 2. Error against exact attention


def _gaussian(batch, heads, length, dim, seed):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, heads, length, dim, generator=gen, dtype=torch.float64) for _ in "qkv"
    ]


def _vocabulary(batch, heads, length, dim, seed, vocab=16, noise=0.05):
    table = torch.Generator().manual_seed(7)
    emb = [torch.randn(heads, vocab, dim, generator=table, dtype=torch.float64) for _ in "qkv"]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    out = []
    for t in emb:
        x = t[:, ids].permute(1, 0, 2, 3)
        out.append(x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64))
    return out


WORKLOADS: dict[str, Callable] = {"gaussian": _gaussian, "vocabulary": _vocabulary}


def _mode(spec) -> bool:
    return bool(spec.capabilities.causal)


def _build(spec, dim, heads, workload, length, dtype=torch.float32):
    from impls import registry

    calibration = None
    if spec.calibrate:
        calibration = [t.to(dtype) for t in workload(4, heads, min(length, 256), dim, 12345)]
    return registry.build(spec, dim, heads, calibration=calibration)


def error_against_exact(spec, *, length: int = 256, dim: int = 32) -> dict:
    """Relative errors on the standard workloads (see the module docstring)."""
    from reference.attention import exact_attention

    causal = _mode(spec)
    out = {"mode": "causal" if causal else "bidirectional", "length": length, "dim": dim}
    for wname, workload in WORKLOADS.items():
        q, k, v = workload(2, 2, length, dim, 1)
        attn = _build(spec, dim, 2, workload, length)
        with torch.no_grad():
            got = attn(q.float(), k.float(), v.float(), causal=causal).double()
        ref = exact_attention(q, k, v, causal=causal)
        out[wname] = float(torch.linalg.norm(got - ref) / torch.linalg.norm(ref))
    return out


# --------------------------------------------------------------------------------------
# 3-4. Time and memory on the L grid


def _grid(make_call: Callable[[int], Callable[[], object]], cfg: LeaderboardConfig) -> dict:
    from harness.measure import peak_memory_bytes, time_call

    times, mems = [], []
    for length in cfg.lengths:
        call = make_call(length)
        with torch.no_grad():
            times.append(time_call(call, repeats=cfg.repeats, budget_s=cfg.budget_s).median_s)
            mems.append(peak_memory_bytes(call))
    return {"time_s": times, "memory_bytes": mems}


def _operator_call(spec, cfg: LeaderboardConfig, causal: bool):
    def make(length):
        q, k, v = (t.float() for t in _gaussian(1, 1, length, cfg.dim, 3))
        attn = _build(spec, cfg.dim, 1, _gaussian, length)
        return lambda: attn(q, k, v, causal=causal)

    return make


def _layer_call(name: str, cfg: LeaderboardConfig):
    from harness.tasks.seqrec_model import make_attention_layer

    def make(length):
        torch.manual_seed(0)
        layer = make_attention_layer(name, cfg.dim).eval()
        x = torch.randn(1, length, cfg.dim, generator=torch.Generator().manual_seed(3))
        if hasattr(layer, "calibrate"):
            layer.calibrate(torch.randn(4, min(length, 256), cfg.dim))
        return lambda: layer(x, causal=True)

    return make


def _ratios(values, base):
    return [(v / b) if (v is not None and b) else None for v, b in zip(values, base, strict=True)]


def _scaling(grid: dict, base: dict, lengths) -> dict:
    from harness.scaling import crossover_length, fit_exponent

    kind, at = crossover_length(lengths, grid["time_s"], base["time_s"])
    return {
        **grid,
        "lengths": list(lengths),
        "time_ratio": _ratios(grid["time_s"], base["time_s"]),
        "memory_ratio": _ratios(grid["memory_bytes"], base["memory_bytes"]),
        "time_exponent": fit_exponent(lengths, grid["time_s"]),
        "memory_exponent": fit_exponent(lengths, grid["memory_bytes"]),
        "crossover": {"kind": kind, "length": at},
    }


# --------------------------------------------------------------------------------------
# 5. Downstream


def _downstream(name: str, task, cfg: LeaderboardConfig, plugins, progress: bool) -> dict:
    import statistics

    from harness.tasks.seqrec_train import TrainConfig, train_and_evaluate

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
        runs.append(train_and_evaluate(task, name, tc, extra=tuple(plugins), progress=progress))
    out: dict[str, Any] = {"dataset": task.data.name, "seeds": list(cfg.seeds), "runs": len(runs)}
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


def run_leaderboard(
    cfg: LeaderboardConfig,
    *,
    methods: Sequence[str] | None = None,
    plugins: Sequence[str] = (),
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    conformance: bool = True,
) -> dict:
    """Run the pipeline; returns a leaderboard document (``harness.leaderboard.store``)."""
    from harness.tasks.seqrec_model import RegistryAttentionLayer  # noqa: F401 (import check)
    from harness.tasks.seqrec_train import load_task
    from harness.tasks.synthetic import SyntheticConfig

    cfg.check()
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    chosen = select_methods(methods, plugins)
    fingerprint = machine_fingerprint()
    mhash = machine_hash(fingerprint)
    config = {**asdict(cfg), "methods": [n for n, _ in chosen], "plugins": list(plugins)}
    chash = config_hash({k: v for k, v in config.items() if k not in ("methods", "plugins")})
    task = load_task(
        cfg.dataset,
        seed=0,
        synthetic=SyntheticConfig(num_users=cfg.synthetic_users, num_items=cfg.synthetic_items),
    )
    doc = new_document()
    doc["machines"][mhash] = fingerprint
    doc["configs"][chash] = config
    doc["data_checksums"][task.data.name] = task.data.checksum

    from impls import registry

    sdpa = registry.get_method("sdpa")
    baselines: dict[Any, dict] = {}

    def baseline(kind) -> dict:
        if kind not in baselines:
            say(f"[baseline] sdpa {kind} on L = {list(cfg.lengths)}")
            if kind == "layer":
                baselines[kind] = _grid(_layer_call("sdpa", cfg), cfg)
            else:
                baselines[kind] = _grid(_operator_call(sdpa, cfg, kind == "causal"), cfg)
        return baselines[kind]

    rows = []
    for name, spec in chosen:
        row: dict[str, Any] = {
            "method": name,
            "machine": mhash,
            "config_hash": chash,
            "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "level": "layer" if spec is None else "operator",
            "source": "impls.attention.lisa_layers" if spec is None else spec.source,
            "exact": None if spec is None else spec.exact,
            "data_checksum": task.data.checksum,
            "notes": [],
        }
        if spec is not None:
            ok, reason = registry.availability(spec)
            if not ok:
                row["conformance"] = {"status": "skipped", "reason": reason}
                row["notes"].append(f"cannot run here: {reason}")
                rows.append(row)
                say(f"[{name}] skipped: {reason}")
                continue
        # 1. conformance
        if spec is None:
            row["conformance"] = {
                "status": "n/a",
                "reason": "a layer, not a q/k/v operator (tested in tests/attention)",
            }
        elif conformance:
            say(f"[{name}] conformance suite")
            row["conformance"] = run_conformance(name, plugins, timeout_s=cfg.conformance_timeout_s)
        else:
            row["conformance"] = {"status": "not-run", "reason": "--no-conformance"}
        say(f"[{name}] conformance: {row['conformance']['status']}")
        # 2. error against exact attention
        if spec is not None:
            try:
                row["error"] = error_against_exact(spec, length=cfg.error_length)
            except Exception as exc:  # a broken method must not stop the board
                row["error"] = {"failed": f"{type(exc).__name__}: {exc}"}
        # 3-4. speed (only after a passed conformance suite)
        if row["conformance"]["status"] in ("passed", "n/a"):
            try:
                if spec is None:
                    say(f"[{name}] layer time/memory on L = {list(cfg.lengths)}")
                    grid = _grid(_layer_call(name, cfg), cfg)
                    row["speed"] = {
                        "baseline": "sdpa layer",
                        **_scaling(grid, baseline("layer"), cfg.lengths),
                    }
                else:
                    causal = _mode(spec)
                    kind = "causal" if causal else "bidirectional"
                    say(f"[{name}] time/memory ({kind}) on L = {list(cfg.lengths)}")
                    if name == "sdpa":  # the baseline itself: one measurement, ratio 1
                        grid = baseline(kind)
                    else:
                        grid = _grid(_operator_call(spec, cfg, causal), cfg)
                    row["speed"] = {
                        "baseline": f"sdpa {kind}",
                        "mode": kind,
                        **_scaling(grid, baseline(kind), cfg.lengths),
                    }
            except Exception as exc:
                row["speed"] = None
                row["notes"].append(f"speed failed: {type(exc).__name__}: {exc}")
        else:
            row["speed"] = None
            row["notes"].append("no speed score: conformance did not pass")
        # 5. downstream
        if spec is not None and not spec.capabilities.causal:
            row["downstream"] = None
            row["notes"].append("no downstream score: the model needs causal attention")
        else:
            say(f"[{name}] downstream on {task.data.name}")
            try:
                row["downstream"] = _downstream(name, task, cfg, plugins, progress)
            except Exception as exc:
                row["downstream"] = None
                row["notes"].append(f"downstream failed: {type(exc).__name__}: {exc}")
        rows.append(row)
    doc["rows"] = rank_rows(rows)
    return doc
