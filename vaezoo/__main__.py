"""``python -m vaezoo`` (and ``torchrun -m vaezoo``): the command line, see ``vaezoo.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
