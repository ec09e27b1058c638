"""Every entry point imports this project's ``dbm``, never the standard library's."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def run(args, cwd=ROOT, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_pytest_imports_project_dbm():
    import dbm
    assert getattr(dbm, "IS_THIS_PROJECT", False) and hasattr(dbm, "DBM")


@pytest.mark.parametrize("module", ["dbm", "reproduce.fig24_coupling_time", "reproduce.ebm_anatomy_toy",
                                    "reproduce.ebm_anatomy_mnist"])
def test_modules_run_from_root_import_project_dbm(module):
    r = run(["-m", module, "--help"])
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


def test_stdlib_dbm_wins_outside_the_repository(tmp_path):
    r = run(["-c", "import dbm; print(hasattr(dbm, 'IS_THIS_PROJECT'))"], cwd=tmp_path)
    assert r.stdout.strip() == "False"      # why the README asks for PYTHONPATH
    r = run(["-c", "import dbm; print(hasattr(dbm, 'IS_THIS_PROJECT'))"], cwd=tmp_path,
            env_extra={"PYTHONPATH": str(ROOT)})
    assert r.stdout.strip() == "True"


def test_script_started_as_a_file_fails_clearly():
    r = run([str(ROOT / "reproduce" / "fig24_coupling_time.py"), "--help"])
    assert r.returncode != 0
    assert "python -m reproduce.fig24_coupling_time" in r.stderr
