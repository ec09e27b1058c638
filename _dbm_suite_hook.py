"""Run at interpreter start by dbm_suite.pth (installed with the project): when ``python -m dbm``
finds the standard library's ``dbm`` (any folder but the repository root), say what to run instead
of "No module named dbm.__main__". Only the lookup of ``dbm.__main__``, which the standard
library's package does not have, is answered; nothing else is imported or changed."""
import sys


class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "dbm.__main__" or getattr(sys.modules.get("dbm"), "IS_THIS_PROJECT", False):
            return None
        import importlib.machinery
        return importlib.machinery.ModuleSpec(name, _Loader())


MESSAGE = ("python -m dbm found the standard library's dbm package, not this project's (the standard library "
           "comes first on sys.path). Run `dbm-suite <command>` instead (installed with the project), or "
           "`python -m dbm` from the repository root.")


class _Loader:
    """What runpy asks of a loader: the code of ``dbm.__main__``, here one line that says the above."""
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)

    def is_package(self, name):
        return False

    def get_code(self, name):
        return compile(f"import sys; sys.exit({MESSAGE!r})", "<dbm-suite hint>", "exec")


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())
