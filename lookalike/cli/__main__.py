"""``python -m lookalike.cli``: the ``lookalike`` command."""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    sys.exit(main())
