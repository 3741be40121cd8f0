"""The installed suite's ``harness.conformance.test_oracle`` on the built-ins (and
``LISA_BENCH_METHODS`` when set): its tests, re-exported here so that the project's own
test run covers them."""

from harness.conformance import test_oracle as _suite

globals().update({name: fn for name, fn in vars(_suite).items() if name.startswith("test_")})
