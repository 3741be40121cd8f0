"""The project's run of the installed conformance suite (``harness.conformance``): the test
modules here re-export the suite's tests, parametrized over the built-in methods plus
``LISA_BENCH_METHODS`` when it is set (never installed entry points)."""

from harness.conformance.pytest_hooks import error_log, pytest_generate_tests  # noqa: F401
