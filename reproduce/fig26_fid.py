"""Slide 26: Frechet distances of DBM samples against WGAN-GP and WGAN trained in the same harness.

For each data set and model (DBMs by estimator, WGAN-GP, WGAN; plus the training images
themselves as the floor of each metric): draw ``n_gen`` samples, extract features, and compute
the Frechet distance to the reference split's statistics, under one protocol recorded in every
row (extractor and weights hash, n_gen, reference split and n, preprocessing, sample kind, seed,
training budget).
- ``fid``: pytorch-fid's InceptionV3 (needs the weights file; see ``dbm.metrics.extractors``).
- ``classifier_fd``: the suite's CNN (``dbm.metrics.classifier``), labelled as such.
- ``standin_fd`` (--quick only): a random ConvNet; checks the plumbing, means nothing.
The binary MNIST / Fashion-MNIST DBMs are fig25's models of the same profile; CIFAR-10 uses an
8-bit DBM 24576-1024-1024 (26.2M parameters; fits one GPU) trained here. GAN samples are
thresholded at 0.5 for binary data (the DBM's and the reference's domain).
DBM sample kinds: "mode" and "mode+1" (the local mode from a uniform start and one T = 1 sweep
after it: what the authors' ``sample()`` returns and their figures show; "random" is the older
name of mode+1) and "gibbs-<t>-noise" / "gibbs-<t>-mode" (t block-Gibbs sweeps from uniform noise
or from the mode: MCMC samples).
The converged profile (issue 13) takes fig25's converged matrix (its methods and seeds) and
trains each GAN until its classifier-FD plateaus (``dbm.baselines.train_gan``: the FD of
``n_gen`` samples every ``gan_fd_every`` steps, stopped when the trace is flat over its last
20 %, ``gan_steps`` the cap); the traces go to ``fig26_fid_trace.csv`` and the figure
``fig26_fid_gan_curves.png``, with the steps and wall-clock each took.
Each DBM's rows per sample kind are a cell of the cache (keyed by a hash of the model's weights,
the sample kind, n_gen, the references and the extractors' weights): a re-run, or a run that
stopped part-way, does not sample them again. When the Inception weights or a data set are missing, every other row is still written, the
missing ones carry the reason, and the script exits with status 1 and the instruction.

    python -m reproduce.fig26_fid [--quick | --profile budget | converged | paper] [--device cuda]
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.fig26_fid")

import pandas as pd
import torch

from dbm.baselines.train_gan import GANConfig, GANTrainer, classifier_fd_monitor, images_for
from dbm.data import DataError
from dbm.metrics import extractors as F
from dbm.metrics.classifier import ClassifierConfig, load_or_train, to_images
from dbm.metrics.frechet import frechet_distance
from dbm.metrics.samples import gibbs_chains, modes
from dbm.result_cache import CellCache
from dbm.provenance import seed_hash, state_hash
from dbm.run import train_seconds_of
from dbm.train import TrainConfig, Trainer
from reproduce import zoo
from reproduce.common import Computed, Run, method_style, progress, sample_grid, save_figure, script_main

NAME = "fig26_fid"


@dataclasses.dataclass(frozen=True)
class Config(zoo.ZooConfig):
    """The zoo models' training settings (inherited: a flag such as --updates reaches the models
    judged here as it reaches fig25's) and this figure's evaluation."""
    datasets: tuple = ("mnist", "fashion-mnist", "cifar10")
    dbm_methods: tuple = zoo.METHODS                  # the zoo's (fig25's) models
    sample_kinds: tuple = ("mode", "random")          # module docstring; "random" = mode+1 (older name)
    dbm_matrix: bool = False                          # DBM cells: fig25's matrix of the profile (methods, seeds)
    dbm_only: tuple = ()                              # only these methods' DBM cells (a partial run: reproduce/splice.py)
    gans: tuple = ("wgan-gp", "wgan")
    gan_steps: int = 500                              # generator steps (5 critic steps each); the cap with a plateau rule
    gan_width: int = 0                                # 0: the recipe's (64 for 28x28, 128 for CIFAR-10)
    gan_fd_every: int = 0                             # classifier-FD of the generator every this many steps (0: never)
    gan_stop_on_plateau: bool = False                 # stop each GAN when that trace is flat (train_gan)
    gan_min_steps: int = 0
    gan_datasets: tuple = ()                          # data sets with GAN rows (empty: all)
    seeds: int = 1
    n_gen: int = 10_000
    n_ref: int = 10_000                               # the test split
    cifar_hidden: int = 1024
    cifar_updates: int = 2000
    cifar_batch: int = 100
    classifier_epochs: int = 2
    classifier_train_limit: int = 0
    fid_extractor: str = "inception"                  # or "standin" (smoke tests: a random ConvNet)
    inception_weights: str | None = None
    data_dir: str | None = None
    device: str = "cpu"


_PROFILES = {
    "quick": dict(fid_extractor="standin", datasets=("mnist",), dbm_methods=("ucd-mh-lmi",), gan_steps=3,
                  gan_width=8, n_gen=300, n_ref=300,
                  cifar_hidden=16, cifar_updates=3, cifar_batch=20, classifier_epochs=1,
                  classifier_train_limit=2000),
    # the faithful-order issue: the suite's pi0 of before stays as a labelled ablation row
    "budget": dict(dbm_methods=zoo.METHODS + ("ucd-mh-lmi-even-first",)),
    # issue 13: the converged DBMs (fig25's matrix) and GANs to their plateau; MCMC sample kinds
    "converged": dict(datasets=("mnist", "fashion-mnist"), dbm_matrix=True,
                      sample_kinds=("mode", "mode+1", "gibbs-1000-noise", "gibbs-1000-mode"), n_gen=2000,
                      gan_steps=30_000, gan_fd_every=250, gan_stop_on_plateau=True, gan_min_steps=10_000),
    "paper": dict(gan_steps=200_000, seeds=3, cifar_updates=100_000, n_gen=50_000, n_ref=10_000),
}
PROFILES = {name: {**zoo.PROFILES[name], **p} for name, p in _PROFILES.items()}   # the zoo's settings, then ours
ENCODING = {"mnist": "binary", "fashion-mnist": "binary", "cifar10": "8bit"}
PREP = {"binary": "binarised at 0.5", "8bit": "8-bit pixels / 255"}


def extractors(cfg: Config, ds: str, clf) -> tuple[dict, dict]:
    """The feature extractors for one data set, and {metric: reason} for those that are missing."""
    ext = {"classifier_fd": F.classifier_extractor(clf, cfg.device)}
    missing = {}
    if cfg.fid_extractor == "standin":
        ext["standin_fd"] = F.standin_extractor(channels=3 if ds == "cifar10" else 1, device=cfg.device)
    elif cfg.fid_extractor == "inception":
        try:
            ext["fid"] = F.inception_extractor(cfg.inception_weights, cfg.device)
        except F.MissingWeightsError as e:
            missing["fid"] = str(e)
    else:
        raise ValueError(f"fid_extractor must be 'inception' or 'standin', got {cfg.fid_extractor!r}")
    return ext, missing


def dbm_cells(ds: str, cfg: Config, profile: str) -> list[tuple[str, int]]:
    """The (method, seed) DBMs of one binary data set: fig25's matrix of the profile with
    ``dbm_matrix``, else ``dbm_methods`` x ``seeds``."""
    if cfg.dbm_matrix:
        cells = zoo.matrix(zoo.profile_config(profile), ds)
    else:
        cells = [(m, s) for s in range(cfg.seeds) for m in cfg.dbm_methods]
    return [(m, s) for m, s in cells if not cfg.dbm_only or m in cfg.dbm_only]


def dbm_models(ds: str, cfg: Config, profile: str, cache: CellCache):
    """(name, seed, model) of every DBM of this data set: the zoo's (fig25's) models of the
    profile, or the 8-bit CIFAR-10 model (a training cell of this script)."""
    if ds == "cifar10":
        for seed in range(cfg.seeds):
            out = cache.run_dir("fig26-cifar-dbm", dict(hidden=cfg.cifar_hidden, updates=cfg.cifar_updates,
                                                        batch=cfg.cifar_batch, seed=seed))
            tcfg = TrainConfig(dataset=ds, encoding="8bit", hidden=(cfg.cifar_hidden,) * 2,
                               batch_size=cfg.cifar_batch, updates=cfg.cifar_updates, seed=seed,
                               data_dir=cfg.data_dir, device=cfg.device,
                               log_every=max(1, cfg.cifar_updates // 50), eval_every=0,
                               ckpt_every=max(1, cfg.cifar_updates // 5), out_dir=str(out))
            t = Trainer(tcfg)
            t.resume()
            t.run(progress=False)
            yield "dbm-ucd-mh-lmi", seed, t.model
        return
    zcfg = zoo.zoo_config(cfg)
    train, test = zoo.binary_data(ds, cfg.data_dir, zcfg.train_limit, zoo.HELD_OUT)
    for method, seed in dbm_cells(ds, cfg, profile):
        t, _ = zoo.train(cache, zcfg, ds, method, seed, train, test, cfg.device)
        yield f"dbm-{method}", seed, t.model


def dbm_sampler(model, ds: str, kind: str, generator: torch.Generator, max_sweeps: int = 1000):
    """``draw(n)``: n images of one sample kind (module docstring). ``draw.search`` counts the local
    searches its mode kinds ran and how many hit ``max_sweeps`` (issue 33: every cap counted)."""
    if kind.startswith("gibbs-"):
        try:
            _, t, start = kind.split("-")
            t = int(t)
        except ValueError:
            t, start = -1, ""
        if t < 1 or start not in ("noise", "mode"):
            raise ValueError(f"sample kind {kind!r}: expected gibbs-<sweeps>-noise or gibbs-<sweeps>-mode")
    elif kind not in ("mode", "mode+1", "random"):
        raise ValueError(f"sample kind {kind!r}: expected mode, mode+1 (or random), gibbs-<t>-noise, gibbs-<t>-mode")

    search = {"searches": 0, "sweeps_capped": 0}

    def searched(n: int):
        """``modes`` of n chains (the released sample(): draw for draw ``sample_images``'s), caps counted."""
        mode, swept, info = modes(model, n, generator, max_sweeps=max_sweeps)
        search["searches"] += n
        search["sweeps_capped"] += int(info.capped.sum())
        return mode, swept

    def draw(n: int) -> torch.Tensor:
        if kind.startswith("gibbs-"):
            xs = model.random_state(n, generator) if start == "noise" else searched(n)[0]
            v = gibbs_chains(model, xs, (t,), generator)[0][t]
        else:
            mode, swept = searched(n)
            v = (swept if kind in ("mode+1", "random") else mode)[0]
        return to_images(v, ds, ENCODING[ds])
    draw.search = search
    return draw


def gan_model(ds: str, kind: str, cfg: Config, cache: CellCache, seed: int, ext: dict, refs: dict
              ) -> tuple[GANTrainer, pd.DataFrame]:
    """Train (or resume, or reuse) one GAN cell -> (trainer, its metrics). With ``gan_fd_every``
    the classifier-FD of ``n_gen`` samples against ``refs`` (``references``' extractors and
    statistics) is logged as the trace and, with ``gan_stop_on_plateau``, stops the run at the plateau."""
    key = dict(dataset=ds, kind=kind, steps=cfg.gan_steps, width=cfg.gan_width, seed=seed)
    monitor = None
    if cfg.gan_fd_every:                              # budget cells keep their keys
        monitor = classifier_fd_monitor(ext["classifier_fd"], refs["classifier_fd"], cfg.n_gen)
        key.update(fd_every=cfg.gan_fd_every, fd_n=cfg.n_gen, plateau=cfg.gan_stop_on_plateau,
                   min_steps=cfg.gan_min_steps, monitor=ext["classifier_fd"].weights_hash)
    out = cache.run_dir("fig26-gan", key, weights=GANTrainer.WEIGHTS)
    gcfg = GANConfig(dataset=ds, kind=kind, encoding=ENCODING[ds], steps=cfg.gan_steps, seed=seed, width=cfg.gan_width,
                     batch_size=64 if ds == "cifar10" else 50, data_dir=cfg.data_dir, device=cfg.device,
                     log_every=max(1, min(cfg.gan_steps // 100, cfg.gan_fd_every or cfg.gan_steps)),
                     ckpt_every=max(1, min(cfg.gan_steps // 5, 500)), fd_every=cfg.gan_fd_every, fd_n=cfg.n_gen,
                     stop_on_plateau=cfg.gan_stop_on_plateau, min_steps=cfg.gan_min_steps, out_dir=str(out))
    t = GANTrainer(gcfg, monitor=monitor)
    t.resume()
    metrics = t.run(progress=cfg.gan_steps >= 1000)
    return t, metrics


def references(ds: str, cfg: Config, cache: CellCache):
    """The suite classifier of ``ds`` (cached; its training record), the extractors, {metric:
    reason} of missing ones, and each extractor's statistics of the ``n_ref`` test images."""
    enc = ENCODING[ds]
    clf, record = load_or_train(ClassifierConfig(dataset=ds, encoding=enc, epochs=cfg.classifier_epochs,
                                                 train_limit=cfg.classifier_train_limit),
                                cache.root / "classifiers", cfg.data_dir, cfg.device)
    ext, missing = extractors(cfg, ds, clf)
    ref_imgs = images_for(ds, enc, cfg.data_dir, cfg.n_ref, "test")
    refs = {m: F.feature_stats_cached(e, ref_imgs, cache.root / NAME / "refs",
                                      dict(dataset=ds, split="test", n=len(ref_imgs), preprocessing=PREP[enc]))
            for m, e in ext.items()}
    return record, ext, missing, refs, len(ref_imgs)


def train_gans(profile: str = "converged", datasets=None, work_dir: str = "runs", **overrides) -> None:
    """Train (or resume) the GAN cells of a profile and nothing else, e.g. in a second process
    while the DBM zoo trains: ``python -c "from reproduce.fig26_fid import train_gans; train_gans()"``.
    The figure's run then finds them finished in the cache."""
    cfg = Config(**{**PROFILES[profile], **overrides})
    cache = CellCache(work_dir, False, "1")
    for ds in datasets or [d for d in cfg.datasets if not cfg.gan_datasets or d in cfg.gan_datasets]:
        _, ext, _, refs, _ = references(ds, cfg, cache)
        for seed in range(cfg.seeds):
            for kind in cfg.gans:
                gan_model(ds, kind, cfg, cache, seed, ext, refs)


def evaluate_dataset(ds: str, cfg: Config, profile: str, cache: CellCache, grids: dict) -> tuple[list[dict], dict]:
    enc = ENCODING[ds]
    record, ext, missing, refs, n_ref = references(ds, cfg, cache)
    prep = PREP[enc]
    rows, gans = [], {}
    base = dict(kind="final", dataset=ds, n_ref=n_ref, ref_split="test", preprocessing=prep)

    def measured(model, family, seed, kind, source, budget_text, **extra):
        x = source if isinstance(source, torch.Tensor) else torch.cat(
            [source(min(1000, cfg.n_gen - i)).cpu() for i in range(0, cfg.n_gen, 1000)])
        search = getattr(source, "search", None)
        if search and search["searches"]:            # the mode kinds' local searches and their caps
            extra = dict(extra, searches=search["searches"], search_sweeps_capped=search["sweeps_capped"])
        out = []
        for m, e in ext.items():
            st = F.feature_stats(e, x)
            out.append(dict(base, model=model, family=family, seed=seed, sample_kind=kind, metric=m,
                            value=frechet_distance(st, refs[m]), extractor=e.name, weights_hash=e.weights_hash,
                            dims=e.dims, n_gen=st.n, budget=budget_text, missing_reason="", **extra))
        return out

    def add(model, family, seed, kind, source, budget_text, cache_inputs=None, **extra):
        """The rows of one model and sample kind: measured (with ``cache_inputs``: through the
        cell cache, so a re-run or a crash later in the figure does not sample again), plus a
        row with its reason for every extractor that is missing."""
        if cache_inputs is None:
            rows.extend(measured(model, family, seed, kind, source, budget_text, **extra))
        else:
            inputs = dict(cache_inputs, dataset=ds, model=model, seed=seed, sample_kind=kind, n_gen=cfg.n_gen,
                          sample_order="random",      # modes(): the released block order (faithful-order issue)
                          n_ref=n_ref, preprocessing=prep, budget=budget_text,
                          extractors={m: e.weights_hash for m, e in ext.items()})
            cell = cache.cell(NAME + "-samples", inputs, lambda: pd.DataFrame(
                measured(model, family, seed, kind, source, budget_text, **extra)))
            rows.extend(cell.rows.to_dict("records"))
        for m, why in missing.items():
            rows.append(dict(base, model=model, family=family, seed=seed, sample_kind=kind, metric=m,
                             value=float("nan"), extractor="inception-fid", weights_hash="", dims=2048,
                             n_gen=cfg.n_gen, budget=budget_text, missing_reason=why, **extra))

    train_imgs = images_for(ds, enc, cfg.data_dir)
    add("data (train split)", "data", 0, "training images", train_imgs[:cfg.n_gen], "none")
    upd = cfg.cifar_updates if ds == "cifar10" else cfg.updates
    for name, seed, model in dbm_models(ds, cfg, profile, cache):
        weights = state_hash(model)
        for kind in cfg.sample_kinds:
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, ds, name, kind, seed))
            add(name, "dbm", seed, kind, dbm_sampler(model, ds, kind, g), f"{upd} updates",
                cache_inputs={"model_weights": weights})
        if seed == 0:
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "grid", ds, name))
            grids[ds][name] = dbm_sampler(model, ds, "mode", g)(16)
    if cfg.gan_datasets and ds not in cfg.gan_datasets:
        return rows, {"classifier": record, "missing": missing, "gans": gans}
    for seed in range(cfg.seeds):
        for kind in cfg.gans:
            t, metrics = gan_model(ds, kind, cfg, cache, seed, ext, refs)
            s = t.summary()
            s["train_wall_s"] = train_seconds_of(metrics)
            gans[f"{kind}:{seed}"] = s
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, ds, kind, seed))
            add(kind, "gan", seed, "generator output", lambda b: t.sample(b, g), f"{t.step} generator steps",
                steps_trained=t.step, stop_reason=s["stop_reason"], train_wall_s=s["train_wall_s"],
                trained_on=s["trained_on"])
            trace = metrics[metrics.metric.isin(["classifier_fd", "wall_time_s"])]
            rows += [dict(kind="trace", dataset=ds, model=kind, family="gan", seed=seed, step=int(r.step),
                          metric=r.metric, value=float(r.value)) for r in trace.itertuples()]
            if seed == 0:
                g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "grid", kind))
                grids[ds][kind] = t.sample(16, g)
    return rows, {"classifier": record, "missing": missing, "gans": gans}


KIND_MARKERS = {"mode": "o", "mode+1": "s", "random": "s", "gibbs-1000-noise": "^", "gibbs-1000-mode": "v",
                "generator output": "P"}


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    """One panel per measured metric and data set: a row per model (its method's colour), a marker
    per sample kind at the mean over seeds, a line over the seeds' range where there are several,
    the training images' distance dashed (the floor); log x axis. GAN traces: their own figure."""
    import matplotlib
    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    d = df[df.value.notna()]
    if "kind" in d:                                                # the GAN traces: their own figure
        plot_gan_curves(d[d.kind == "trace"], d[d.kind != "trace"], path.with_name(f"{path.stem}_gan_curves.png"),
                        run)
        d = d[d.kind != "trace"]
    order = {ds: i for i, ds in enumerate(("mnist", "fashion-mnist", "cifar10"))}
    panels = sorted(dict.fromkeys(zip(d.metric, d.dataset)), key=lambda p: (p[0], order.get(p[1], 9), p[1]))
    models = list(dict.fromkeys(d[d.family != "data"].model))
    kinds = [k for k in dict.fromkeys(d[d.family != "data"].sample_kind)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(7.5 * max(1, len(panels)), max(4.5, 2.4 + 0.42 * len(models))),
                             squeeze=False)
    xlabel = {"fid": "FID (log; lower is better)",
              "classifier_fd": "classifier-Frechet distance (log; lower is better)"}
    for ax, (m, ds) in zip(axes[0], panels):
        x = d[(d.metric == m) & (d.dataset == ds)]
        floor = x[x.family == "data"].value
        x = x[x.family != "data"]
        ms = [mod for mod in models if (x.model == mod).any()]
        for i, mod in enumerate(ms):
            sty = method_style(mod)
            for k_i, k in enumerate(kinds):
                v = x[(x.model == mod) & (x.sample_kind == k)].value
                if v.empty:
                    continue
                y = i + (k_i - (len(kinds) - 1) / 2) * 0.12
                if len(v) > 1:
                    ax.hlines(y, v.min(), v.max(), color=sty["color"], lw=1.5)
                ax.plot(v.mean(), y, KIND_MARKERS.get(k, "D"), color=sty["color"], ms=7, mec="k", mew=0.4)
        labels = []
        for mod in ms:
            b = x[x.model == mod].budget.dropna() if "budget" in x else pd.Series(dtype=str)
            gan = (x[x.model == mod].family == "gan").any()
            labels.append(f"{mod} ({b.iloc[0]})" if gan and len(b) and isinstance(b.iloc[0], str) else mod)
        ax.set_yticks(range(len(ms)), labels, fontsize=8)
        ax.invert_yaxis()
        if len(floor):
            ax.axvline(float(floor.iloc[0]), color="k", ls="--", lw=1)
        ax.set_xscale("log")
        n = int(x.n_gen.max()) if "n_gen" in x and x.n_gen.notna().any() else "?"
        ext = x.extractor.iloc[0] if len(x) else m
        ax.set(xlabel=xlabel.get(m, m))
        ax.set_title(textwrap.fill(f"{ds}: {ext}, {n} samples per model (dashed: training images)", 60), fontsize=10)
        ax.grid(axis="x", which="both", color="0.92", lw=0.6)
    handles = [Line2D([], [], ls="", marker=KIND_MARKERS.get(k, "D"), color="0.4", mec="k", mew=0.4, ms=7, label=k)
               for k in kinds]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()), title=None)
    profile = run.profile if run is not None else "?"
    seeds = int(d[d.family != "data"].groupby(["dataset", "model", "sample_kind"]).seed.nunique().max()) if len(d) else 0
    fig.suptitle(f"Slide 26: sample quality of the DBMs (by sample kind) and the GANs ({profile} profile); "
                 "colour: method, marker: sample kind", fontsize=12)
    fig.tight_layout(rect=(0, 0.03, 1, 1 - 0.75 / fig.get_figheight()))
    save_figure(fig, path, run, points="mean over seeds" + (", line: min-max over seeds" if seeds > 1 else ""),
                seeds=seeds)


def plot_gan_curves(trace: pd.DataFrame, final: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    """Classifier-FD of each GAN over generator steps (the plateau rule's trace), its stop marked,
    with the training images' floor; the legend gives steps, stop reason and wall-clock."""
    fd = trace[trace.metric == "classifier_fd"]
    if fd.empty:
        return
    import matplotlib.pyplot as plt
    datasets = list(dict.fromkeys(fd.dataset))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.2), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for (model, seed), x in fd[fd.dataset == ds].groupby(["model", "seed"], sort=False):
            x = x.sort_values("step")
            f = final[(final.dataset == ds) & (final.model == model) & (final.seed == seed)
                      & (final.metric == "classifier_fd")]
            why = ""
            if len(f) and "stop_reason" in f:
                wall = float(f.train_wall_s.iloc[0])
                on = f.trained_on.iloc[0] if "trained_on" in f and isinstance(f.trained_on.iloc[0], str) else ""
                why = (f"{f.stop_reason.iloc[0]} at {int(f.steps_trained.iloc[0])} steps, "
                       + (f"{wall / 3600:.1f} h" if wall >= 3600 else f"{wall / 60:.0f} min") + (f" on {on}" if on else ""))
            sty = method_style(model)
            line, = ax.plot(x.step, x.value, lw=1.2, color=sty["color"], ls=sty["ls"],
                            label=f"{model} seed {seed}" + (f" ({why})" if why else ""))
            ax.plot(x.step.iloc[-1], x.value.iloc[-1], "o", color=line.get_color())
        floor = final[(final.dataset == ds) & (final.family == "data") & (final.metric == "classifier_fd")].value
        if len(floor):
            ax.axhline(float(floor.iloc[0]), color="k", ls="--", lw=1, label="floor: training images")
        ax.set(title=f"{ds}: GAN classifier-FD while training", xlabel="generator steps",
               ylabel="classifier-Frechet distance (log)", yscale="log")
        ax.legend(fontsize=7)
    profile = run.profile if run is not None else "?"
    fig.suptitle(f"Slide 26: the GANs' classifier-Frechet distance while training ({profile} profile; "
                 "dot: where the plateau rule stopped)", fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save_figure(fig, path, run, rule="stopped when the last 20 % of the trace is flat (dbm.metrics.convergence)")


def method_of(model: str, family) -> str:
    """A row's ``method`` (the issue-13 column every result table carries): the DBM's estimator
    preset ("dbm-ucd-mh-lmi" -> "ucd-mh-lmi"), the GAN's kind, or "data" (the training-image floor)."""
    if family == "dbm":
        return model.removeprefix("dbm-")
    return "data" if family == "data" else model


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per data set, model and sample kind: each metric's mean, standard error over seeds and seed count."""
    d = df[df.kind != "trace"] if "kind" in df else df
    d = d[d.value.notna()]
    g = d.groupby(["dataset", "model", "sample_kind", "metric"], sort=False).value
    t = pd.DataFrame({"mean": g.mean(), "se": g.sem(), "seeds": g.count()}).reset_index()
    t = t.pivot_table(index=["dataset", "model", "sample_kind"], columns="metric", values=["mean", "se", "seeds"],
                      sort=False)
    t.columns = [f"{m}_{stat}" for stat, m in t.columns]
    return t.reset_index()


def compute(run: Run) -> Computed:
    cfg, rows, records, problems = run.cfg, [], {}, []
    grids = {ds: {} for ds in cfg.datasets}
    for ds in progress(cfg.datasets, "fig26"):
        try:
            r, records[ds] = evaluate_dataset(ds, cfg, run.profile, run.cache, grids)
        except DataError as e:
            problems.append(str(e))
            rows.append(dict(dataset=ds, model="all", metric="all", value=float("nan"), missing_reason=str(e)))
            continue
        rows += r
        problems += list(records[ds]["missing"].values())
        sample_grid(grids[ds], run.out / f"fig26_samples_{ds}.png", run=run,
                    title=f"{ds}: DBM rows are local modes (not MCMC samples); GAN rows are generator samples")
    df = pd.DataFrame(rows)
    df["profile"] = run.profile
    if "family" in df:                       # the mode kinds' block order (modes(): the released order)
        df["sample_order"] = df.family.map(lambda f: "random" if f == "dbm" else None)
    df.insert(df.columns.get_loc("model") + 1, "method", [method_of(m, f) for m, f in zip(df.model, df.get("family"))])
    return Computed(df, dict(per_dataset=records, problems=sorted(set(problems))), tuple(problems))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summarise)


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
