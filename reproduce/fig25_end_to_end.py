"""Slide 25: end-to-end DBM training (no pretraining) on MNIST and Fashion-MNIST, binary, L = 2.

Claim (spec §4): finite-step Gibbs estimators (CD, PCD) and UCD-Gibbs fail without greedy
layer-wise pretraining, while UCD-MH-LMI trains end to end. Methods: ucd-mh-lmi, ucd-gibbs, cd,
pcd (no pretraining) and pcd-pretrained (stacked RBMs + PCD with a mean-field positive phase).

"Fails" is measured: a model fails when its test log-likelihood lower bound (mean-field bound,
log Z by AIS) is below that of a factorised Bernoulli model fitted to the same training data.
Sample statistics of local-mode samples (diversity, ink, distance to the nearest test image) are
recorded beside it.

    python -m reproduce.fig25_end_to_end [--quick | --profile budget | --profile paper] [--device cuda]

Outputs: results/fig25_end_to_end.{csv,json,png} and results/fig25_samples_<dataset>.png.
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

from dbm.cells import CellCache
from dbm.metrics.ais import ais_log_partition, log_likelihood_bound
from dbm.results import seed_hash
from reproduce import zoo
from reproduce.common import Computed, Run, method_palette, progress, sample_grid, save_figure, script_main

NAME = "fig25_end_to_end"


@dataclasses.dataclass(frozen=True)
class Config(zoo.ZooConfig):
    """The zoo's training settings (inherited) and this figure's evaluation."""
    datasets: tuple = ("mnist", "fashion-mnist")
    methods: tuple = zoo.METHODS
    seeds: int = 2
    ais_runs: int = 100
    ais_betas: int = 3000
    test_n: int = 2000
    data_dir: str | None = None
    device: str = "cpu"


EVAL_PROFILES = {"quick": dict(seeds=1, ais_runs=32, ais_betas=300, test_n=500), "budget": {},
                 "paper": dict(ais_runs=100, ais_betas=20_000, test_n=10_000, seeds=3)}
PROFILES = {name: {**zoo.PROFILES[name], **EVAL_PROFILES[name]} for name in zoo.PROFILES}
EVAL_FIELDS = ("ais_runs", "ais_betas", "test_n")


def bernoulli_baseline(train: torch.Tensor, test: torch.Tensor) -> float:
    """Mean test log-likelihood of independent pixels fitted to the training set (+1 smoothing)."""
    p = (train.sum(0) + 1) / (train.shape[0] + 2)
    return float((test * p.log() + (1 - test) * (1 - p).log()).sum(-1).mean())


def sample_stats(model, test: torch.Tensor, seed: int, device: str, n: int = 100) -> dict:
    """Local-mode samples from uniform starts (the authors' "mode" samples): their diversity
    (mean pairwise Hamming distance / pixels), ink (mean pixel) against the test set's, and the
    distance from each sample to its nearest test image (Hamming / pixels)."""
    g = torch.Generator(device=device).manual_seed(seed)
    v = dbm.train.sample_images(model, n, g)["mode"].cpu()
    pair = torch.cdist(v, v, p=1)
    nearest = torch.cdist(v, test.cpu(), p=1).min(1).values
    return {"sample_diversity": float(pair.sum() / (n * (n - 1)) / v.shape[1]),
            "sample_ink": float(v.mean()), "test_ink": float(test.mean()),
            "sample_nn_distance": float(nearest.mean() / v.shape[1])}


def evaluate(trainer, curves: pd.DataFrame, dataset, method, seed, cfg: Config, test) -> pd.DataFrame:
    """The test log-likelihood bound (AIS) and sample statistics of one trained model."""
    wall = float(curves[curves.metric == "wall_time_s"].value.max())        # of the training itself
    g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "ais", dataset, method, seed))
    ais = ais_log_partition(trainer.model, g, runs=cfg.ais_runs, betas=cfg.ais_betas)
    ll = float(log_likelihood_bound(trainer.model, test.to(cfg.device), ais.log_z).mean())
    final = {"test_ll_bound": ll, "log_z": ais.log_z, "log_z_se": ais.log_z_se, "train_wall_s": wall,
             **sample_stats(trainer.model, test, seed_hash(NAME, "stats", dataset, method, seed), cfg.device)}
    return pd.DataFrame([{"metric": k, "value": v} for k, v in final.items()])


def run_cell(cache: CellCache, dataset, method, seed, cfg: Config, train, test):
    """One zoo model (trained here: fig25 owns the zoo) and its evaluation cell; tidy rows."""
    trainer, curves = zoo.train(cache, zoo.zoo_config(cfg), dataset, method, seed, train, test, cfg.device, owned=True)
    test = test[:cfg.test_n]
    inputs = dict({k: getattr(cfg, k) for k in EVAL_FIELDS}, dataset=dataset, method=method, seed=seed,
                  model=zoo.model_hash(trainer))
    final = cache.cell(NAME, inputs, lambda: evaluate(trainer, curves, dataset, method, seed, cfg, test)).rows
    rows = curves[curves.metric.isin(["loss", "recon_error", "neg_tau_mean", "neg_sweeps_mean",
                                      "pos_sweeps_mean", "neg_tau_capped", "pos_tau_capped"])].copy()
    rows = pd.concat([rows, final.assign(step=cfg.updates)], ignore_index=True)
    rows.insert(0, "seed", seed)
    rows.insert(0, "method", method)
    rows.insert(0, "dataset", dataset)
    return rows, trainer


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    datasets = list(dict.fromkeys(df.dataset))
    fig, axes = plt.subplots(2, len(datasets), figsize=(6 * len(datasets), 8), squeeze=False)
    for j, ds in enumerate(datasets):
        d = df[df.dataset == ds]
        pal = method_palette(d.method)
        sns.lineplot(d[d.metric == "recon_error"], x="step", y="value", hue="method", ax=axes[0, j],
                     errorbar=("pi", 100), palette=pal)
        axes[0, j].set(title=f"{ds}: held-out reconstruction error", ylabel="mean |v - p(v | h)|",
                       xlabel="training update")
        fin = d[d.metric == "test_ll_bound"]
        sns.barplot(fin, x="method", y="value", hue="method", ax=axes[1, j], errorbar=("pi", 100), palette=pal,
                    legend=False)
        base = d[d.metric == "bernoulli_baseline_ll"].value
        if len(base):
            axes[1, j].axhline(base.iloc[0], color="k", ls="--", label="independent-pixel baseline")
            axes[1, j].legend()
        axes[1, j].set(title=f"{ds}: test log-likelihood lower bound (AIS)", ylabel="nats per image", xlabel="")
        axes[1, j].tick_params(axis="x", rotation=20)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    seeds = df.groupby(["dataset", "method"]).seed.nunique().max() if "seed" in df else "?"
    save_figure(fig, path, run, updates=df.step.max(), seeds=seeds, bars="min-max over seeds")


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    fin = df[df.metric.isin(["test_ll_bound", "bernoulli_baseline_ll", "train_wall_s", "sample_diversity",
                             "sample_ink", "sample_nn_distance"])]
    t = fin.pivot_table(index=["dataset", "method"], columns="metric", values="value", aggfunc="mean")
    t["fails"] = (t.test_ll_bound < t.bernoulli_baseline_ll).where(t.test_ll_bound.notna())
    return t.reset_index()


def compute(run: Run) -> Computed:
    cfg, frames = run.cfg, []
    for ds in cfg.datasets:
        train, test = zoo.binary_data(ds, cfg.data_dir, cfg.train_limit, max(cfg.test_n, zoo.HELD_OUT))
        base = bernoulli_baseline(train, test[:cfg.test_n])
        samples = {}
        for method, seed in progress([(m, s) for m in cfg.methods for s in range(cfg.seeds)], f"fig25 {ds}"):
            rows, trainer = run_cell(run.cache, ds, method, seed, cfg, train, test)
            rows = pd.concat([rows, pd.DataFrame([{"dataset": ds, "method": method, "seed": seed,
                                                   "step": cfg.updates, "metric": "bernoulli_baseline_ll",
                                                   "value": base}])], ignore_index=True)
            frames.append(rows)
            if seed == 0:
                g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "samples", ds))
                samples[method] = dbm.train.sample_images(trainer.model, 16, g)["mode"]
        sample_grid({m: v.reshape(-1, 1, 28, 28) for m, v in samples.items()}, run.out / f"fig25_samples_{ds}.png",
                    title=f"{ds}: local modes (T = 0 fixed points from uniform noise, seed 0), not MCMC samples",
                    run=run)
    df = pd.concat(frames, ignore_index=True)
    for k in ("hidden", "batch_size", "updates", "lr"):
        df[k] = str(getattr(cfg, k))
    return Computed(df, dict(summary=summarise(df).to_dict("records"), sample_kind="local mode (authors' 'mode')",
                             fails_definition="test_ll_bound < bernoulli_baseline_ll",
                             methods_order_in_sample_grid=list(cfg.methods)))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summarise)


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
