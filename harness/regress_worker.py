"""Worker process of the regression gate, run as a script (not imported from the package)
so that the code it measures comes from the checkout on its PYTHONPATH, old or new.

The workload module named by ``--workload`` must define ``build_case(case_id) -> fn``,
where ``fn()`` runs the case once. Protocol: one JSON request per line on stdin, one JSON
reply per line on stdout:

    {"op": "time", "case": ID, "calls": k}  ->  {"seconds": mean seconds per call}
    {"op": "quit"}                            ->  (exits)

``--threads N`` sets torch's intra-op threads before the workload is imported (the gate
also sets OMP_NUM_THREADS). The first request for a case builds it and makes one warm-up
call, untimed. Errors are
replied as {"error": message}, so the gate can say which side lacks a case.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    out = sys.stdout
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        module = importlib.import_module(args.workload)
        build = module.build_case
    except (ImportError, AttributeError) as error:
        out.write(json.dumps({"error": f"cannot load {args.workload}.build_case: {error}"}))
        out.write("\n")
        out.flush()
        return 1
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    cases = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            case = request["case"]
            if case not in cases:
                cases[case] = build(case)
                cases[case]()  # warm-up
            fn, calls = cases[case], int(request["calls"])
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            reply = {"seconds": (time.perf_counter() - start) / calls}
        except Exception as error:  # reported to the gate, which names the side
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
