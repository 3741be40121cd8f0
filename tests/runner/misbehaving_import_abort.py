"""A plugin module whose import kills the interpreter."""

import os

os.abort()
