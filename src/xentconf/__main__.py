"""Entry point for ``python -m xentconf``."""

import sys

from xentconf.cli import main

if __name__ == "__main__":
    sys.exit(main())
