"""Paired, interleaved timing of two revisions on this machine, for the regression gate.

Revisions are checked first: each must name a commit (``git rev-parse --verify
--end-of-options REV^{commit}``; text starting with ``-`` is refused outright) and only the
resolved SHA is passed on to git, so a revision can never be read as an option. The special
revision :data:`WORKTREE` names the working tree: the current content of every tracked
file, uncommitted changes included (untracked files are left out). A working tree with
uncommitted changes to tracked files is refused unless ``allow_dirty`` is set; with it, a
commit revision (``HEAD`` included) still means the commit, and only ``WORKTREE`` times the
uncommitted content.

Each commit is exported with ``git archive`` into a temporary folder (extracted with
tarfile's "data" filter where this Python has it, else with an equivalent check that
rejects absolute paths, ``..`` and links leading outside) and served by
``workers_per_side`` long-lived worker processes (``worker_script.py`` with that folder
first on PYTHONPATH, in a process group of its own, address space capped at
``memory_cap`` bytes), each limited to ``threads`` threads. For every case, round after
round, base and head are timed back to back in a random (seeded) order, so slow drifts of
the machine hit both sides alike; round r uses worker r mod k of each side. Rotating
processes matters: two single processes running identical code can differ systematically
(layout, allocator state; a 0.72x-1.51x A/A ratio was seen on the oracle case with one
worker per side), and with several per side that effect shows up as spread, which the
noise floor absorbs, instead of as a consistent shift. The paired samples go to
:func:`harness.regress.verdict.judge`.

A case that raises, crashes its worker (abort, ``os._exit``, a signal) or does not answer
within ``case_timeout`` seconds (the worker's process group is then killed) becomes that
case's error, naming the side and the exit code, signal or timeout; the broken worker is
replaced for the remaining cases, which are still judged.
"""

from __future__ import annotations

import json
import math
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from harness.regress.verdict import judge, order_statistic_rank

__all__ = [
    "WORKTREE",
    "CaseFailure",
    "GateError",
    "OptionError",
    "Worker",
    "check_options",
    "compare_commits",
    "default_memory_cap",
    "export_commit",
    "export_worktree",
    "extract_archive",
    "resolve_revision",
]

WORKER_SCRIPT = Path(__file__).with_name("worker_script.py")
WORKTREE = "WORKTREE"
#: a worker may take this long to start (import torch and the workload) at the least
MIN_STARTUP_TIMEOUT_S = 120.0


class GateError(RuntimeError):
    """A comparison that cannot be made (missing commit, case or workload)."""


class OptionError(GateError, ValueError):
    """An option value the gate cannot work with; the message names the option."""


class CaseFailure(GateError):
    """One request to a worker failed; ``kind`` is "error" (the case raised), "crash"
    (the worker died), "timeout" or "protocol" (an unreadable reply)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def _git(repo: str | os.PathLike, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    except FileNotFoundError as error:
        raise GateError("git is not installed") from error


def _toplevel(repo: str | os.PathLike) -> Path:
    found = _git(repo, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise GateError(f"{repo} is not a git working tree: {found.stderr.decode().strip()}")
    return Path(found.stdout.decode().strip())


def resolve_revision(repo: str | os.PathLike, rev: str, role: str = "revision") -> str:
    """The full SHA of the commit ``rev`` names in ``repo``; GateError naming ``rev`` (and
    ``role``, e.g. "base") when it names no commit or could be read as an option."""
    if not rev or rev.startswith("-"):
        raise GateError(
            f"{role} revision {rev!r} is not a commit (revisions cannot start with '-')"
        )
    found = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    sha = found.stdout.decode().strip()
    if found.returncode != 0 or not sha:
        raise GateError(f"{role} revision {rev!r} is not a commit in {repo}")
    return sha


def dirty_files(repo: str | os.PathLike) -> list[str]:
    """``git status --porcelain`` lines of tracked files with uncommitted (staged or not)
    changes; untracked files do not count."""
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    if status.returncode != 0:
        raise GateError(f"git status failed in {repo}: {status.stderr.decode().strip()}")
    return [line for line in status.stdout.decode(errors="replace").splitlines() if line]


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def _extract_checked(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract regular files, folders and links of ``tar`` into ``dest``, refusing (GateError)
    absolute names, ``..`` components, links that lead outside ``dest`` and special files."""
    root = os.path.realpath(dest)
    for member in tar:
        name = member.name
        parts = PurePosixPath(name).parts
        if PurePosixPath(name).is_absolute() or os.path.isabs(name) or ".." in parts:
            raise GateError(f"unsafe archive member {name!r}: absolute or with '..'")
        target = os.path.join(root, *parts)
        if not _inside(root, os.path.realpath(os.path.dirname(target))):
            raise GateError(f"unsafe archive member {name!r}: its folder leads outside")
        if os.path.lexists(target) and not os.path.isdir(target):
            os.remove(target)
        if member.isdir():
            os.makedirs(target, exist_ok=True)
        elif member.isreg():
            source = tar.extractfile(member)
            with source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
        elif member.issym():
            link = member.linkname
            resolved = os.path.realpath(os.path.join(os.path.dirname(target), link))
            if os.path.isabs(link) or not _inside(root, resolved):
                raise GateError(f"unsafe archive member {name!r}: link to {link!r} leads outside")
            os.symlink(link, target)
        elif member.islnk():
            link_parts = PurePosixPath(member.linkname).parts
            source = os.path.realpath(os.path.join(root, *link_parts))
            if os.path.isabs(member.linkname) or ".." in link_parts or not _inside(root, source):
                raise GateError(f"unsafe archive member {name!r}: hard link leads outside")
            shutil.copy2(source, target)
        else:
            raise GateError(f"unsafe archive member {name!r}: not a file, folder or link")


def extract_archive(tar: tarfile.TarFile, dest: str | os.PathLike) -> None:
    """Extract ``tar`` into ``dest`` safely on every Python 3.11: with the "data" filter
    where tarfile has it (3.11.4+), else with an equivalent check of every member."""
    try:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            _extract_checked(tar, Path(dest))
    except (tarfile.TarError, OSError) as error:  # FilterError is a TarError
        raise GateError(f"cannot extract the archive safely: {error}") from error


def export_commit(repo: str | os.PathLike, rev: str, dest: str | os.PathLike) -> Path:
    """Write the tree of commit ``rev`` of ``repo`` into ``dest`` (``rev`` is verified with
    :func:`resolve_revision` first; only its SHA reaches ``git archive``)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    top = _toplevel(repo)
    sha = resolve_revision(top, rev)
    with tempfile.TemporaryFile() as tar_file:
        try:
            archive = subprocess.run(
                ["git", "-C", str(top), "archive", "--format=tar", sha],
                stdout=tar_file,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError as error:
            raise GateError("git is not installed") from error
        if archive.returncode != 0:
            raise GateError(f"cannot export {rev!r}: {archive.stderr.decode().strip()}")
        tar_file.seek(0)
        with tarfile.open(fileobj=tar_file) as tar:
            extract_archive(tar, dest)
    return dest


def export_worktree(repo: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy the working-tree content of every tracked file of ``repo`` (uncommitted changes
    included; untracked files, deleted files and submodules left out) into ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    top = _toplevel(repo)
    listed = _git(top, "ls-files", "-z", "--cached")
    if listed.returncode != 0:
        raise GateError(f"git ls-files failed in {top}: {listed.stderr.decode().strip()}")
    for raw in dict.fromkeys(listed.stdout.split(b"\0")):
        if not raw:
            continue
        relative = os.fsdecode(raw)
        source, target = top / relative, dest / relative
        if source.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(source), target)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def default_memory_cap(fraction: float = 0.8) -> int | None:
    """``fraction`` of the memory available now (MemAvailable on Linux, free pages
    elsewhere), in bytes; None when it cannot be determined."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * fraction)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * fraction)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Worker:
    """A worker process timing cases from the code in ``source`` (see worker_script).

    Every request waits at most ``timeout`` seconds for its reply (starting: at least
    :data:`MIN_STARTUP_TIMEOUT_S`); on a timeout, a crash or an unreadable reply the
    worker's process group is killed, :attr:`alive` turns false and CaseFailure is raised.
    """

    def __init__(
        self,
        source: Path,
        workload: str,
        label: str,
        threads: int | None = None,
        *,
        timeout: float = 300.0,
        memory_cap: int | None = None,
        wait: bool = True,
    ):
        self.label = label
        self._ready = False
        self.timeout = timeout
        self.memory_cap = None
        self._buffer = b""
        self._broken = False
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        command = [sys.executable, str(WORKER_SCRIPT), "--workload", workload]
        if threads:
            command += ["--threads", str(threads)]
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        if memory_cap:
            command += ["--memory-cap-bytes", str(int(memory_cap))]
        self.process = subprocess.Popen(
            command,
            cwd=source,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # its own process group, killed as a whole
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout.fileno(), selectors.EVENT_READ)
        self._started = time.monotonic()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait for the worker's greeting (it has imported the workload); GateError when
        it cannot load the workload, CaseFailure when it dies or does not answer in time.
        Several workers started with ``wait=False`` load in parallel."""
        if self._ready:
            return
        limit = max(self.timeout, MIN_STARTUP_TIMEOUT_S)
        left = max(0.0, limit - (time.monotonic() - self._started))
        hello = self._read(left, "while starting", limit)
        if "error" in hello:
            self.close()
            raise GateError(f"{self.label}: {hello['error']}")
        self.memory_cap = hello.get("memory_cap")
        self._ready = True

    @property
    def alive(self) -> bool:
        """True while the worker can take requests."""
        return not self._broken and self.process.returncode is None

    def _exited(self) -> bool:
        """Whether the worker has exited, without reaping it (its pid stays reserved)."""
        try:
            return (
                os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                is not None
            )
        except ChildProcessError:
            return True
        except AttributeError:  # pragma: no cover - no waitid on this OS
            return self.process.poll() is not None

    def _reap(self, grace: float) -> int:
        """Give the worker ``grace`` seconds to exit by itself, kill what is left of its
        process group (the leader is not reaped yet, so its pid names no other group),
        then reap it; the exit code."""
        deadline = time.monotonic() + grace
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, AttributeError):
                pass
        code = self.process.wait()
        self._broken = True
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._selector.close()
        return code

    def _failure(self, doing: str) -> CaseFailure:
        code = self._reap(grace=5.0)
        return CaseFailure(f"{self.label} crashed {doing}: {_describe_exit(code)}", "crash")

    def _read(self, timeout: float, doing: str, limit: float | None = None) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._reap(grace=0.0)
                raise CaseFailure(
                    f"{self.label} timed out after {limit or timeout:g} s {doing}; worker killed",
                    "timeout",
                )
            if self._selector.select(min(left, 0.5)):
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise self._failure(doing)
                self._buffer += chunk
            elif self._exited():  # e.g. a child of the case still holds the pipe open
                raise self._failure(doing)
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            self._reap(grace=0.0)
            raise CaseFailure(
                f"{self.label} sent an unreadable reply {doing}: {line[:80]!r}", "protocol"
            ) from None

    def request(self, message: dict, doing: str) -> dict:
        """Send one request and return its reply (CaseFailure on a crash or timeout)."""
        if not self.alive:
            raise CaseFailure(f"{self.label} is not running {doing}", "crash")
        self.wait_ready()
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except OSError:  # BrokenPipeError: it died before reading the request
            raise self._failure(doing) from None
        return self._read(self.timeout, doing)

    def time(self, case: str, calls: int) -> float:
        """Mean seconds per call of ``case`` over ``calls`` calls."""
        doing = f"timing case {case!r}"
        reply = self.request({"op": "time", "case": case, "calls": calls}, doing)
        if "error" in reply:
            raise CaseFailure(f"{self.label}, case {case!r}: {reply['error']}", "error")
        return float(reply["seconds"])

    def check(self, case: str) -> tuple[bool | None, str]:
        """Whether the workload knows ``case`` (None: it cannot tell), and why not."""
        reply = self.request({"op": "check", "case": case}, f"checking case {case!r}")
        return reply.get("known"), reply.get("message", "")

    def gate_cases(self) -> list[str] | None:
        """The workload's GATE_CASES, or None when it defines none."""
        return self.request({"op": "cases"}, "listing GATE_CASES").get("cases")

    def close(self) -> None:
        """Ask the worker to quit, then make sure it and its process group are gone."""
        if not self.alive:
            return
        if not self._ready:  # still loading: nothing to wait for
            self._reap(grace=0.0)
            return
        try:
            self.process.stdin.write(b'{"op": "quit"}\n')
            self.process.stdin.flush()
        except OSError:
            pass
        self._reap(grace=10.0)


def check_options(
    *,
    rounds: int = 21,
    alpha: float = 0.01,
    min_floor: float = 0.05,
    min_sample_s: float = 0.02,
    workers_per_side: int = 1,
    threads: int | None = None,
    case_timeout: float = 300.0,
    memory_cap: int | None = None,
) -> None:
    """Raise OptionError, naming the command-line option, for a value the gate cannot use
    (before anything is exported or timed)."""

    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not number(alpha) or not 0 < alpha < 0.5:
        raise OptionError(f"--alpha must be in (0, 0.5), got {alpha!r}")
    if not integer(rounds) or rounds < 1:
        raise OptionError(f"--rounds must be an integer >= 1, got {rounds!r}")
    if order_statistic_rank(rounds, alpha) is None:
        need = next(n for n in range(1, 10_000) if order_statistic_rank(n, alpha) is not None)
        raise OptionError(f"--rounds {rounds} cannot reach --alpha {alpha}; need at least {need}")
    if not number(min_floor) or not 0 <= min_floor < math.inf:
        raise OptionError(f"--min-floor must be a finite number >= 0, got {min_floor!r}")
    if not number(min_sample_s) or not 0 < min_sample_s < math.inf:
        raise OptionError(f"min_sample_s must be a finite number > 0, got {min_sample_s!r}")
    if not integer(workers_per_side) or workers_per_side < 1:
        raise OptionError(f"--workers-per-side must be an integer >= 1, got {workers_per_side!r}")
    if threads is not None and (not integer(threads) or threads < 1):
        raise OptionError(f"--threads must be an integer >= 0, got {threads!r}")
    if not number(case_timeout) or not 0 < case_timeout < math.inf:
        raise OptionError(f"--case-timeout must be a finite number > 0, got {case_timeout!r}")
    if memory_cap is not None and (not integer(memory_cap) or memory_cap <= 0):
        raise OptionError(f"--memory-cap-gb must be a number >= 0, got {memory_cap!r} bytes")


class _Side:
    """The workers serving one revision; a broken worker is replaced when next used."""

    def __init__(self, name: str, rev: str, count: int, start):
        self.name, self.rev, self._start = name, rev, start
        self.workers = [None] * count

    def worker(self, k: int) -> Worker:
        worker = self.workers[k]
        if worker is None or not worker.alive:
            worker = self.workers[k] = self._start(f"{self.name} {self.rev} (worker {k})")
        return worker

    def start_all(self) -> None:
        """Start every worker without waiting for any to be ready."""
        for k in range(len(self.workers)):
            self.workers[k] = self._start(f"{self.name} {self.rev} (worker {k})", wait=False)

    def close(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.close()


def compare_commits(
    repo: str | os.PathLike,
    base: str,
    head: str,
    cases: list[str] | None,
    *,
    workload: str,
    rounds: int = 21,
    alpha: float = 0.01,
    min_floor: float = 0.05,
    min_sample_s: float = 0.02,
    seed: int = 0,
    workers_per_side: int = 1,
    threads: int | None = None,
    case_timeout: float = 300.0,
    memory_cap: int | None = None,
    allow_dirty: bool = False,
    progress=None,
) -> dict:
    """Time every case on both revisions in interleaved rounds and judge each.

    ``base`` and ``head`` are commit-ish revisions or :data:`WORKTREE`; ``cases`` None
    means the head workload's GATE_CASES. ``workers_per_side`` processes serve each
    revision, in rotation; ``threads`` limits each worker's torch/OpenMP threads (None:
    library default); ``case_timeout`` bounds each request to a worker (building the case,
    its warm-up, one sample); ``memory_cap`` caps each worker's address space in bytes
    (None: no cap). ``progress(done, total)`` is called as rounds complete.

    Raises OptionError/GateError before any timing for bad options, revisions, a dirty
    working tree (unless ``allow_dirty``), a workload that does not load, or case ids that
    neither side knows. Returns {case: verdict dict (+ base/head samples)} or
    {case: {"error": message, "error_kind": kind, "side": side}}."""
    check_options(
        rounds=rounds,
        alpha=alpha,
        min_floor=min_floor,
        min_sample_s=min_sample_s,
        workers_per_side=workers_per_side,
        threads=threads,
        case_timeout=case_timeout,
        memory_cap=memory_cap,
    )
    if cases is not None and len(set(cases)) != len(cases):
        raise OptionError(f"--cases lists a case id twice: {list(cases)!r}")
    top = _toplevel(repo)
    revisions = {"base": base, "head": head}
    commits = {
        role: rev if rev == WORKTREE else resolve_revision(top, rev, role)
        for role, rev in revisions.items()
    }
    dirty = dirty_files(top)
    if dirty and not allow_dirty:
        shown = "; ".join(dirty[:5]) + ("; ..." if len(dirty) > 5 else "")
        raise GateError(
            f"the working tree of {top} has uncommitted changes to tracked files ({shown}); "
            f"commit or stash them, or pass --allow-dirty (and name the working tree "
            f"{WORKTREE} to time them)"
        )
    rng = random.Random(seed)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="regress-") as folder, ExitStack() as stack:
        sides: dict[str, _Side] = {}
        for role, rev in revisions.items():
            dest = Path(folder) / role
            if rev == WORKTREE:
                source = export_worktree(top, dest)
            else:
                source = export_commit(top, commits[role], dest)

            def start(label, wait=True, source=source):
                return Worker(
                    source,
                    workload,
                    label,
                    threads,
                    timeout=case_timeout,
                    memory_cap=memory_cap,
                    wait=wait,
                )

            sides[role] = _Side(role, rev, workers_per_side, start)
            stack.callback(sides[role].close)
        for side in sides.values():  # all load at once, then all must greet
            side.start_all()
        for side in sides.values():
            for k in range(workers_per_side):
                side.worker(k).wait_ready()
        if cases is None:
            cases = sides["head"].worker(0).gate_cases()
            if not cases:
                raise OptionError(f"--cases not given and {workload} defines no GATE_CASES")
        skip = _check_cases(sides, cases)
        total = len(cases) * rounds
        for i, case in enumerate(cases):
            side_name = None
            try:
                if case in skip:
                    results[case] = skip[case]
                    continue
                one_call = 0.0
                for side_name in ("base", "head"):
                    one_call = max(one_call, sides[side_name].worker(0).time(case, 1))
                calls = max(1, math.ceil(min_sample_s / max(one_call, 1e-9)))
                samples = {"base": [], "head": []}
                for r in range(rounds):
                    order = ["base", "head"] if rng.random() < 0.5 else ["head", "base"]
                    for side_name in order:
                        worker = sides[side_name].worker(r % workers_per_side)
                        samples[side_name].append(worker.time(case, calls))
                    if progress is not None and r + 1 < rounds:
                        progress(i * rounds + r + 1, total)
                side_name = None
                verdict = judge(samples["base"], samples["head"], alpha=alpha, min_floor=min_floor)
                results[case] = {**verdict.as_dict(), "calls_per_sample": calls, **samples}
            except (GateError, ValueError) as error:
                kind = error.kind if isinstance(error, CaseFailure) else "error"
                results[case] = {"error": str(error), "error_kind": kind, "side": side_name}
            finally:
                if progress is not None:
                    progress((i + 1) * rounds, total)
    return results


def _check_cases(sides: dict[str, _Side], cases: list[str]) -> dict[str, dict]:
    """Ask worker 0 of each side whether it knows each case: OptionError for an id neither
    side knows; {case: error result} for ids only one side lacks (those are not timed)."""
    skip: dict[str, dict] = {}
    for case in cases:
        verdicts = {}
        for name, side in sides.items():
            try:
                verdicts[name] = side.worker(0).check(case)
            except CaseFailure:
                verdicts[name] = (None, "")
        if all(known is False for known, _ in verdicts.values()):
            raise OptionError(f"--cases: unknown case id {case!r} ({verdicts['head'][1]})")
        for name, (known, message) in verdicts.items():
            if known is False:
                skip[case] = {
                    "error": f"case {case!r} is not in the {name} revision's workload: {message}",
                    "error_kind": "unknown-case",
                    "side": name,
                }
    return skip
