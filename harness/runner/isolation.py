"""Isolated calls: every method call the harness times, scores or checks runs in a worker
process with a per-call timeout and a memory cap, so a method that crashes, hangs or
allocates without end becomes a status, never a lost run.

The worker pool is pebble's ``ProcessPool`` (a maintained library: per-task timeouts, a
dead worker is detected and replaced) with one worker, started through a ``forkserver``
that has torch imported already, so a replacement worker costs milliseconds, not the
seconds of a fresh interpreter. A worker:

* caps its address space (``RLIMIT_AS``) at ``memory_cap_bytes`` where the OS allows, so
  an allocation past the cap raises inside the worker (status ``oom``) instead of taking
  the machine down;
* limits torch to ``threads`` intra-op threads when given;
* ignores SIGINT (Ctrl-C stops the parent, which then ends the pool; a worker must not
  turn an interrupt into a result row);
* exits at once when the run that made it dies without closing the pool (SIGTERM,
  SIGKILL, a crash): it holds the read end of a pipe whose only write end is the
  run's, and a daemon thread waits for its end of file. (The forkserver cannot serve:
  it lives as long as any of its children, so the worker's parent never changes.)
  Without this the worker went on computing a call nobody would read; an orphaned
  training run holding a core for an hour was seen;
* sends its stdout to stderr, so a method's ``print`` never mixes with the tables;
* takes the environment and import path of the runner that made it (the forkserver
  itself keeps those of the first run in a process).

Statuses of an :class:`Outcome`: ``ok``; ``error`` (the call raised; message = exception
and the last traceback lines); ``oom`` (it raised an out-of-memory error); ``timeout`` (it
ran past its limit and the worker was killed); ``crashed`` (the worker died: a signal such
as SIGABRT or SIGSEGV, or ``os._exit``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Limits",
    "Outcome",
    "InlineRunner",
    "IsolatedRunner",
    "default_memory_cap",
    "parse_memory_cap",
]

DEFAULT_TIMEOUT_S = 600.0
_CAP_FRACTION = 0.8  # of the memory available when the run starts


def default_memory_cap() -> int:
    """80% of the memory available now (bytes): a runaway method fails alone instead of
    pushing the machine into swap or the OOM killer."""
    from harness.measure import available_memory_bytes

    return int(_CAP_FRACTION * available_memory_bytes("cpu"))


def parse_memory_cap(gib: float | None) -> int | None:
    """``--memory-cap-gb`` to bytes: None -> the default cap, 0 -> no cap."""
    if gib is None:
        return default_memory_cap()
    if gib < 0:
        raise ValueError(f"--memory-cap-gb must be >= 0 (0 = no cap), got {gib}")
    return None if gib == 0 else int(gib * 2**30)


@dataclass(frozen=True)
class Limits:
    """Per-call limits of the worker. ``timeout_s`` None = wait forever; ``memory_cap_bytes``
    None = no cap; ``threads`` None = torch's default."""

    timeout_s: float | None = DEFAULT_TIMEOUT_S
    memory_cap_bytes: int | None = None
    threads: int | None = None

    def __post_init__(self):
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout_s}")
        if self.memory_cap_bytes is not None and self.memory_cap_bytes <= 0:
            raise ValueError(f"memory cap must be > 0 bytes, got {self.memory_cap_bytes}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def as_dict(self) -> dict:
        return {
            "timeout_s": self.timeout_s,
            "memory_cap_bytes": self.memory_cap_bytes,
            "threads": self.threads,
        }


@dataclass
class Outcome:
    """What one isolated call gave: ``status`` (see the module docstring), its return value
    when ok, a one-paragraph ``message`` otherwise, and the wall seconds it took."""

    status: str
    value: Any = None
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """``status: message`` for a result row."""
        return self.status if self.ok else f"{self.status}: {self.message}"


def _worker_init(
    memory_cap: int | None, threads: int | None, environ: dict, path: list[str], lifeline
) -> None:
    # the forkserver keeps the environment and import path of the run that started it;
    # each worker takes those of the runner that made it
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_run(lifeline)
    os.dup2(2, 1)  # a method's print() goes to stderr, never into the parent's tables
    if memory_cap is not None:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))
        except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX
            pass
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _exit_with_run(lifeline) -> None:
    """Start a daemon thread that ends this process (exit status 3) when ``lifeline``
    (the read end of a pipe, a ``multiprocessing`` Connection) reaches end of file: the
    run holds the only write end, so that happens when the run closes the pool or dies."""
    import threading

    def watch() -> None:
        try:
            while True:
                lifeline.recv_bytes()  # nothing is ever sent; returns only on EOF (raises)
        except (EOFError, OSError):
            os._exit(3)

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()


class _Raised(Exception):
    """Carries an exception's text out of the worker (tracebacks do not pickle)."""

    def __init__(self, kind: str, text: str, oom: bool):
        super().__init__(kind, text, oom)
        self.kind, self.text, self.oom = kind, text, oom


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    markers = ("out of memory", "can't allocate", "not enough memory", "failed to allocate")
    return isinstance(error, RuntimeError) and any(m in text for m in markers)


def _call(fn, args, kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - reported as the call's outcome
        tail = "".join(traceback.format_exception(error)[-3:]).strip()
        raise _Raised(
            type(error).__name__, f"{type(error).__name__}: {error}\n{tail}", _is_oom(error)
        ) from None


def _signal_name(code: int | None) -> str:
    if code is None:
        return "worker died"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"worker exited with code {code}"


class IsolatedRunner:
    """One worker process that runs calls under :class:`Limits` (see the module docstring).

    Use as a context manager; :meth:`call` never raises for what the called function does.
    Calls run one at a time; the worker (and whatever the called functions cache in it,
    e.g. built methods) lives until a call kills it, then a fresh one takes over."""

    def __init__(self, limits: Limits | None = None, *, preload: tuple[str, ...] = ("torch",)):
        import pebble

        self.limits = limits or Limits()
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))
        # the worker exits when this write end closes (see the module docstring)
        self._lifeline, self._lifeline_w = context.Pipe(duplex=False)
        self._pool = pebble.ProcessPool(
            max_workers=1,
            context=context,
            initializer=_worker_init,
            initargs=(
                self.limits.memory_cap_bytes,
                self.limits.threads,
                dict(os.environ),
                list(sys.path),
                self._lifeline,
            ),
        )
        self.restarts = 0

    def call(self, fn, *args, timeout_s: float | None = None, **kwargs) -> Outcome:
        """Run ``fn(*args, **kwargs)`` in the worker (``fn`` and its arguments must pickle:
        module-level functions and plain data). ``timeout_s`` overrides the limit."""
        import pebble

        limit = timeout_s if timeout_s is not None else self.limits.timeout_s
        started = time.perf_counter()
        future = self._pool.schedule(_call, args=(fn, args, kwargs), timeout=limit)
        try:
            value = future.result()
        except FutureTimeout:
            self.restarts += 1
            return Outcome("timeout", None, f"no answer after {limit:g} s", self._since(started))
        except pebble.ProcessExpired as expired:
            self.restarts += 1
            message = _signal_name(expired.exitcode)
            return Outcome("crashed", None, message, self._since(started))
        except _Raised as raised:
            status = "oom" if raised.oom else "error"
            return Outcome(status, None, raised.text, self._since(started))
        except BaseException:
            future.cancel()
            raise
        return Outcome("ok", value, "", self._since(started))

    @staticmethod
    def _since(started: float) -> float:
        return time.perf_counter() - started

    def close(self) -> None:
        """Stop the worker (at once: a call in flight is abandoned)."""
        self._pool.stop()
        self._pool.join(timeout=10)
        self._lifeline_w.close()
        self._lifeline.close()

    def __enter__(self) -> IsolatedRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InlineRunner:
    """:class:`IsolatedRunner`'s interface in this process, without isolation: an
    exception becomes an ``error``/``oom`` outcome, but a crash or hang takes the caller
    with it and no limit applies. For tests that patch this process (mocked CUDA) and
    for profiling a method; never the default of a command."""

    limits = Limits(timeout_s=None)
    restarts = 0

    def call(self, fn, *args, timeout_s: float | None = None, **kwargs) -> Outcome:
        started = time.perf_counter()
        try:
            value = _call(fn, args, kwargs)
        except _Raised as raised:
            status = "oom" if raised.oom else "error"
            return Outcome(status, None, raised.text, time.perf_counter() - started)
        return Outcome("ok", value, "", time.perf_counter() - started)

    def close(self) -> None:
        pass

    def __enter__(self) -> InlineRunner:
        return self

    def __exit__(self, *exc) -> None:
        pass
