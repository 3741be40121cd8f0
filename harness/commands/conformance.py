"""``python -m harness conformance``: run the installed conformance suite on methods.

Each ``--method`` is a registry name (a built-in, an installed entry point, a reference in
``LISA_BENCH_METHODS`` or ``--plugin``) or a ``module:attr`` reference to a MethodSpec (or
a callable returning some: every method it defines is tested). The entry is first checked
for the fields the suite needs (``harness.conformance.requirements``; each problem is
printed naming the field, and fails the suite's entry test); then every property test of
the suite runs on it, in each mode it supports (``harness.conformance``; the suite's own
self-checks are left out). Runs from any directory, on a pip-installed copy too.

Needs pytest and hypothesis (the ``dev`` extra). Exit status: 0 when every test passed,
1 when one failed, 2 for a bad reference, an unknown name or missing pytest/hypothesis,
5 when no test ran; pytest's otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys


def run(args: argparse.Namespace) -> int:
    from harness.conformance import entry_problems
    from harness.conformance.runner import resolve_methods
    from harness.conformance.runner import run as run_suite
    from impls import registry

    missing = [m for m in ("pytest", "hypothesis") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"error: the conformance suite needs {' and '.join(missing)}: "
            "pip install pytest hypothesis (or lisa-bench[dev])",
            file=sys.stderr,
        )
        return 2
    try:
        specs = resolve_methods(args.method, args.plugin)
    except (ValueError, TypeError) as exc:  # PluginError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for spec in specs:
        for problem in entry_problems(spec):
            print(f"method {spec.name!r} ({spec.source}): {problem}", file=sys.stderr)
        ok, reason = registry.availability(spec)
        if not ok:
            print(f"method {spec.name!r} cannot run here: {reason}", file=sys.stderr)
    pytest_args = ["-q"] if not args.verbose else ["-v"]
    if args.k:
        pytest_args += ["-k", args.k]
    if args.exitfirst:
        pytest_args.append("-x")
    code = run_suite(
        specs, junitxml=args.junitxml, results_dir=args.results_dir, pytest_args=pytest_args
    )
    names = ", ".join(s.name for s in specs)
    verdict = {0: "passed", 1: "FAILED", 5: "no test ran"}.get(code, f"pytest exit code {code}")
    print(f"conformance {verdict}: {names}", file=sys.stderr)
    return code


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "conformance",
        help="run the conformance suite on a method (a registry name or module:attr)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME|MODULE:ATTR",
        help="method to test (repeatable)",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="an unpublished method source, so that --method can name its methods",
    )
    parser.add_argument("--junitxml", default=None, help="write a JUnit XML report here")
    parser.add_argument(
        "--results-dir",
        default=None,
        help="measured errors go to RESULTS_DIR/conformance/errors.json "
        "(default: $LISA_BENCH_RESULTS, else ./results)",
    )
    parser.add_argument("-k", default=None, metavar="EXPR", help="pytest -k expression")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per test")
    parser.set_defaults(func=run)
