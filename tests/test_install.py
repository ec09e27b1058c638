"""Installed use (issue 34): after ``pip install`` into a fresh virtual environment, the
``dbm-suite`` command works from any folder although the standard library's ``dbm`` comes first
on sys.path, ``import dbm_suite`` yields this project's package, and ``python -m dbm`` outside the
repository says what to run instead. The wheel is built once (pip, with build isolation) and
installed without dependencies: the fresh environment reads torch and the rest from this one's
site-packages through a .pth file."""
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cwd, check=True):
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and r.returncode:
        raise AssertionError(f"{args} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT], tmp)
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp)
    py = venv / "bin" / "python"
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")   # torch & co. from here
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", next(wheels.glob("dbm-*.whl"))], tmp)
    away = tmp / "elsewhere"
    away.mkdir()
    return venv, away


def test_dbm_suite_command_works_from_any_folder(fresh_venv):
    venv, away = fresh_venv
    r = _run([venv / "bin" / "dbm-suite", "--help"], away)
    assert "usage: dbm-suite" in r.stdout and "export-images" in r.stdout
    r = _run([venv / "bin" / "dbm-suite", "check", "--sizes", "2,2,2", "--chains", "500"], away)
    assert "max |z|" in r.stdout


def test_import_dbm_suite_gives_this_package_and_leaves_the_standard_library_usable(fresh_venv):
    venv, away = fresh_venv
    py = venv / "bin" / "python"
    assert _run([py, "-c", "import dbm; print(hasattr(dbm, 'IS_THIS_PROJECT'))"], away).stdout.strip() == "False"
    r = _run([py, "-c", "import dbm_suite, dbm; print(dbm.IS_THIS_PROJECT, dbm.DBM([3, 2]).layer_sizes)"], away)
    assert r.stdout.split() == ["True", "(3,", "2)"]


def test_python_m_dbm_outside_the_repository_says_what_to_run(fresh_venv):
    venv, away = fresh_venv
    r = _run([venv / "bin" / "python", "-m", "dbm"], away, check=False)
    assert r.returncode != 0 and "dbm-suite" in r.stderr and "No module named" not in r.stderr


def test_editable_install_outside_the_repository_says_what_to_run(tmp_path):
    """This environment (``make venv``: an editable install) reaches dbm.__main__ through the
    editable finder, under the standard library's package: the same message."""
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        distribution("dbm")
    except PackageNotFoundError:
        pytest.skip("the project is not installed in this environment")
    r = _run([sys.executable, "-m", "dbm"], tmp_path, check=False)
    assert r.returncode != 0 and "dbm-suite" in r.stderr
