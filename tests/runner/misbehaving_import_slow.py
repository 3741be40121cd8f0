"""A plugin module whose import takes longer than any sensible per-case limit in tests."""

import time

from misbehaving_methods import RAISES as _unused  # noqa: F401

time.sleep(30)
SPEC = None
