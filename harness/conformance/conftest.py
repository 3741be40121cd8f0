"""The suite's pytest set-up: parametrization over the selected methods and the error log
(see ``pytest_hooks``)."""

from harness.conformance.pytest_hooks import error_log, pytest_generate_tests  # noqa: F401
