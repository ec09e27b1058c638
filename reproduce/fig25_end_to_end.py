"""Slide 25: end-to-end DBM training (no pretraining) on MNIST and Fashion-MNIST, binary, L = 2.

Claim (spec §4): finite-step Gibbs estimators (CD, PCD) and UCD-Gibbs fail without greedy
layer-wise pretraining, while UCD-MH-LMI trains end to end. Methods: ucd-mh-lmi, ucd-gibbs, cd,
pcd (no pretraining) and pcd-pretrained (stacked RBMs + PCD with a mean-field positive phase).

"Fails" is measured: a model fails when its test log-likelihood lower bound (mean-field bound,
log Z by AIS) is below that of a factorised Bernoulli model fitted to the same training data.
Samples are evaluated by kind (``dbm.metrics.samples``): "mode" and "mode+1" (the authors'
samples: a local mode and one sweep after it) and, where the profile asks for them, MCMC samples
"gibbs-<t>-noise" / "gibbs-<t>-mode" (t block-Gibbs sweeps from uniform noise / from the mode),
each by diversity, ink and distance to the nearest test image.

The converged profile (issue 13) also brackets log Z: forward AIS and reverse AIS from chains
started at the test data and at the local modes, at increasing numbers of temperatures until they
agree within ``bracket_tol`` nats (or the disagreement is reported), giving each model a
likelihood interval; and it tests each training trace for flatness over its last 20 %
(``dbm.metrics.convergence``).

    python -m reproduce.fig25_end_to_end [--quick | --profile budget | converged | paper | ladder-1 ...] [--device cuda]

(The scale ladder, issue 31, runs this evaluation on each of its rungs: reproduce/ladder.py.)

Outputs (results/ for budget, results/<profile>/ otherwise): fig25_end_to_end.{csv,json,png}
(final evaluations, one observation per row), fig25_end_to_end_trace.csv (training traces) and
fig25_samples_<dataset>.png.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.fig25_end_to_end")

import pandas as pd
import torch

from dbm.result_cache import CellCache
from dbm.metrics.ais import ais_log_partition, log_likelihood_bound, reverse_ais_log_partition
from dbm.metrics.convergence import tail_drift
from dbm.metrics.samples import gibbs_chains, modes, sample_stats
from dbm.provenance import seed_hash
from dbm.run import train_seconds_of
from dbm.train import CAP_TOTALS
from reproduce import zoo
from reproduce.common import Computed, Run, method_palette, method_style, progress, sample_grid, save_figure, script_main

NAME = "fig25_end_to_end"
VERSION = "2"                             # the evaluation cells' code version (the ladder shares them)


@dataclasses.dataclass(frozen=True)
class Config(zoo.MatrixConfig):
    """The zoo's models (training settings and matrix, inherited) and this figure's evaluation."""
    ais_runs: int = 100
    ais_betas: int = 3000                 # forward AIS temperatures (without a bracket)
    bracket_betas: tuple = ()             # temperatures of forward + reverse AIS, raised in turn until they agree
    bracket_tol: float = 1.0              # agreement of the bracket, nats
    reverse_burn: int = 1000              # Gibbs sweeps from the test data before reverse AIS
    sample_n: int = 100                   # chains per sample kind
    sample_order: str = "random"          # block order of the mode / mode+1 kinds' search and sweep (released: random)
    gibbs_sweeps: tuple = ()              # MCMC sample kinds: sweeps from noise and from the mode
    fd_n: int = 0                         # samples per kind for the classifier-Frechet distance (0: none)
    fd_sweeps: int = 1000                 # Gibbs sweeps of its MCMC kinds
    classifier_epochs: int = 2            # the suite's classifier (dbm.metrics.classifier)
    classifier_train_limit: int = 0
    test_n: int = 2000
    data_dir: str | None = None
    device: str = "cpu"


EVAL_PROFILES = {"quick": dict(ais_runs=32, ais_betas=300, test_n=500, sample_n=16, gibbs_sweeps=(20,),
                               bracket_betas=(100, 300), reverse_burn=20, fd_n=40, fd_sweeps=5, classifier_epochs=1,
                               classifier_train_limit=2000),
                 "budget": {},                                                  # ~50 min
                 "converged": dict(ais_runs=100, bracket_betas=(1000, 4000), gibbs_sweeps=(1000, 10_000), fd_n=1000),
                 "converged-2x": dict(ais_runs=100, bracket_betas=(1000, 4000), gibbs_sweeps=(1000, 10_000),
                                      fd_n=1000),
                 # the converged evaluator on the whole test set (the ladder's, issue 31)
                 "paper": dict(ais_runs=100, bracket_betas=(1000, 4000, 20_000), gibbs_sweeps=(1000, 10_000),
                               fd_n=2000, test_n=10_000)}
# the ladder's rungs (issue 31): the converged evaluator, classifier-FD at 2,000 samples
EVAL_PROFILES.update({rung: dict(EVAL_PROFILES["converged"], fd_n=2000) for rung in zoo.LADDERS["ladder"]})
EVAL_PROFILES.update({rung: EVAL_PROFILES["quick"] for rung in zoo.LADDERS["ladder-quick"]})
PROFILES = {name: {**zoo.PROFILES[name], **zoo.MATRICES[name], **EVAL_PROFILES[name]} for name in zoo.PROFILES}
EVAL_FIELDS = ("ais_runs", "ais_betas", "bracket_betas", "bracket_tol", "reverse_burn", "sample_n", "gibbs_sweeps",
               "test_n", "sample_order")
TRACE_METRICS = ("loss", "recon_error", "test_ll_bound", "log_z", "mode_ink", "mode_diversity", "neg_tau_mean",
                 "neg_sweeps_mean", "pos_sweeps_mean", "neg_tau_capped", "pos_tau_capped", "correction_share") + CAP_TOTALS
FLAT_METRICS = ("test_ll_bound", "recon_error", "mode_ink", "mode_diversity")    # held-out: the convergence test


def kind_order(kinds) -> list:
    """Sample kinds in reading order: mode, mode+1, then Gibbs chains by start and length."""
    def key(k):
        if not k.startswith("gibbs-"):
            return (0, 0 if k == "mode" else 1, 0)
        _, t, start = k.split("-")
        return (1, 0 if start == "noise" else 1, int(t))
    return sorted(set(kinds), key=key)


def bernoulli_baseline(train: torch.Tensor, test: torch.Tensor) -> float:
    """Mean test log-likelihood of independent pixels fitted to the training set (+1 smoothing)."""
    p = (train.sum(0) + 1) / (train.shape[0] + 2)
    return float((test * p.log() + (1 - test) * (1 - p).log()).sum(-1).mean())


def search_rows(info, n: int, kind: str = "search") -> list[dict]:
    """Rows of the mode kinds' local search (``kind``: "search", or "fd-search" for the FD's
    samples): its mean sweeps and how many of the ``n`` searches hit the cap (issue 33)."""
    return [dict(kind=kind, samples="mode", metric="sweeps_mean", value=float(info.sweeps.double().mean()), n=n),
            dict(kind=kind, samples="mode", metric="sweeps_capped", value=float(info.capped.sum()), n=n)]


def draw_samples(model, cfg: Config, g: torch.Generator) -> tuple[dict, dict, list]:
    """{kind: (sample_n, n_0) visible samples}, {start: the chains' final full state} and the
    mode search's rows (``search_rows``)."""
    mode, swept, info = modes(model, cfg.sample_n, g, cfg.sample_order)
    kinds, final = {"mode": mode[0], "mode+1": swept[0]}, {"mode": mode}
    if cfg.gibbs_sweeps:
        for start, xs in (("noise", model.random_state(cfg.sample_n, g)), ("mode", mode)):
            vs, final[start] = gibbs_chains(model, xs, tuple(cfg.gibbs_sweeps), g)
            kinds.update({f"gibbs-{t}-{start}": v for t, v in vs.items() if t})
    return kinds, final, search_rows(info, cfg.sample_n)


def likelihood(model, cfg: Config, test, starts: dict, g: torch.Generator) -> list[dict]:
    """Rows of the likelihood evaluation: forward AIS (and, with ``bracket_betas``, reverse AIS
    from data-started and mode-started chains at each temperature count until the estimates agree
    within ``bracket_tol``), and the test LL bound at each log Z estimate."""
    dev = cfg.device
    body = float(log_likelihood_bound(model, test.to(dev), 0.0).mean())        # bound + log Z
    rows = []

    def add(kind, metric, value, se=float("nan"), betas=None):
        rows.append(dict(kind=kind, metric=metric, value=value, se=se, betas=betas))

    if not cfg.bracket_betas:
        ais = ais_log_partition(model, g, runs=cfg.ais_runs, betas=cfg.ais_betas)
        add("final", "log_z", ais.log_z, ais.log_z_se, ais.betas)
        add("final", "test_ll_bound", body - ais.log_z, ais.log_z_se, ais.betas)
        return rows
    runs = cfg.ais_runs
    data = model.random_state(runs, g)
    data = (test[:runs].to(dev), *data[1:])
    _, data_chain = gibbs_chains(model, data, (cfg.reverse_burn,), g)
    mode_chain = tuple(x[:runs] for x in starts.get("mode", data_chain))
    for b in cfg.bracket_betas:
        est = {"forward": ais_log_partition(model, g, runs=runs, betas=b),
               "reverse_data": reverse_ais_log_partition(model, data_chain, g, betas=b),
               "reverse_mode": reverse_ais_log_partition(model, mode_chain, g, betas=b)}
        for name, r in est.items():
            add("bracket", f"log_z_{name}", r.log_z, r.log_z_se, b)
        zs = [r.log_z for r in est.values()]
        width = max(zs) - min(zs)
        add("bracket", "bracket_width", width, betas=b)
        if width <= cfg.bracket_tol:
            break
    fwd = est["forward"]
    add("final", "log_z", fwd.log_z, fwd.log_z_se, b)
    add("final", "test_ll_bound", body - fwd.log_z, fwd.log_z_se, b)            # forward log Z: the usual bound
    add("final", "test_ll_low", body - max(zs), betas=b)                       # the bracket's top: conservative
    add("final", "test_ll_high", body - min(zs), betas=b)
    add("final", "bracket_agrees", float(width <= cfg.bracket_tol), betas=b)
    return rows


def evaluate(trainer, curves: pd.DataFrame, dataset, method, seed, cfg: Config, test):
    """A trained model's final evaluation -> (tidy rows, {kind: first 16 samples} for the grid)."""
    model, dev = trainer.model, cfg.device
    g = torch.Generator(device=dev).manual_seed(seed_hash(NAME, "samples", dataset, method, seed))
    kinds, final, rows = draw_samples(model, cfg, g)
    for kind, v in kinds.items():
        st = sample_stats(v, test)
        rows += [dict(kind="samples", samples=kind, metric=m, value=st[m]) for m in ("diversity", "ink", "nn_distance")]
    rows.append(dict(kind="final", metric="test_ink", value=float(test.mean())))
    g = torch.Generator(device=dev).manual_seed(seed_hash(NAME, "ais", dataset, method, seed))
    rows += likelihood(model, cfg, test, final, g)
    for m in FLAT_METRICS:
        tr = curves[curves.metric == m]
        if len(tr):
            d = tail_drift(tr.step, tr.value)
            rows += [dict(kind="convergence", metric=m, value=d.drift, se=d.drift_se, n=d.n,
                          flat=float("nan") if d.flat is None else float(d.flat))]
    return pd.DataFrame(rows), {k: v[:16].cpu() for k, v in kinds.items()}


def classifier_fd(model, cfg: Config, dataset, method, seed, fd) -> pd.DataFrame:
    """Classifier-Frechet distance (the suite's CNN features, not FID) of ``fd_n`` samples of
    each kind -- mode, mode+1, gibbs-<fd_sweeps>-noise, gibbs-<fd_sweeps>-mode -- against the
    test images; ``fd`` = (extractor, reference stats)."""
    from dbm.metrics import extractors as F
    from dbm.metrics.classifier import to_images
    from dbm.metrics.frechet import frechet_distance
    ext, ref = fd
    g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "fd", dataset, method, seed))
    mode, swept, info = modes(model, cfg.fd_n, g, cfg.sample_order)
    kinds = {"mode": mode[0], "mode+1": swept[0]}
    for start, xs in (("noise", model.random_state(cfg.fd_n, g)), ("mode", mode)):
        vs, _ = gibbs_chains(model, xs, (cfg.fd_sweeps,), g)
        kinds[f"gibbs-{cfg.fd_sweeps}-{start}"] = vs[cfg.fd_sweeps]
    return pd.DataFrame([dict(kind="fd", samples=k, metric="classifier_fd", n=cfg.fd_n,
                              value=frechet_distance(F.feature_stats(ext, to_images(v.cpu(), dataset, "binary")), ref))
                         for k, v in kinds.items()] + search_rows(info, cfg.fd_n, "fd-search"))


def fd_setup(cache: CellCache, cfg: Config, ds: str, train, test):
    """(extractor, test-set reference stats, rows of the training-image floor) for one data set."""
    from dbm.metrics import extractors as F
    from dbm.metrics.classifier import ClassifierConfig, load_or_train, to_images
    from dbm.metrics.frechet import frechet_distance
    clf, _ = load_or_train(ClassifierConfig(dataset=ds, encoding="binary", epochs=cfg.classifier_epochs,
                                            train_limit=cfg.classifier_train_limit),
                           cache.root / "classifiers", cfg.data_dir, cfg.device)
    ext = F.classifier_extractor(clf, cfg.device)
    ref = F.feature_stats(ext, to_images(test[:cfg.test_n], ds, "binary"))
    floor = frechet_distance(F.feature_stats(ext, to_images(train[:cfg.fd_n], ds, "binary")), ref)
    return (ext, ref), floor


def run_cell(cache: CellCache, dataset, method, seed, cfg: Config, train, test, fd=None):
    """One zoo model (trained here: fig25 owns the zoo) and its evaluation cell -> (final rows,
    trace rows, {kind: samples})."""
    trainer, curves = zoo.train(cache, zoo.zoo_config(cfg), dataset, method, seed, train, test, cfg.device, owned=True)
    test = test[:cfg.test_n]
    inputs = dict({k: getattr(cfg, k) for k in EVAL_FIELDS}, dataset=dataset, method=method, seed=seed,
                  model=zoo.model_hash(trainer))
    cell = cache.cell(NAME, inputs, lambda: evaluate(trainer, curves, dataset, method, seed, cfg, test))
    final = pd.concat([cell.rows[cell.rows.metric != "train_wall_s"],        # older cells hold one: recomputed
                       pd.DataFrame([dict(kind="final", metric="eval_wall_s",    # as computed, also
                                          value=cell.meta.get("wall_time_s")),   # when read from the cache
                                     dict(kind="final", metric="train_wall_s", value=train_seconds_of(curves))])],
                      ignore_index=True).assign(step=cfg.updates)
    trace = curves[curves.metric.isin(TRACE_METRICS)][["step", "metric", "value"]].assign(kind="trace")
    if fd is not None:
        inputs = dict(fd_n=cfg.fd_n, fd_sweeps=cfg.fd_sweeps, test_n=cfg.test_n, dataset=dataset, method=method,
                      seed=seed, model=zoo.model_hash(trainer), classifier=fd[0].weights_hash,
                      sample_order=cfg.sample_order)
        fdc = cache.cell(NAME + "-fd", inputs, lambda: classifier_fd(trainer.model, cfg, dataset, method, seed, fd))
        final = pd.concat([final, fdc.rows.assign(step=cfg.updates, weights_hash=fd[0].weights_hash)],
                          ignore_index=True)
    label = dict(dataset=dataset, method=method, seed=seed)
    return final.assign(**label, sample_order=cfg.sample_order), trace.assign(**label), cell.arrays


def compute(run: Run) -> Computed:
    cfg, frames, grids = run.cfg, [], {}
    for ds in cfg.datasets:
        train, test = zoo.binary_data(ds, cfg.data_dir, cfg.train_limit, max(cfg.test_n, zoo.HELD_OUT))
        base = bernoulli_baseline(train, test[:cfg.test_n])
        fd = None
        if cfg.fd_n:
            fd, floor = fd_setup(run.cache, cfg, ds, train, test)
            frames.append(pd.DataFrame([dict(dataset=ds, method="data", seed=0, kind="fd", samples="training images",
                                             metric="classifier_fd", n=cfg.fd_n, value=floor, step=cfg.updates,
                                             weights_hash=fd[0].weights_hash)]))
        for method, seed in progress(matrix(cfg, ds), f"fig25 {ds}"):
            final, trace, arrays = run_cell(run.cache, ds, method, seed, cfg, train, test, fd)
            frames += [final, trace, pd.DataFrame([dict(dataset=ds, method=method, seed=seed, kind="final",
                                                        step=cfg.updates, metric="bernoulli_baseline_ll", value=base)])]
            if seed == 0:
                grids.setdefault(ds, {})[method] = arrays
    df = pd.concat(frames, ignore_index=True)
    df.insert(0, "profile", run.profile)
    for i, n in enumerate(cfg.hidden, 1):
        df[f"n_h{i}"] = n
    df["batch_size"], df["updates"], df["lr"] = cfg.batch_size, cfg.updates, cfg.lr
    for ds, by_method in grids.items():
        kinds = kind_order(next(iter(by_method.values())))
        longest = [k for k in kinds if k.startswith("gibbs-")][-1:]
        show = ["mode"] + [k for k in kinds if k.startswith("gibbs-") and k.split("-")[1] == longest[0].split("-")[1]
                           ] if longest else kinds
        rows = {f"{m}: {k}": by_method[m][k].reshape(-1, 1, 28, 28) for m in by_method for k in show}
        what = {"mode": "'mode' = local modes (T = 0 fixed points from uniform noise, the authors' samples, not "
                        "MCMC samples)", "mode+1": "'mode+1' = one T = 1 sweep after the mode"}
        gibbs = any(k.startswith("gibbs-") for k in show)
        sample_grid(rows, run.out / f"fig25_samples_{ds}.png", run=run,
                    title=f"Slide 25, {ds}, seed 0 ({run.profile} profile), rows 'method: kind': "
                          + "; ".join(what[k] for k in show if k in what)
                          + ("; 'gibbs-t-noise/mode' = t block-Gibbs sweeps from noise / from the mode (MCMC samples)"
                             if gibbs else ""))
    return Computed(df, dict(summary=summarise(df).to_dict("records"), verdicts=verdicts(df).to_dict("records"),
                             sample_kinds={"mode": "local mode from a uniform start (the authors' 'mode' sample)",
                                           "mode+1": "one T = 1 sweep after the mode (the authors' 'random' sample)",
                                           "gibbs-t-noise": "t block-Gibbs sweeps from uniform noise (MCMC)",
                                           "gibbs-t-mode": "t block-Gibbs sweeps from the local mode (MCMC)"},
                             fails_definition="test_ll_bound < bernoulli_baseline_ll",
                             seeds={ds: _seeds_by_method(matrix(cfg, ds)) for ds in cfg.datasets}))


def _seeds_by_method(cells: list[tuple[str, int]]) -> dict[str, list[int]]:
    """{method: its seeds} of a data set's (method, seed) cells, methods in matrix order."""
    out: dict[str, list[int]] = {}
    for m, s in cells:
        out.setdefault(m, []).append(s)
    return out


matrix = zoo.matrix                       # the one definition lives with the profiles (reproduce/zoo.py)


def _upgrade(df: pd.DataFrame) -> pd.DataFrame:
    """Tables written before the sample kinds (the committed budget run): local-mode statistics
    named sample_* become kind "samples", samples "mode"."""
    if "kind" in df:
        return df
    old = {"sample_diversity": "diversity", "sample_ink": "ink", "sample_nn_distance": "nn_distance"}
    df = df.copy()
    df["kind"] = "final"
    is_old = df.metric.isin(list(old))
    df.loc[is_old, "kind"] = "samples"
    df.loc[is_old, "samples"] = "mode"
    df.loc[is_old, "metric"] = df.loc[is_old, "metric"].map(old)
    is_trace = df.metric.isin(TRACE_METRICS) & (df.metric != "test_ll_bound")
    df.loc[is_trace & ~is_old, "kind"] = "trace"
    return df


def _mean_se(d: pd.DataFrame, by: list) -> pd.DataFrame:
    """Mean, standard error over seeds (NaN for one seed) and seed count of ``value``."""
    g = d.groupby(by, dropna=False).value
    out = g.agg(["mean", "count", "std"]).reset_index()
    out["se"] = out["std"] / out["count"] ** 0.5
    return out.rename(columns={"count": "seeds"}).drop(columns="std")


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per data set and method: mean over seeds of the final metrics, the sample statistics of
    each kind, and whether every seed's held-out traces were flat."""
    df = _upgrade(df)
    fin = _mean_se(df[df.kind == "final"], ["dataset", "method", "metric"])
    t = fin.pivot_table(index=["dataset", "method"], columns="metric", values="mean")
    se = fin[fin.metric == "test_ll_bound"].set_index(["dataset", "method"])
    t["test_ll_bound_seed_se"] = se["se"]
    t["seeds"] = se["seeds"]
    t["fails"] = (t.test_ll_bound < t.bernoulli_baseline_ll).where(t.test_ll_bound.notna())
    # log p(v) <= 0 for binary v: a positive "lower bound" proves that AIS underestimated log Z
    t["bound_impossible"] = df[(df.kind == "final") & (df.metric == "test_ll_bound")].groupby(
        ["dataset", "method"]).value.max() > 0
    smp = df[df.kind == "samples"] if "samples" in df else df.iloc[:0].assign(samples="")
    for kind in kind_order(smp.samples):
        for m in ("ink", "nn_distance"):
            t[f"{kind}_{m}"] = smp[(smp.samples == kind) & (smp.metric == m)].groupby(["dataset", "method"]).value.mean()
    fd = df[(df.kind == "fd") & (df.method != "data")] if "kind" in df else df.iloc[:0]
    for kind in kind_order(fd.samples) if len(fd) else []:
        t[f"{kind}_classifier_fd"] = fd[fd.samples == kind].groupby(["dataset", "method"]).value.mean()
    conv = df[df.kind == "convergence"]
    if len(conv) and "flat" in conv:
        t["all_traces_flat"] = conv.groupby(["dataset", "method"]).flat.apply(lambda f: bool((f == 1).all()))
    return t.reset_index()


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    """Pairwise comparison of each method with ucd-mh-lmi by the likelihood interval: "higher" /
    "lower" when the seed-mean intervals [test_ll_low, test_ll_high] do not overlap, else
    "undecided" (the bracket is wider than the difference)."""
    df = _upgrade(df)
    fin = df[(df.kind == "final") & df.metric.isin(["test_ll_low", "test_ll_high"])]
    if fin.empty:
        return pd.DataFrame()
    iv = fin.groupby(["dataset", "method", "metric"]).value.mean().unstack("metric")
    rows = []
    for (ds, m), r in iv.iterrows():
        if m == "ucd-mh-lmi" or (ds, "ucd-mh-lmi") not in iv.index:
            continue
        ref = iv.loc[(ds, "ucd-mh-lmi")]
        verdict = ("higher" if r.test_ll_low > ref.test_ll_high else "lower" if r.test_ll_high < ref.test_ll_low
                   else "undecided")
        rows.append(dict(dataset=ds, method=m, ll_interval=f"[{r.test_ll_low:.1f}, {r.test_ll_high:.1f}]",
                         ucd_mh_lmi_interval=f"[{ref.test_ll_low:.1f}, {ref.test_ll_high:.1f}]",
                         likelihood_vs_ucd_mh_lmi=verdict))
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    """Per data set, row 1: what the slide claims, sample statistics per kind against the test
    set's (and the classifier-Frechet distance where measured); row 2: the likelihood (forward
    bound with the bracket's interval) and the held-out traces of training that this profile
    recorded (the convergence evidence). Bars are means over seeds with +- s.e. where there are
    several seeds; one legend of methods for the whole figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    df = _upgrade(df)
    datasets = list(dict.fromkeys(df.dataset))
    methods = [m for m in dict.fromkeys(df.method) if m != "data"]
    pal = method_palette(methods)
    sty = {m: method_style(m) for m in methods}
    has_fd = (df.kind == "fd").any()
    tr_all = df[df.kind == "trace"]
    traces = [(m, label) for m, label in (("test_ll_bound", "held-out LL bound (small AIS, nats per image)"),
                                          ("recon_error", "held-out reconstruction error (per pixel)"))
              if (tr_all.metric == m).any()]                  # only the traces this profile recorded
    ncol = 3 + has_fd
    seeds = int(df.groupby(["dataset", "method"]).seed.nunique().max()) if "seed" in df else 1
    fig, axes = plt.subplots(2 * len(datasets), ncol, figsize=(6 * ncol, 8.5 * len(datasets) + 1), squeeze=False)

    def bars(ax, st, kinds, ms):
        width = 0.8 / max(1, len(ms))
        for i, meth in enumerate(ms):
            r = st[st.method == meth].set_index("samples").reindex(kinds)
            x = [k + (i - (len(ms) - 1) / 2) * width for k in range(len(kinds))]
            se = r["se"] if r["se"].notna().any() else None      # one seed: no error bar to draw
            ax.bar(x, r["mean"], width, yerr=se, color=pal[meth], hatch=sty[meth]["hatch"], edgecolor="white",
                   linewidth=0, capsize=2 if se is not None else 0)
        ax.set_xticks(range(len(kinds)), kinds, rotation=20, fontsize=8)

    for j, ds in enumerate(datasets):
        d = df[df.dataset == ds]
        ms = [m for m in methods if (d.method == m).any()]     # this data set's methods: no empty slots
        smp = d[d.kind == "samples"]
        kinds = kind_order(smp.samples)
        test_ink = d[d.metric == "test_ink"].value
        for ax, (m, label) in zip(axes[2 * j], (("ink", "ink (mean pixel)"), ("nn_distance",
                                  "distance to nearest test image (Hamming / pixel)"), ("diversity",
                                  "diversity (mean pairwise Hamming / pixel)"))):
            bars(ax, _mean_se(smp[smp.metric == m], ["method", "samples"]), kinds, ms)
            if m == "ink" and len(test_ink):
                ax.axhline(float(test_ink.iloc[0]), color="k", ls="--", lw=1)
            ax.set(title=f"{ds}: samples by kind, {label.split(' (')[0]}"
                         + (" (dashed: test set)" if m == "ink" and len(test_ink) else ""),
                   xlabel="sample kind", ylabel=label)
        if has_fd:
            ax, fd = axes[2 * j, 3], d[d.kind == "fd"]
            fkinds = kind_order(fd[fd.method != "data"].samples)
            bars(ax, _mean_se(fd[fd.method != "data"], ["method", "samples"]), fkinds, ms)
            floor = fd[fd.method == "data"].value
            if len(floor):
                ax.axhline(float(floor.iloc[0]), color="k", ls="--", lw=1)
            ax.set_yscale("log")
            n = int(fd.n.max()) if "n" in fd else "?"
            ax.set(title=f"{ds}: classifier-Frechet distance, {n} samples (not FID; dashed: training images)",
                   xlabel="sample kind", ylabel="Frechet distance in the suite's CNN features (log)")
        ax = axes[2 * j + 1, 0]
        fin = d[d.kind == "final"]
        for i, meth in enumerate(ms):
            f = fin[fin.method == meth]
            for s, fs in f.groupby("seed"):
                v = fs.set_index("metric").value
                if "test_ll_bound" not in v:
                    continue
                x = i + (s - 1) * 0.15
                ax.plot(x, v["test_ll_bound"], sty[meth]["marker"], color=pal[meth], ms=6)
                if "test_ll_low" in v:
                    ax.vlines(x, v["test_ll_low"], v["test_ll_high"], color=pal[meth], lw=2)
        base = d[d.metric == "bernoulli_baseline_ll"].value
        if len(base):
            ax.axhline(float(base.iloc[0]), color="k", ls="--", lw=1)
        ax.set_xticks(range(len(ms)), ms, rotation=35, ha="right", fontsize=8)
        ax.set(title=f"{ds}: test log-likelihood per seed" + (" (dashed: independent pixels)" if len(base) else ""),
               ylabel="nats per image (dot: forward AIS; bar: AIS bracket)")
        tr = d[d.kind == "trace"]
        for ax, (m, label) in zip(axes[2 * j + 1, 1:], traces):
            t = tr[tr.metric == m]
            for (meth, s), ts in t.groupby(["method", "seed"]):
                ax.plot(ts.step, ts.value, color=pal[meth], ls=sty[meth]["ls"], lw=1.2, alpha=0.85)
            if len(t) and m == "test_ll_bound" and t.value.max() > 0:
                ax.axhline(0, color="r", ls=":", lw=1, label="log p(v) <= 0: above, AIS underestimated log Z")
                ax.legend(fontsize=7)
            if len(t):
                ax.axvspan(0.8 * t.step.max(), t.step.max(), color="0.9", zorder=0)
            ax.set(title=f"{ds}: {label.split(' (')[0]} in training (grey: last 20 %, the flatness test)",
                   xlabel="training update", ylabel=label)
        for ax in axes[2 * j + 1, 1 + len(traces):]:
            ax.remove()                                       # no empty panels
    import textwrap
    for ax in fig.axes:                                       # long titles on two lines, not over the next panel
        ax.set_title(textwrap.fill(ax.get_title(), 52), fontsize=10)
    handles = [Patch(facecolor=pal[m], hatch=sty[m]["hatch"], edgecolor="white", linewidth=0, label=m) for m in methods]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 7), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()))
    profile = run.profile if run is not None else "?"
    fig.suptitle(f"Slide 25: DBMs trained end to end ({profile} profile, {seeds} seed{'s' * (seeds > 1)}): "
                 "samples by kind, test log-likelihood and training traces", fontsize=13)
    fig.tight_layout(rect=(0, 0.02, 1, 1 - 0.8 / fig.get_figheight()))
    save_figure(fig, path, run, updates=df.step.max(), seeds=seeds,
                bars="mean over seeds" + (", +- s.e." if seeds > 1 else ""))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=lambda df: (summarise(df), verdicts(df)), version=VERSION)


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
