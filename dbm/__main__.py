"""``python -m dbm``: the command-line interface (from the repository root; ``dbm-suite`` anywhere)."""
import sys

if not getattr(sys.modules.get("dbm"), "IS_THIS_PROJECT", False):
    # reached through an editable install's finder under the standard library's dbm package
    from _dbm_suite_hook import MESSAGE
    sys.exit(MESSAGE)

from .cli import main  # noqa: E402

sys.exit(main())
