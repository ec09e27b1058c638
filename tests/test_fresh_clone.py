"""The quick targets in a fresh clone change no tracked file (issue 15): their outputs go to the
git-ignored results/quick/ and runs/. The scripts are run as the Makefile runs them (without
building a second .venv: this interpreter serves)."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, synthetic_mnist

QUICK = [("reproduce.fig24_coupling_time", ()),
         ("reproduce.bias_study", ("--shapes", "3-3-3", "--chains", "500", "--estimators", "cd-1,ucd-mh-lmi")),
         ("reproduce.fig25_end_to_end", ("--datasets", "mnist", "--updates", "10", "--methods", "ucd-mh-lmi,cd")),
         ("reproduce.ebm_anatomy_toy", ())]


@pytest.mark.slow
def test_quick_targets_leave_a_fresh_clone_clean(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    data = synthetic_mnist(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DBM_DATA_DIR"] = str(data)
    for module, args in QUICK:
        r = subprocess.run([sys.executable, "-m", module, "--quick", *args], cwd=clone, env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (module, r.stdout[-2000:], r.stderr[-2000:])
        assert (clone / "results" / "quick").is_dir()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout
