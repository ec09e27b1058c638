"""Slide 26: Frechet distances of DBM samples against WGAN-GP and WGAN trained in the same harness.

For each data set and model (DBMs by estimator, WGAN-GP, WGAN; plus the training images
themselves as the floor of each metric): draw ``n_gen`` samples, extract features, and compute
the Frechet distance to the reference split's statistics, under one protocol recorded in every
row (extractor and weights hash, n_gen, reference split and n, preprocessing, sample kind, seed,
training budget).
- ``fid``: pytorch-fid's InceptionV3 (needs the weights file; see ``dbm.metrics.fid``).
- ``classifier_fd``: the suite's CNN (``dbm.metrics.classifier``), labelled as such.
- ``standin_fd`` (--quick only): a random ConvNet; checks the plumbing, means nothing.
The binary MNIST / Fashion-MNIST DBMs are fig25's models of the same profile; CIFAR-10 uses an
8-bit DBM 24576-1024-1024 (26.2M parameters; fits one GPU) trained here. GAN samples are
thresholded at 0.5 for binary data (the DBM's and the reference's domain).
When the Inception weights or a data set are missing, every other row is still written, the
missing ones carry the reason, and the script exits with status 1 and the instruction.

    python -m reproduce.fig26_fid [--quick | --profile budget | --profile paper] [--device cuda]
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

from dbm.baselines.train_gan import GANConfig, GANTrainer, images_for
from dbm.data import DataError
from dbm.metrics import fid as F
from dbm.metrics.classifier import ClassifierConfig, load_or_train, to_images
from dbm.metrics.frechet import frechet_distance
from dbm.cells import CellCache
from dbm.results import seed_hash
from dbm.train import TrainConfig, Trainer, sample_images
from reproduce import zoo
from reproduce.common import Computed, Run, progress, sample_grid, save_figure, script_main

NAME = "fig26_fid"


@dataclasses.dataclass(frozen=True)
class Config:
    datasets: tuple = ("mnist", "fashion-mnist", "cifar10")
    dbm_methods: tuple = zoo.METHODS                  # the zoo's (fig25's) models
    sample_kinds: tuple = ("mode", "random")          # local mode / one sweep after it (authors' sample())
    gans: tuple = ("wgan-gp", "wgan")
    gan_steps: int = 500                              # generator steps (5 critic steps each)
    gan_width: int = 0                                # 0: the recipe's (64 for 28x28, 128 for CIFAR-10)
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


PROFILES = {
    "quick": dict(fid_extractor="standin", datasets=("mnist",), dbm_methods=("ucd-mh-lmi",), gan_steps=3,
                  gan_width=8, n_gen=300, n_ref=300,
                  cifar_hidden=16, cifar_updates=3, cifar_batch=20, classifier_epochs=1,
                  classifier_train_limit=2000),
    "budget": {},
    "paper": dict(gan_steps=200_000, seeds=3, cifar_updates=100_000, n_gen=50_000, n_ref=10_000),
}
ENCODING = {"mnist": "binary", "fashion-mnist": "binary", "cifar10": "8bit"}


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


def dbm_models(ds: str, cfg: Config, profile: str, cache: CellCache, seed: int):
    """(name, model) of every DBM of this data set: the zoo's (fig25's) models of the profile, or
    the 8-bit CIFAR-10 model (a training cell of this script)."""
    if ds == "cifar10":
        out = cache.run_dir("fig26-cifar-dbm", dict(hidden=cfg.cifar_hidden, updates=cfg.cifar_updates,
                                                    batch=cfg.cifar_batch, seed=seed))
        tcfg = TrainConfig(dataset=ds, encoding="8bit", hidden=(cfg.cifar_hidden,) * 2, batch_size=cfg.cifar_batch,
                           updates=cfg.cifar_updates, seed=seed, data_dir=cfg.data_dir, device=cfg.device,
                           log_every=max(1, cfg.cifar_updates // 50), eval_every=0,
                           ckpt_every=max(1, cfg.cifar_updates // 5), out_dir=str(out))
        t = Trainer(tcfg)
        t.resume()
        t.run(progress=False)
        yield "dbm-ucd-mh-lmi", t.model
        return
    zcfg = zoo.zoo_config(profile=profile)
    train, test = zoo.binary_data(ds, cfg.data_dir, zcfg.train_limit, zoo.HELD_OUT)
    for method in cfg.dbm_methods:
        t, _ = zoo.train(cache, zcfg, ds, method, seed, train, test, cfg.device)
        yield f"dbm-{method}", t.model


def dbm_sampler(model, ds: str, kind: str, generator: torch.Generator):
    def draw(n: int) -> torch.Tensor:
        return to_images(sample_images(model, n, generator)[kind], ds, ENCODING[ds])
    return draw


def gan_model(ds: str, kind: str, cfg: Config, cache: CellCache, seed: int) -> GANTrainer:
    out = cache.run_dir("fig26-gan", dict(dataset=ds, kind=kind, steps=cfg.gan_steps, width=cfg.gan_width, seed=seed),
                        weights=GANTrainer.WEIGHTS)
    gcfg = GANConfig(dataset=ds, kind=kind, encoding=ENCODING[ds], steps=cfg.gan_steps, seed=seed, width=cfg.gan_width,
                     batch_size=64 if ds == "cifar10" else 50, data_dir=cfg.data_dir, device=cfg.device,
                     log_every=max(1, cfg.gan_steps // 100), ckpt_every=max(1, cfg.gan_steps // 5),
                     out_dir=str(out))
    t = GANTrainer(gcfg)
    t.resume()
    t.run(progress=False)
    return t


def evaluate_dataset(ds: str, cfg: Config, profile: str, cache: CellCache, grids: dict) -> tuple[list[dict], dict]:
    work = cache.root
    enc = ENCODING[ds]
    clf, record = load_or_train(ClassifierConfig(dataset=ds, encoding=enc, epochs=cfg.classifier_epochs,
                                                 train_limit=cfg.classifier_train_limit),
                                work / "classifiers", cfg.data_dir, cfg.device)
    ext, missing = extractors(cfg, ds, clf)
    ref_imgs = images_for(ds, enc, cfg.data_dir, cfg.n_ref, "test")
    prep = "binarised at 0.5" if enc == "binary" else "8-bit pixels / 255"
    refs = {m: F.feature_stats_cached(e, ref_imgs, work / NAME / "refs", dict(dataset=ds, split="test", n=len(ref_imgs),
                                                                           preprocessing=prep))
            for m, e in ext.items()}
    rows = []
    base = dict(dataset=ds, n_ref=len(ref_imgs), ref_split="test", preprocessing=prep)

    def add(model, family, seed, kind, source, budget_text):
        x = source if isinstance(source, torch.Tensor) else torch.cat(
            [source(min(1000, cfg.n_gen - i)).cpu() for i in range(0, cfg.n_gen, 1000)])
        for m, e in ext.items():
            st = F.feature_stats(e, x)
            rows.append(dict(base, model=model, family=family, seed=seed, sample_kind=kind, metric=m,
                             value=frechet_distance(st, refs[m]), extractor=e.name, weights_hash=e.weights_hash,
                             dims=e.dims, n_gen=st.n, budget=budget_text, missing_reason=""))
        for m, why in missing.items():
            rows.append(dict(base, model=model, family=family, seed=seed, sample_kind=kind, metric=m,
                             value=float("nan"), extractor="inception-fid", weights_hash="", dims=2048,
                             n_gen=cfg.n_gen, budget=budget_text, missing_reason=why))

    train_imgs = images_for(ds, enc, cfg.data_dir)
    add("data (train split)", "data", 0, "training images", train_imgs[:cfg.n_gen], "none")
    for seed in range(cfg.seeds):
        for name, model in dbm_models(ds, cfg, profile, cache, seed):
            upd = cfg.cifar_updates if ds == "cifar10" else zoo.zoo_config(profile=profile).updates
            for kind in cfg.sample_kinds:
                g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, ds, name, kind, seed))
                add(name, "dbm", seed, kind, dbm_sampler(model, ds, kind, g), f"{upd} updates")
            if seed == 0:
                g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "grid", ds, name))
                grids[ds][name] = dbm_sampler(model, ds, "mode", g)(16)
        for kind in cfg.gans:
            t = gan_model(ds, kind, cfg, cache, seed)
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, ds, kind, seed))
            add(kind, "gan", seed, "generator output", lambda b: t.sample(b, g), f"{cfg.gan_steps} generator steps")
            if seed == 0:
                g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "grid", kind))
                grids[ds][kind] = t.sample(16, g)
    return rows, {"classifier": record, "missing": missing}


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    d = df[df.value.notna()]
    metrics = list(dict.fromkeys(d.metric))
    datasets = list(dict.fromkeys(d.dataset))
    fig, axes = plt.subplots(len(metrics), len(datasets), figsize=(7 * len(datasets), 4 * len(metrics)),
                             squeeze=False)
    for i, m in enumerate(metrics):
        for j, ds in enumerate(datasets):
            x = d[(d.metric == m) & (d.dataset == ds)]
            floor = x[x.family == "data"].value
            x = x[x.family != "data"].copy()
            if "budget" in x:                                      # the GAN budget in the label
                x["model"] = [f"{mod}\n({b})" if fam == "gan" and isinstance(b, str) and b else mod
                              for mod, fam, b in zip(x.model, x.family, x.budget)]
            sns.barplot(x, x="model", y="value", hue="sample_kind", ax=axes[i, j], errorbar=("pi", 100))
            if len(floor):
                axes[i, j].axhline(float(floor.iloc[0]), color="k", ls="--", lw=1,
                                   label="floor: training images")
                axes[i, j].legend(fontsize=7)
            axes[i, j].set(title=f"{ds}: {x.extractor.iloc[0] if len(x) else m}",
                           ylabel={"fid": "FID (lower is better)",
                                   "classifier_fd": "classifier-Frechet distance (lower is better)"}.get(m, m))
            axes[i, j].tick_params(axis="x", rotation=30)
            axes[i, j].set_xlabel("")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    save_figure(fig, path, run, bars="min-max over seeds where there are several")


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    t = df.pivot_table(index=["dataset", "model", "sample_kind"], columns="metric", values="value", aggfunc="mean")
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
    return Computed(df, dict(per_dataset=records, problems=sorted(set(problems))), tuple(problems))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summarise)


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
