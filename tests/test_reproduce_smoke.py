"""Every reproduction script runs with --quick (NumPyro's test_examples style)."""
import json
import math
import os
import subprocess
import sys

import pandas as pd

from conftest import ROOT

FIG24_COLUMNS = ["method", "width", "depth", "weight_init", "sigma", "biases", "model_seed",
                 "max_steps", "chain", "metric", "value"]


def run_module(module, *args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_fig24_quick(tmp_path):
    out, work = tmp_path / "results", tmp_path / "runs"
    r = run_module("reproduce.fig24_coupling_time", "--quick", "--out-dir", str(out),
                   "--work-dir", str(work))
    df = pd.read_csv(out / "fig24_coupling_time.csv")
    assert list(df.columns) == FIG24_COLUMNS
    assert df.value.map(math.isfinite).all()
    assert set(df.metric) == {"tau", "tau_capped", "sweeps", "sweeps_capped", "wall_time_s"}
    assert set(df.method) == {"ucd-mh-lmi", "mh-independent-y0", "ucd-gibbs-uniform", "ucd-gibbs-lmi"}
    tau = df[df.metric == "tau"]
    assert (tau.value >= 1).all() and (tau.value <= tau.max_steps).all()
    side = json.loads((out / "fig24_coupling_time.json").read_text())
    assert side["config"]["chains"] == 50 and side["environment"]["torch"] and side["wall_time_s"] > 0
    assert (out / "fig24_coupling_time.png").stat().st_size > 10_000
    assert "P(tau=1)" in r.stdout and "T_loglog_slope" in r.stdout
    # a re-run reuses every finished cell; --plot-only redraws from the CSV alone
    cells = {p: p.stat().st_mtime_ns for p in (work / "fig24_coupling_time").iterdir()}
    run_module("reproduce.fig24_coupling_time", "--quick", "--out-dir", str(out), "--work-dir", str(work))
    assert cells == {p: p.stat().st_mtime_ns for p in (work / "fig24_coupling_time").iterdir()}
    pd.testing.assert_frame_equal(pd.read_csv(out / "fig24_coupling_time.csv"), df)
    (out / "fig24_coupling_time.png").unlink()
    run_module("reproduce.fig24_coupling_time", "--plot-only", "--out-dir", str(out))
    assert (out / "fig24_coupling_time.png").exists()
