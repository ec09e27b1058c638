"""``python -m dbm``: the command-line interface (run from the repository root)."""
import sys

from .cli import main

sys.exit(main())
