"""The isolation options every command that calls methods shares: ``--timeout`` and
``--memory-cap-gb`` (and ``--threads`` where the command has it)."""

from __future__ import annotations

import argparse
import os

from harness.runner.isolation import DEFAULT_TIMEOUT_S, Limits, parse_memory_cap

__all__ = ["add_isolation_arguments", "limits_from_args"]


def add_isolation_arguments(
    parser: argparse.ArgumentParser, *, timeout_s: float = DEFAULT_TIMEOUT_S
):
    """Add ``--timeout`` and ``--memory-cap-gb`` to ``parser``."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout_s,
        metavar="SECONDS",
        help=f"per-case limit; a case past it is killed and reported as 'timeout' "
        f"(default {timeout_s:g})",
    )
    parser.add_argument(
        "--memory-cap-gb",
        type=float,
        default=None,
        metavar="GIB",
        help="address-space cap of the worker process running the methods; an allocation "
        "past it fails that case alone (default: 80%% of the memory available at start; "
        "0 = no cap)",
    )


def limits_from_args(args: argparse.Namespace) -> Limits:
    """:class:`Limits` from the parsed options (ValueError naming the bad option)."""
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
    return Limits(
        timeout_s=args.timeout,
        memory_cap_bytes=parse_memory_cap(args.memory_cap_gb),
        threads=getattr(args, "threads", None),
    )


def machine_load(threads: int | None) -> dict:
    """The 1-minute load average at the start of a run, beside the cores and the thread
    count the workers will use, with a warning when other work is running: torch's thread
    barriers stall the chunked methods 100-400x when their threads share busy cores, so a
    multi-threaded run on a busy machine measures the machine, not the method."""
    import torch

    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        load = None
    used = threads or torch.get_num_threads()
    busy = load is not None and used > 1 and load > 0.5 * cores
    warning = (
        f"the machine is busy (load {load:.1f} on {cores} cores) and each worker uses "
        f"{used} threads: timings will be stretched; use --threads 1 on a shared machine"
        if busy
        else None
    )
    return {"load_1m": load, "cores": cores, "threads": used, "warning": warning}
