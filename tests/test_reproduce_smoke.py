"""Every reproduction script runs with --quick (NumPyro's test_examples style)."""
import json
import math
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT

FIG24_COLUMNS = ["method", "width", "depth", "weight_init", "sigma", "biases", "model_seed",
                 "max_steps", "chain", "metric", "value"]


def read_tables(out, name):
    """A script's summary table and its separate trace table (``<name>_trace.csv``), as one frame."""
    df = pd.read_csv(out / f"{name}.csv")
    trace = out / f"{name}_trace.csv"
    assert trace.exists(), "trace rows must live in their own file"
    side = json.loads(trace.with_suffix(".json").read_text())            # with its own sidecar
    assert {"config", "environment", "wall_time_s", "profile"} <= set(side)
    assert "trace" not in set(df.get("kind", []))
    return pd.concat([df, pd.read_csv(trace)], ignore_index=True)


def run_module(module, *args, timeout=600, check=True):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 or not check, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_fig24_quick(tmp_path):
    out, work = tmp_path / "results", tmp_path / "runs"
    r = run_module("reproduce.fig24_coupling_time", "--quick", "--out-dir", str(out),
                   "--work-dir", str(work))
    df = pd.read_csv(out / "fig24_coupling_time.csv")
    assert list(df.columns) == FIG24_COLUMNS
    assert df.value.map(math.isfinite).all()
    assert set(df.metric) == {"tau", "tau_capped", "sweeps", "sweeps_capped", "residual_capped", "wall_time_s"}
    assert set(df[df.metric == "residual_capped"].method) == {"ucd-gibbs-uniform", "ucd-gibbs-lmi", "ucd-mh-lmi-mixed"}
    assert set(df.method) == {"ucd-mh-lmi", "mh-independent-y0", "ucd-gibbs-uniform", "ucd-gibbs-lmi", "ucd-mh-lmi-mixed",
                              "ucd-mh-lmi-even-first"}
    mixed = df[df.method == "ucd-mh-lmi-mixed"]           # meets through Gibbs: on the Gibbs widths
    assert set(mixed.width) == set(df[df.method == "ucd-gibbs-lmi"].width)
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


def test_fig25_quick(tmp_path):
    from conftest import shared_data_dir
    import pytest
    if shared_data_dir() is None:
        pytest.skip("../shared/data not present")
    out = tmp_path / "results"
    r = run_module("reproduce.fig25_end_to_end", "--quick", "--out-dir", str(out), "--work-dir",
                   str(tmp_path / "runs"), "--data-dir", str(shared_data_dir()), "--updates", "20",
                   "--datasets", "mnist")
    df = read_tables(out, "fig25_end_to_end")
    assert set(df.method) == {"ucd-mh-lmi", "ucd-gibbs", "cd", "pcd", "pcd-pretrained", "data"}   # data: the FD floor
    assert set(df.profile) == {"quick"} and {"dataset", "seed", "n_h1", "n_h2"} <= set(df.columns)
    fin = df[(df.kind == "final") & (df.metric == "test_ll_bound")]
    assert len(fin) == 5 and fin.value.map(math.isfinite).all() and (fin.value < 0).all()
    assert {"log_z", "bernoulli_baseline_ll", "test_ll_low", "test_ll_high"} <= set(df[df.kind == "final"].metric)
    assert {"log_z_forward", "log_z_reverse_data", "log_z_reverse_mode", "bracket_width"} <= set(df.metric)
    assert set(df[df.kind == "samples"].samples) == {"mode", "mode+1", "gibbs-20-noise", "gibbs-20-mode"}
    assert {"recon_error", "loss", "neg_sweeps_capped_total", "pos_tau_capped_total"} <= set(df[df.kind == "trace"].metric)
    for kind in ("search", "fd-search"):                  # the mode kinds' search and its caps (issue 33)
        s = df[(df.kind == kind) & (df.method != "data")]
        assert set(s.metric) == {"sweeps_mean", "sweeps_capped"} and len(s) == 2 * 5
    fd = df[df.kind == "fd"]                              # classifier-Frechet distance by sample kind
    assert set(fd.samples) == {"mode", "mode+1", "gibbs-5-noise", "gibbs-5-mode", "training images"}
    assert (fd.value > 0).all() and len(fd) == 5 * 4 + 1
    assert fd.weights_hash.nunique() == 1 and fd.weights_hash.str.len().eq(64).all()   # the classifier that scored them
    side = json.loads((out / "fig25_end_to_end.json").read_text())
    assert side["profile"] == "quick" and side["fails_definition"] and side["sample_kinds"]["mode"]
    assert (out / "fig25_samples_mnist.png").exists() and (out / "fig25_end_to_end.png").exists()
    assert "fails" in r.stdout and "likelihood_vs_ucd_mh_lmi" in r.stdout
    kinds = df.kind.isin(["samples", "fd"]) & (df.method != "data")
    assert set(df[kinds].sample_order) == {"random"}              # the released sample(): order per chain
    # a partial run of one method (here: its sample kinds in the even-first order) spliced into the table
    part = tmp_path / "part"
    run_module("reproduce.fig25_end_to_end", "--quick", "--out-dir", str(part), "--work-dir", str(tmp_path / "runs"),
               "--data-dir", str(shared_data_dir()), "--updates", "20", "--datasets", "mnist", "--methods",
               "ucd-mh-lmi", "--sample-order", "even-first")
    before = df[df.method.isin(["cd", "pcd"])].reset_index(drop=True)
    run_module("reproduce.splice", "--figure", "fig25", "--table", str(out), "--part", str(part))
    after = read_tables(out, "fig25_end_to_end")
    kinds = after.kind.isin(["samples", "fd"])
    assert set(after[kinds & (after.method == "ucd-mh-lmi")].sample_order) == {"even-first"}
    assert set(after[kinds & (after.method == "cd")].sample_order) == {"random"} and len(after) == len(df)
    pd.testing.assert_frame_equal(after[after.method.isin(["cd", "pcd"])].reset_index(drop=True), before,
                                  check_dtype=False)
    side = json.loads((out / "fig25_end_to_end.json").read_text())
    assert side["spliced"][0]["cells"] == ["mnist/ucd-mh-lmi"] and side["verdicts"] and side["summary"]
    # a part scored by another classifier cannot share the table's classifier-FD column: it must hold
    # every method of the data set (then it replaces it whole, floor included), else splice stops
    other = tmp_path / "other"
    run_module("reproduce.fig25_end_to_end", "--quick", "--out-dir", str(other), "--work-dir", str(tmp_path / "runs"),
               "--data-dir", str(shared_data_dir()), "--updates", "20", "--datasets", "mnist", "--methods",
               "ucd-mh-lmi", "--classifier-train-limit", "1000")
    r = run_module("reproduce.splice", "--figure", "fig25", "--table", str(out), "--part", str(other), check=False)
    assert r.returncode != 0 and "another feature extractor" in r.stderr and "'cd'" in r.stderr
    pd.testing.assert_frame_equal(read_tables(out, "fig25_end_to_end"), after)   # the table untouched


def test_bias_study_quick(tmp_path):
    out = tmp_path / "results"
    run_module("reproduce.bias_study", "--quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "runs"),
               "--shapes", "3-3-3,4-3-2", "--chains", "2000", "--estimators", "cd-1,ucd-mh-lmi")
    df = pd.read_csv(out / "bias_study.csv")
    assert set(df.estimator) == {"cd-1", "ucd-mh-lmi"} and df.value.map(math.isfinite).all()
    assert {"rel_bias", "rel_se", "max_abs_z", "p_correction_neg", "cost_sweeps"} <= set(df.metric)
    assert (out / "bias_study.png").exists() and json.loads((out / "bias_study.json").read_text())["profile"] == "quick"
    assert {"sweeps_capped", "residual_capped", "caps"} <= set(df.metric)
    mh = df[df.estimator == "ucd-mh-lmi"]
    assert {"p_correction_neg", "p_cap_lower_pos", "chains_for_typical_neg", "a_median_pos"} <= set(mh.metric)
    assert df.verdict.str.match("unbiased within noise|heavy-tailed|biased by its cap|flagged, not explained|capped|"
                                "flagged, no diagnostics|biased").all()
    assert {"term_cut_share_neg", "steps_past_cap_lower_pos", "cap_bias_model"} <= set(mh.metric)


def test_bias_study_reruns_open_verdicts_with_more_chains(tmp_path):
    """Issue 33: a flagged ucd-mh-lmi cell whose verdict the diagnostics leave open is rerun with
    rerun_factor times the chains a typical correction needs (at least rerun_min_chains); the
    table keeps both runs, ``final`` marks the larger, and a rerun above the limit is named."""
    out = tmp_path / "results"
    run_module("reproduce.bias_study", "--quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "runs"),
               "--shapes", "3-3-3", "--chains", "2000", "--estimators", "ucd-mh-lmi,cd-1",
               "--diag-draws", "2000", "--flag-z", "0", "--rerun-min-chains", "6000", "--rerun-max-chains", "6000")
    df = pd.read_csv(out / "bias_study.csv")
    mh = df[df.estimator == "ucd-mh-lmi"]
    for shape, g in mh.groupby("shape"):
        assert set(g.chains) == {2000, 6000}, shape                  # flag_z 0: every cell flagged, rerun
        assert set(g[g.final].chains) == {6000}
        assert (g[g.chains == 6000].metric == "term_cut_share_neg").any()      # diagnostics carried over
    assert set(df[df.estimator == "cd-1"].chains) == {2000}           # only rerun_estimators
    run_module("reproduce.bias_study", "--quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "runs"),
               "--shapes", "3-3-3", "--chains", "2000", "--estimators", "ucd-mh-lmi", "--diag-draws", "2000",
               "--flag-z", "0", "--rerun-min-chains", "6000", "--rerun-max-chains", "4000", "--force")
    df = pd.read_csv(out / "bias_study.csv")
    assert set(df.chains) == {2000} and df.verdict.str.contains("a rerun needs 6.0e\\+03 chains").all()


def test_cap_model_check_quick(tmp_path):
    """The stuck-Y model beside the exact pair chain; a horizon too short for tau's tail is named."""
    out = tmp_path / "results"
    run_module("reproduce.cap_model_check", "--quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "runs"))
    df = pd.read_csv(out / "cap_model_check.csv")
    assert {"share_exact", "share_model", "bias_exact", "steps_past_cap_exact", "steps_past_cap_lower"} <= set(df)
    assert (df.steps_past_cap_exact >= df.steps_past_cap_lower * (1 - 1e-9)).all()        # the proven bound
    r = run_module("reproduce.cap_model_check", "--quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "runs"),
                   "--horizon", "60", check=False)
    assert r.returncode == 1 and "raise --horizon" in r.stderr


def test_bias_study_batches_add_up(monkeypatch):
    """run_cell in batches (BATCH chains a call, one generator) gives the metrics of the
    concatenated per-chain estimates, computed directly."""
    import torch
    import dbm
    from dbm import exact, presets
    from dbm.provenance import seed_hash
    from reproduce import bias_study as b
    monkeypatch.setattr(b, "BATCH", 1000)
    cfg = b.Config(mh_max_steps=1000)
    rows = {r["metric"]: r["value"] for r in b.run_cell("3-3-3", "1.0", "random", "ucd-mh-lmi", cfg, chains=3000)}
    m, v2 = b.make_model("3-3-3", 1.0, "random", cfg)
    name, opts = presets.resolve("ucd-mh-lmi", **presets.caps("ucd-mh-lmi", cfg.mh_max_steps, cfg.gibbs_max_steps))
    est = dbm.estimator(name, **opts)
    gen = torch.Generator().manual_seed(seed_hash(b.NAME, "chains", "3-3-3", "1.0", "random", "ucd-mh-lmi"))
    parts = [est.chain_estimates(m, v2.repeat(500, 1), est.init_state(), gen) for _ in range(3)]
    g = torch.cat([p[0] for p in parts]).double()
    g_star = exact.exact_gradient(m, v2)
    mean, se = g.mean(0), g.std(0) / 3000 ** 0.5
    assert abs(rows["rel_bias"] - float((mean - g_star).norm() / g_star.norm())) < 1e-9
    assert abs(rows["max_abs_z"] - float(((mean - g_star) / se).abs().max())) < 1e-6
    tau = torch.cat([p[2].neg.tau for p in parts]).double()
    assert abs(rows["tau_mean_neg"] - float(tau.mean())) < 1e-12
    assert abs(rows["p_correction_neg"] - float((tau > 1).double().mean())) < 1e-12


def test_bias_study_counts_its_caps_and_says_so(tmp_path):
    """Issue 33: a cap that fires is counted in the CSV, and the verdict names it (tau cap 2:
    nearly every correction is cut; the local search capped at one sweep)."""
    out = tmp_path / "results"
    run_module("reproduce.bias_study", "--quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "runs"),
               "--shapes", "4-3-2", "--w-scales", "3.0", "--chains", "4000", "--estimators", "ucd-mh-lmi,ucd-gibbs",
               "--mh-max-steps", "2", "--gibbs-max-steps", "2", "--diag-draws", "2000")
    df = pd.read_csv(out / "bias_study.csv")
    val = df.set_index(["estimator", "metric"]).value
    assert val["ucd-mh-lmi", "caps"] > 0 and val["ucd-gibbs", "caps"] > 0
    assert val["ucd-mh-lmi", "p_cap_given_correction_lower_neg"] > 0.5
    v = df.drop_duplicates("estimator").set_index("estimator").verdict
    assert v["ucd-mh-lmi"].startswith("biased by its cap") and v["ucd-gibbs"].startswith("capped")


def test_fig27_quick_on_synthetic_idx(tmp_path):
    from conftest import synthetic_mnist
    data = synthetic_mnist(tmp_path / "data")
    out, work = tmp_path / "results", tmp_path / "runs"
    args = ("--quick", "--out-dir", str(out), "--work-dir", str(work), "--data-dir", str(data),
            "--datasets", "mnist", "--test-n", "50", "--max-sweeps", "2")      # a cap that fires (issue 33)
    r = run_module("reproduce.fig27_inpainting", *args)
    df = pd.read_csv(out / "fig27_inpainting.csv")
    assert df[(df.completion == "local-search") & (df.metric == "capped")].value.max() > 0
    assert {"dataset", "method", "mask", "completion", "metric", "value", "se", "n_test"} <= set(df.columns)
    assert set(df.completion) == {"original", "masked", "local-search", "gibbs-mean", "gibbs-best"}
    assert set(df[df.completion == "local-search"]["mask"]) == {"left", "top", "center", "random-0.5"}
    assert df.value.map(math.isfinite).all()
    err = df[df.metric == "missing_error"].value
    assert ((err >= 0) & (err <= 1)).all()
    # the oracle-best Gibbs completion is never worse than the mean one
    best = df[(df.completion == "gibbs-best") & (df.metric == "missing_error")].set_index(["method", "mask"]).value
    mean = df[(df.completion == "gibbs-mean") & (df.metric == "missing_error")].set_index(["method", "mask"]).value
    assert (best <= mean + 1e-12).all()
    side = json.loads((out / "fig27_inpainting.json").read_text())
    assert side["classifiers"]["mnist"]["test_accuracy"] > 0.5          # bars are easy to classify
    assert (out / "fig27_grid_mnist_ucd-mh-lmi.png").exists() and (out / "fig27_inpainting.png").exists()
    assert "local-search" in r.stdout
    cells = {p: p.stat().st_mtime_ns for p in (work / "fig27_inpainting").iterdir()}
    run_module("reproduce.fig27_inpainting", *args)                         # a re-run reuses every cell
    assert cells == {p: p.stat().st_mtime_ns for p in (work / "fig27_inpainting").iterdir()}


def test_fig26_quick_on_synthetic_mnist_and_cifar(tmp_path):
    from conftest import synthetic_mnist, write_cifar
    data = synthetic_mnist(tmp_path / "data", n_train=400, n_test=100)
    write_cifar(data / "cifar-10-batches-py", n=40)
    out, work = tmp_path / "results", tmp_path / "runs"
    r = run_module("reproduce.fig26_fid", "--quick", "--out-dir", str(out), "--work-dir", str(work),
                   "--data-dir", str(data), "--datasets", "mnist,cifar10", "--n-gen", "60", "--n-ref", "60",
                   "--sample-kinds", "mode,mode+1,gibbs-3-noise,gibbs-3-mode", "--gan-fd-every", "1",
                   "--gan-stop-on-plateau", "--gan-datasets", "mnist")
    df = pd.read_csv(out / "fig26_fid.csv")
    protocol = {"extractor", "weights_hash", "n_gen", "ref_split", "n_ref", "preprocessing", "sample_kind", "seed",
                "budget"}
    assert protocol <= set(df.columns) and df[list(protocol)].notna().all().all()
    assert set(df.metric) == {"classifier_fd", "standin_fd"} and (df.value >= -1e-9).all()
    assert set(df.family) == {"data", "dbm", "gan"} and set(df.dataset) == {"mnist", "cifar10"}
    assert set(df[df.family == "gan"].model) == {"wgan-gp", "wgan"} and set(df[df.family == "gan"].dataset) == {"mnist"}
    # issue 13: every row names its profile, method, seed and data set
    assert df[["profile", "method", "seed", "dataset"]].notna().all().all() and set(df.profile) == {"quick"}
    assert set(df.method) == {"data", "ucd-mh-lmi", "wgan", "wgan-gp"}        # the quick profile's models
    assert (df[df.family == "dbm"].model == "dbm-" + df[df.family == "dbm"].method).all()
    assert set(df[df.family == "dbm"].sample_kind) == {"mode", "mode+1", "gibbs-3-noise", "gibbs-3-mode"}
    searched = df[(df.family == "dbm") & (df.sample_kind != "gibbs-3-noise")]     # issue 33: the searches' caps
    assert (searched.searches == 60).all() and (searched.search_sweeps_capped >= 0).all()
    assert df[df.sample_kind == "gibbs-3-noise"].searches.isna().all()
    gan = df[df.family == "gan"]
    assert (gan.stop_reason == "cap").all() and (gan.steps_trained == 3).all() and (gan.train_wall_s > 0).all()
    trace = pd.read_csv(out / "fig26_fid_trace.csv")                      # the plateau rule's classifier-FD trace
    fd = trace[trace.metric == "classifier_fd"]
    assert all(sorted(x.step) == [1, 2, 3] for _, x in fd.groupby("model"))
    assert (trace.method == trace.model).all() and trace[["profile", "seed", "dataset"]].notna().all().all()
    assert (out / "fig26_fid_gan_curves.png").exists()
    assert (df[df.dataset == "cifar10"].preprocessing == "8-bit pixels / 255").all()
    assert (out / "fig26_samples_cifar10.png").exists() and (out / "fig26_fid.png").exists()
    assert "classifier_fd" in r.stdout
    # a partial run of the DBM rows alone (no GANs), spliced into the table: the GAN rows stay
    part = tmp_path / "part"
    run_module("reproduce.fig26_fid", "--quick", "--out-dir", str(part), "--work-dir", str(work), "--data-dir",
               str(data), "--datasets", "mnist", "--n-gen", "60", "--n-ref", "60", "--sample-kinds", "mode,mode+1",
               "--gans", "", "--dbm-only", "ucd-mh-lmi")
    p = pd.read_csv(part / "fig26_fid.csv")
    assert set(p.family) == {"data", "dbm"}
    run_module("reproduce.splice", "--figure", "fig26", "--table", str(out), "--part", str(part))
    after = pd.read_csv(out / "fig26_fid.csv")
    mn = after[(after.dataset == "mnist") & (after.family == "dbm")]
    assert set(mn.sample_kind) == {"mode", "mode+1"} and len(after[after.family == "gan"]) == len(gan)
    assert json.loads((out / "fig26_fid.json").read_text())["spliced"][0]["cells"] == ["mnist/dbm-ucd-mh-lmi"]
    # every DBM x sample kind is a cached cell: a second run reads the same rows back
    dbm_rows = df[df.family == "dbm"]
    cells = list((work / "fig26_fid-samples").glob("*.json"))
    assert len(cells) == len(dbm_rows.groupby(["dataset", "model", "seed", "sample_kind"]))
    run_module("reproduce.fig26_fid", "--quick", "--out-dir", str(out), "--work-dir", str(work),
               "--data-dir", str(data), "--datasets", "mnist,cifar10", "--n-gen", "60", "--n-ref", "60",
               "--sample-kinds", "mode,mode+1,gibbs-3-noise,gibbs-3-mode", "--gan-fd-every", "1",
               "--gan-stop-on-plateau", "--gan-datasets", "mnist")
    again = pd.read_csv(out / "fig26_fid.csv")
    key = ["dataset", "model", "seed", "sample_kind", "metric"]
    a, b = (x[x.family == "dbm"].sort_values(key).reset_index(drop=True) for x in (df, again))
    pd.testing.assert_frame_equal(a, b)
    assert sorted(cells) == sorted((work / "fig26_fid-samples").glob("*.json"))


def test_fig26_missing_inception_weights_and_data(tmp_path):
    """Without the weights the classifier rows are still written, FID rows say why, the exit is 1."""
    from conftest import synthetic_mnist
    data = synthetic_mnist(tmp_path / "data", n_train=300, n_test=60)
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DBM_INCEPTION_WEIGHTS")}
    env["TORCH_HOME"] = str(tmp_path / "torch")
    args = ["--profile", "quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "runs"), "--data-dir", str(data),
            "--datasets", "mnist,cifar10", "--n-gen", "40", "--n-ref", "40", "--gans", "wgan", "--gan-steps", "2",
            "--dbm-methods", "cd", "--sample-kinds", "mode", "--classifier-train-limit", "300"]
    r = subprocess.run([sys.executable, "-m", "reproduce.fig26_fid", *args, "--fid-extractor", "inception"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "pt_inception-2015-12-05-6726825d.pth" in r.stderr and "cifar-10-batches-py" in r.stderr
    df = pd.read_csv(out / "fig26_fid.csv")
    fid = df[df.metric == "fid"]
    assert len(fid) and fid.value.isna().all() and fid.missing_reason.str.contains("DBM_INCEPTION_WEIGHTS").all()
    assert df[df.metric == "classifier_fd"].value.notna().all()


def test_ebm_anatomy_toy_quick(tmp_path):
    out, work = tmp_path / "results", tmp_path / "runs"
    args = ("--quick", "--out-dir", str(out), "--work-dir", str(work))
    r = run_module("reproduce.ebm_anatomy_toy", *args)
    df = read_tables(out, "ebm_anatomy_toy")
    assert set(df.outcome) == {"convergent", "non-convergent"} and set(df.kind) == {"summary", "trace"}
    s = df[df.kind == "summary"]
    assert {"density_tv", "density_kl", "short_run_kde_tv", "long_run_kde_tv"} <= set(s.metric)
    assert "bank_kde_tv" in set(s[s.outcome == "convergent"].metric)
    tvs = s[s.metric.str.endswith("_tv")].value
    assert ((tvs >= 0) & (tvs <= 1)).all()
    tr = df[df.kind == "trace"]
    assert tr.groupby(["outcome", "metric"]).size().eq(20).all()          # d_st and r_t every update
    side = json.loads((out / "ebm_anatomy_toy.json").read_text())
    assert all(0 < v < 0.5 for v in side["kde_tv_of_true_samples"].values())
    assert (out / "ebm_anatomy_toy.png").exists() and "density_tv" in r.stdout
    def written():                # every file but the lock, which a reader holds briefly
        return {p: p.stat().st_mtime_ns for p in (work / "ebm_anatomy_toy").rglob("*") if p.name != "run.lock"}
    runs = written()
    run_module("reproduce.ebm_anatomy_toy", *args)                        # a re-run reuses every cell
    assert runs == written()


def test_ebm_anatomy_mnist_quick_on_synthetic_idx(tmp_path):
    from conftest import synthetic_mnist
    data = synthetic_mnist(tmp_path / "data")
    out, work = tmp_path / "results", tmp_path / "runs"
    r = run_module("reproduce.ebm_anatomy_mnist", "--quick", "--out-dir", str(out), "--work-dir", str(work),
                   "--data-dir", str(data))
    df = read_tables(out, "ebm_anatomy_mnist")
    s = df[df.kind == "summary"]
    assert set(s.model) == {"data", "short-run", "persistent"}
    assert set(s[s.model == "persistent"].samples) == {"short-run", "long-run", "long-run from data", "persistent bank"}
    fd = s[s.metric == "classifier_fd"].value
    assert (fd >= 0).all() and fd.map(math.isfinite).all()
    assert df[df.kind == "trace"].groupby(["model", "metric"]).size().eq(4).all()
    assert len(df[df.kind == "long_run_trace"]) > 0
    assert (out / "ebm_anatomy_mnist_samples.png").exists() and (out / "ebm_anatomy_mnist.png").exists()
    assert "classifier_fd" in r.stdout


def test_zoo_trains_cells_in_parallel_processes_and_fig25_reuses_them(tmp_path):
    """``python -m reproduce.zoo --jobs 2`` splits the cells over two processes; the models it
    leaves are the cells fig25 finds (no retraining: the run folders are untouched)."""
    from conftest import synthetic_mnist
    data = synthetic_mnist(tmp_path / "data")
    work = tmp_path / "runs"
    run_module("reproduce.zoo", "--profile", "quick", "--cells", "cd:0,pcd:0", "--jobs", "2", "--data-dir",
               str(data), "--work-dir", str(work))
    runs = sorted((work / "zoo").glob("*/model.safetensors"))
    assert len(runs) == 2
    before = {p: p.stat().st_mtime_ns for p in runs}
    run_module("reproduce.fig25_end_to_end", "--quick", "--methods", "cd,pcd", "--datasets", "mnist", "--data-dir",
               str(data), "--work-dir", str(work), "--out-dir", str(tmp_path / "results"))
    assert before == {p: p.stat().st_mtime_ns for p in runs}


@pytest.mark.parametrize("profile", ["quick", "budget", "paper"])
def test_ebm_anatomy_mnist_profiles_build_and_train(profile, tmp_path):
    """Each profile's two EBM configs (net, image size, n_f, optimizer, K, bank) are valid and train:
    two updates on synthetic data with K and the batch shrunk, everything else as configured."""
    import dataclasses
    from conftest import synthetic_mnist
    from dbm.result_cache import CellCache
    from dbm.ebm.train import EBMTrainer, mnist32
    from reproduce.ebm_anatomy_mnist import PROFILES, Config, ebm_config
    cfg = dataclasses.replace(Config(**PROFILES[profile]), data_dir=str(synthetic_mnist(tmp_path / "data")))
    for outcome in cfg.outcomes:
        ecfg = ebm_config(cfg, outcome, CellCache(tmp_path / "runs"))
        small = dataclasses.replace(ecfg, updates=2, steps=2, batch_size=4, bank_size=8, ckpt_every=1)
        tr = EBMTrainer(small, mnist32("mnist", "train", cfg.data_dir, 16, ecfg.image_size))
        tr.run(progress=False)
        assert tr.step == 2 and tr.net.shape == (1, cfg.image_size, cfg.image_size)
        assert ecfg.net == {"short-run": "vanilla", "persistent": "nonlocal", "persistent-vanilla": "vanilla"}[outcome]
        if profile == "paper":
            assert (ecfg.n_f, ecfg.image_size, ecfg.batch_size) == (32, 32, 100)
            assert ecfg.steps == (500 if outcome == "persistent" else 150)
