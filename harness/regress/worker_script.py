"""Worker process of the regression gate, run as a script (not imported from the package)
so that the code it measures comes from the checkout on its PYTHONPATH, old or new.

The workload module named by ``--workload`` must define ``build_case(case_id) -> fn``,
where ``fn()`` runs the case once. It may define ``GATE_CASES`` (the default case ids) and
``check_case(case_id)`` or ``parse_case_id(case_id)``, which raise for an unknown id
without building the case (used to refuse unknown ids before any timing).

Protocol: one JSON request per line, one JSON reply per line, on the process's original
stdin and stdout. Before the workload is imported those two descriptors are moved to
private duplicates, fd 0 is pointed at /dev/null and fd 1 (and ``sys.stdout``) at stderr,
so whatever the measured code prints, writes to fd 1 or reads cannot touch the protocol.

    (on start)                                ->  {"ready": true, "memory_cap": bytes|null}
                                                  or {"error": message} (then exits)
    {"op": "time", "case": ID, "calls": k}    ->  {"seconds": mean seconds per call}
    {"op": "check", "case": ID}               ->  {"known": true|false|null, "message": ...}
    {"op": "cases"}                           ->  {"cases": [IDs] or null}
    {"op": "quit"}                            ->  (exits)

``--memory-cap-bytes N`` lowers the address-space limit (RLIMIT_AS) to N bytes before
anything is imported, where the OS allows it, so a case that allocates too much fails with
MemoryError in this worker instead of taking the machine down. ``--threads N`` sets
torch's intra-op threads once the workload is imported, if it imported torch, before any
case is built (the gate also sets OMP_NUM_THREADS). The first request for a case builds
it and makes one warm-up call, untimed. Exceptions (SystemExit included) are replied as
{"error": message}, so the gate can say which side lacks a case or fails; a crash or hang
is detected by the gate.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time


def cap_address_space(limit: int) -> int | None:
    """Lower this process's soft RLIMIT_AS to ``limit`` bytes (never above the hard limit);
    the limit applied, or None where the OS offers no such limit or refuses it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - platform dependent
        return None
    return limit


def private_channels():
    """Move the protocol off fds 0 and 1 and return (requests, replies) text files on
    private, non-inheritable duplicates of them; fd 0 then reads /dev/null and fd 1 writes
    to stderr, so the measured code can print or read without corrupting the protocol."""
    sys.stdout.flush()
    requests_fd, replies_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)  # still fd 1, which is stderr now
    requests = os.fdopen(requests_fd, "r", encoding="utf-8")
    replies = os.fdopen(replies_fd, "w", encoding="utf-8")
    return requests, replies


def check_case(module, case: str) -> dict:
    """Whether ``case`` is a case id of the workload, without building it: known true or
    false, or null when the workload offers no way to tell."""
    checker = getattr(module, "check_case", None) or getattr(module, "parse_case_id", None)
    if checker is None:
        return {"known": None, "message": "the workload cannot check case ids"}
    try:
        checker(case)
    except Exception as error:
        return {"known": False, "message": f"{type(error).__name__}: {error}"}
    return {"known": True, "message": ""}


def main() -> int:
    """Serve timing requests for the workload named on the command line until "quit" or
    the end of the request stream; the exit code is 1 when the workload cannot be loaded."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory-cap-bytes", type=int, default=None)
    args = parser.parse_args()
    memory_cap = cap_address_space(args.memory_cap_bytes) if args.memory_cap_bytes else None
    requests, out = private_channels()

    def reply(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        module = importlib.import_module(args.workload)
        build = module.build_case
        # torch is not imported here for a workload that does not use it (it alone needs
        # more address space than a small --memory-cap-bytes allows); the parent also sets
        # OMP_NUM_THREADS, which torch reads when the workload imports it
        if args.threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(args.threads)
    except (Exception, SystemExit) as error:
        kind = type(error).__name__
        reply({"error": f"cannot load {args.workload}.build_case: {kind}: {error}"})
        return 1
    reply({"ready": True, "memory_cap": memory_cap})
    cases = {}
    for line in requests:
        request = json.loads(line)
        op = request.get("op")
        if op == "quit":
            break
        if op == "check":
            reply(check_case(module, request["case"]))
            continue
        if op == "cases":
            listed = getattr(module, "GATE_CASES", None)
            reply({"cases": None if listed is None else [str(c) for c in listed]})
            continue
        try:
            case = request["case"]
            if case not in cases:
                cases[case] = build(case)
                cases[case]()  # warm-up
            fn, calls = cases[case], int(request["calls"])
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            message = {"seconds": (time.perf_counter() - start) / calls}
        except (Exception, SystemExit) as error:  # reported to the gate, which names the side
            message = {"error": f"{type(error).__name__}: {error}"}
        reply(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
