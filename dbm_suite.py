"""The suite from any folder after ``pip install``: the ``dbm-suite`` command, and ``import dbm_suite``.

Python's standard library has a package named ``dbm`` (the Unix key-value databases), and the
standard library comes before site-packages on ``sys.path``: an installed ``import dbm`` finds the
standard library's. This module sits next to the installed ``dbm/`` folder (in site-packages, or
in the repository for an editable install) and loads that folder as ``dbm``:

    import dbm_suite                 # this project's package, as sys.modules["dbm"]
    import dbm                       # now the project's: dbm.DBM, dbm.estimator, ...

(From the repository root, ``import dbm`` finds the project's package without this.)
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["load", "main"]


def load():
    """This project's ``dbm`` package (loaded from next to this file, replacing the standard
    library's in ``sys.modules`` if that one was imported)."""
    mod = sys.modules.get("dbm")
    if getattr(mod, "IS_THIS_PROJECT", False):
        return mod
    pkg = Path(__file__).resolve().parent / "dbm"
    if not (pkg / "__init__.py").is_file():
        raise ImportError(f"dbm_suite: the project's package is not at {pkg}; reinstall with pip install .")
    for name in [n for n in sys.modules if n == "dbm" or n.startswith("dbm.")]:
        del sys.modules[name]                     # the standard library's dbm, if anything imported it
    spec = importlib.util.spec_from_file_location("dbm", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dbm"] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    """``dbm-suite <command>``: the command line of ``python -m dbm`` (dbm.cli), from any folder."""
    load()
    from dbm.cli import main as cli_main
    return cli_main(argv, prog="dbm-suite")


load()

if __name__ == "__main__":
    sys.exit(main())
