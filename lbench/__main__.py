"""``python -m lbench``."""

import sys

from lbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
