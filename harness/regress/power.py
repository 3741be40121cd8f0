"""The regression gate's measured power: how often it cries wolf, and what it catches.

``python -m harness.regress.power`` runs the real gate (``compare_commits``: worker
processes per side, interleaved paired rounds, :func:`harness.regress.verdict.judge`) on
two commits of a throw-away repository whose workload differs only in an injected
slowdown. The base commit times a gate case (``harness.regress.gate_workload``) as it is;
the head commit times the same case followed by a busy spin of ``(factor - 1)`` times that
call's own duration, so every call of the head is exactly ``factor`` times slower, noise
included (a pure multiplicative regression). ``factor`` 1.0 is an A/A comparison.

Each configuration (workers per side x factor) is one gate run over ``pairs`` copies of
each case (``"sdpa@1024#7"`` is copy 7 of ``sdpa@1024``), each judged on its own rounds:
every copy is one independent trial. Reported per configuration: trials, alarms (A/A: false
alarms; else detections), the rate with a 95% Clopper-Pearson interval, the median noise
floor and the median smallest detectable slowdown (``Verdict.detectable``), and the
detection rate among trials whose noise floor was at most 10%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from scipy import stats

__all__ = ["injected_case", "measure_power", "power_table", "main"]

WORKLOAD_MODULE = "lisa_bench_power_case"
_WORKLOAD_SOURCE = '''"""A gate case with an injected slowdown (by harness.regress.power)."""
from harness.regress.power import injected_case, parse_copy_id

SLOWDOWN = {factor!r}


def build_case(case_id):
    return injected_case(case_id, SLOWDOWN)


def parse_case_id(case_id):
    return parse_copy_id(case_id)
'''


def parse_copy_id(case_id: str):
    """``"<gate case id>#<copy>"`` -> the gate case's (row, case); ValueError otherwise."""
    from harness.regress.gate_workload import parse_case_id

    base, sep, copy = case_id.rpartition("#")
    if not sep or not copy.isdigit():
        raise ValueError(f"case id {case_id!r}: expected '<gate case id>#<copy number>'")
    return parse_case_id(base)


def injected_case(case_id: str, factor: float) -> Callable[[], object]:
    """The gate case of ``case_id`` (``#copy`` suffix stripped), each call followed by a
    busy spin of ``(factor - 1)`` x that call's duration: ``factor`` x slower."""
    from harness.regress.gate_workload import build_case

    if not factor >= 1.0:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    parse_copy_id(case_id)
    call = build_case(case_id.rpartition("#")[0])
    if factor == 1.0:
        return call

    def slowed():
        start = time.perf_counter()
        out = call()
        end = start + factor * (time.perf_counter() - start)
        while time.perf_counter() < end:
            pass
        return out

    return slowed


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "power", "GIT_AUTHOR_EMAIL": "power@localhost"}
    env |= {"GIT_COMMITTER_NAME": "power", "GIT_COMMITTER_EMAIL": "power@localhost"}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def study_repository(folder: Path, factors: Sequence[float]) -> tuple[Path, dict[float, str]]:
    """A git repository holding one commit per factor of the injected workload module:
    (repository, {factor: commit sha}); factor 1.0 is always there (the base)."""
    repo = folder / "power-study"
    repo.mkdir()
    _git(repo, "init", "-q")
    commits = {}
    for factor in dict.fromkeys([1.0, *factors]):
        (repo / f"{WORKLOAD_MODULE}.py").write_text(_WORKLOAD_SOURCE.format(factor=factor))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"slowdown {factor}")
        commits[factor] = _git(repo, "rev-parse", "HEAD")
    return repo, commits


def _rate_interval(hits: int, n: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of a binomial rate."""
    low = 0.0 if hits == 0 else float(stats.beta.ppf(0.025, hits, n - hits + 1))
    high = 1.0 if hits == n else float(stats.beta.ppf(0.975, hits + 1, n - hits))
    return low, high


def summarise(results: dict[str, dict], factor: float, workers: int) -> dict:
    """One configuration's row from the gate's per-copy verdicts."""
    verdicts = [r for r in results.values() if "error" not in r]
    errors = [r["error"] for r in results.values() if "error" in r]
    hits = sum(bool(r["regression"]) for r in verdicts)
    n = len(verdicts)
    quiet = [r for r in verdicts if r["noise_floor"] <= 0.10]
    row = {
        "factor": factor,
        "workers_per_side": workers,
        "trials": n,
        "alarms": hits,
        "rate": hits / n if n else None,
        "rate_95": _rate_interval(hits, n) if n else None,
        "median_noise_floor": statistics.median(r["noise_floor"] for r in verdicts) if n else None,
        "median_detectable": statistics.median(r["detectable"] for r in verdicts) if n else None,
        "quiet_trials": len(quiet),
        "quiet_rate": (sum(bool(r["regression"]) for r in quiet) / len(quiet)) if quiet else None,
        "errors": errors[:3],
    }
    return row


def measure_power(
    cases: Sequence[str],
    *,
    factors: Sequence[float] = (1.0, 1.1, 1.3, 2.0),
    workers: Sequence[int] = (1, 2, 4),
    pairs: int = 50,
    rounds: int = 21,
    threads: int = 1,
    alpha: float = 0.01,
    min_floor: float = 0.05,
    log: Callable[[str], None] = lambda msg: None,
) -> list[dict]:
    """Run the gate for every (workers per side, factor) on ``pairs`` copies of each of
    ``cases``; one summary row per configuration (see the module docstring)."""
    from harness.regress.paired_timing import compare_commits

    if pairs < 1 or rounds < 1 or threads < 1 or not cases or not workers:
        raise ValueError("pairs, rounds and threads must be >= 1; cases and workers non-empty")
    if any(not f >= 1.0 for f in factors):
        raise ValueError(f"factors must all be >= 1, got {list(factors)}")
    rows = []
    copies = [f"{case}#{i}" for case in cases for i in range(pairs)]
    with tempfile.TemporaryDirectory(prefix="regress-power-") as folder:
        repo, commits = study_repository(Path(folder), factors)
        for k in workers:
            for factor in factors:
                begin = time.perf_counter()
                results = compare_commits(
                    repo,
                    commits[1.0],
                    commits[factor],
                    copies,
                    workload=WORKLOAD_MODULE,
                    rounds=rounds,
                    alpha=alpha,
                    min_floor=min_floor,
                    workers_per_side=k,
                    threads=threads,
                )
                row = summarise(results, factor, k)
                row["seconds"] = round(time.perf_counter() - begin, 1)
                rows.append(row)
                log(
                    f"workers/side {k}, x{factor:g}: {row['alarms']}/{row['trials']} "
                    f"alarms, median floor {row['median_noise_floor']:.1%}, "
                    f"{row['seconds']:.0f} s"
                )
    return rows


def power_table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table."""
    head = (
        "| workers/side | injected | trials | flagged | rate [95% CI] | median noise floor "
        "| median detectable | rate, floor <= 10% |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        what = "A/A (false alarms)" if r["factor"] == 1.0 else f"x{r['factor']:g}"
        low, high = r["rate_95"] or (float("nan"), float("nan"))
        quiet = "-" if r["quiet_rate"] is None else f"{r['quiet_rate']:.0%} of {r['quiet_trials']}"
        lines.append(
            f"| {r['workers_per_side']} | {what} | {r['trials']} | {r['alarms']} | "
            f"{r['rate']:.0%} [{low:.0%}, {high:.0%}] | {r['median_noise_floor']:.1%} | "
            f"x{r['median_detectable']:.2f} | {quiet} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from harness.results import machine_fingerprint, write_json_atomic

    p = argparse.ArgumentParser(prog="python -m harness.regress.power", description=__doc__)
    p.add_argument("--cases", nargs="+", default=["sdpa@1024"], help="gate case ids")
    p.add_argument("--factors", type=float, nargs="+", default=[1.0, 1.1, 1.3, 2.0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="per side")
    p.add_argument("--pairs", type=int, default=50, help="trials per case and configuration")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--threads", type=int, default=1, help="threads per worker")
    p.add_argument("--output", default="results/regress-power.json")
    args = p.parse_args(argv)
    try:
        rows = measure_power(
            args.cases,
            factors=args.factors,
            workers=args.workers,
            pairs=args.pairs,
            rounds=args.rounds,
            threads=args.threads,
            log=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(power_table(rows))
    doc = {"machine": machine_fingerprint(), "options": vars(args), "rows": rows}
    write_json_atomic(args.output, doc)
    print(f"json: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
