"""``python -m harness <command>``: see ``python -m harness --help``."""

from harness.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
