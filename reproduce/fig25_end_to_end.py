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
import json
import sys
import time
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.fig25_end_to_end")

import pandas as pd
import torch

from dbm.data import load_images
from dbm.metrics.ais import ais_log_partition, log_likelihood_bound
from dbm.results import atomic_write_text, cell_id, seed_hash, write_csv, write_sidecar
from dbm.run import RunDir
from dbm.train import TrainConfig, Trainer, encode
from reproduce.common import base_parser, finish, output_paths, progress, sample_grid

NAME = "fig25_end_to_end"


@dataclasses.dataclass(frozen=True)
class Config:
    datasets: tuple = ("mnist", "fashion-mnist")
    methods: tuple = ("ucd-mh-lmi", "ucd-gibbs", "cd", "pcd", "pcd-pretrained")
    seeds: int = 2
    hidden: tuple = (500, 500)
    batch_size: int = 100
    updates: int = 2000
    lr: float = 1e-2
    gamma: float = 1e-3
    train_limit: int = 0
    pretrain_updates: int = 2000
    gibbs_max_steps: int = 10
    ais_runs: int = 100
    ais_betas: int = 3000
    test_n: int = 2000
    data_dir: str | None = None
    device: str = "cpu"


PROFILES = {
    "quick": dict(hidden=(64, 64), updates=60, train_limit=2000, seeds=1, pretrain_updates=100,
                  ais_runs=32, ais_betas=300, test_n=500),
    "budget": {},
    "paper": dict(hidden=(784, 784), batch_size=1000, updates=1_000_000, pretrain_updates=20_000,
                  gibbs_max_steps=100, ais_runs=100, ais_betas=20_000, test_n=10_000, seeds=3),
}


def estimator_options(method: str, cfg: Config) -> tuple[str, dict, int]:
    if method == "ucd-mh-lmi":
        return "ucd-mh-lmi", {}, 0
    if method == "ucd-gibbs":
        return "ucd-gibbs", {"max_steps": cfg.gibbs_max_steps}, 0
    if method == "cd":
        return "cd", {"k": 1}, 0
    if method == "pcd":
        return "pcd", {"k": 1}, 0
    if method == "pcd-pretrained":
        return "pcd", {"k": 1, "positive": "mean-field"}, cfg.pretrain_updates
    raise ValueError(f"unknown method {method!r}")


def bernoulli_baseline(train: torch.Tensor, test: torch.Tensor) -> float:
    """Mean test log-likelihood of independent pixels fitted to the training set (+1 smoothing)."""
    p = (train.sum(0) + 1) / (train.shape[0] + 2)
    return float((test * p.log() + (1 - test) * (1 - p).log()).sum(-1).mean())


def binary_data(ds: str, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """The binarised training set (first ``train_limit`` images) and the first ``test_n`` test images."""
    imgs = load_images(ds, "train", cfg.data_dir)
    train = encode(imgs[:cfg.train_limit] if cfg.train_limit else imgs, TrainConfig())
    return train, encode(load_images(ds, "test", cfg.data_dir)[:cfg.test_n], TrainConfig())


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


TRAIN_FIELDS = ("hidden", "batch_size", "updates", "lr", "gamma", "train_limit", "pretrain_updates",
                "gibbs_max_steps")
EVAL_FIELDS = ("ais_runs", "ais_betas", "test_n")


def train_key(cfg: Config, dataset: str, method: str, seed: int) -> str:
    """The cell's folder name: a hash of what its training depends on (not of paths or devices)."""
    return cell_id(dict({k: getattr(cfg, k) for k in TRAIN_FIELDS}, dataset=dataset, method=method, seed=seed))


def train_cell(dataset, method, seed, cfg: Config, work: Path, train, test, force: bool = False):
    """Train (or resume, or reuse) one cell's DBM; returns the Trainer and its metric curves.
    fig27 inpaints with these models."""
    name, opts, pre = estimator_options(method, cfg)
    tcfg = TrainConfig(dataset=dataset, hidden=tuple(cfg.hidden), estimator=name,
                       estimator_options=json.dumps(opts), lr=cfg.lr, gamma=cfg.gamma,
                       batch_size=cfg.batch_size, updates=cfg.updates, seed=seed,
                       log_every=max(1, cfg.updates // 50), eval_every=max(1, cfg.updates // 10),
                       ckpt_every=max(1, cfg.updates // 5), pretrain_updates=pre,
                       out_dir=str(work / train_key(cfg, dataset, method, seed)),
                       device=cfg.device)
    if force:                                                # start this cell from scratch
        for f in Path(tcfg.out_dir).glob("final-*.json"):
            f.unlink()
        RunDir(tcfg.out_dir, Trainer.WEIGHTS).clear()
    t = Trainer(tcfg, data=train, eval_data=test[:1000])
    t.resume()
    return t, t.run(progress=False)


def run_cell(dataset, method, seed, cfg: Config, work: Path, train, test, force: bool = False):
    t, curves = train_cell(dataset, method, seed, cfg, work, train, test, force)
    done = Path(t.cfg.out_dir) / f"final-{cell_id({k: getattr(cfg, k) for k in EVAL_FIELDS})}.json"
    final = json.loads(done.read_text()) if done.exists() and not force else {}
    if "test_ll_bound" not in final:
        wall = float(curves[curves.metric == "wall_time_s"].value.max())   # of the training itself
        g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "ais", dataset, method, seed))
        ais = ais_log_partition(t.model, g, runs=cfg.ais_runs, betas=cfg.ais_betas)
        ll = float(log_likelihood_bound(t.model, test.to(cfg.device), ais.log_z).mean())
        final = {"test_ll_bound": ll, "log_z": ais.log_z, "log_z_se": ais.log_z_se, "train_wall_s": wall}
    if "sample_diversity" not in final:                      # also fills caches written before it existed
        final.update(sample_stats(t.model, test, seed_hash(NAME, "stats", dataset, method, seed), cfg.device))
        atomic_write_text(done, json.dumps(final))
    rows = curves[curves.metric.isin(["loss", "recon_error", "neg_tau_mean", "neg_sweeps_mean",
                                      "pos_sweeps_mean", "neg_tau_capped", "pos_tau_capped"])].copy()
    rows = pd.concat([rows, pd.DataFrame([{"step": cfg.updates, "metric": k, "value": v}
                                          for k, v in final.items()])], ignore_index=True)
    rows.insert(0, "seed", seed)
    rows.insert(0, "method", method)
    rows.insert(0, "dataset", dataset)
    return rows, t


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    datasets = list(dict.fromkeys(df.dataset))
    fig, axes = plt.subplots(2, len(datasets), figsize=(6 * len(datasets), 8), squeeze=False)
    for j, ds in enumerate(datasets):
        d = df[df.dataset == ds]
        sns.lineplot(d[d.metric == "recon_error"], x="step", y="value", hue="method", ax=axes[0, j],
                     errorbar=("pi", 100))
        axes[0, j].set(title=f"{ds}: held-out reconstruction error", ylabel="mean |v - p(v | h)|")
        fin = d[d.metric == "test_ll_bound"]
        sns.barplot(fin, x="method", y="value", ax=axes[1, j], errorbar=("pi", 100))
        base = d[d.metric == "bernoulli_baseline_ll"].value
        if len(base):
            axes[1, j].axhline(base.iloc[0], color="k", ls="--", label="independent-pixel baseline")
            axes[1, j].legend()
        axes[1, j].set(title=f"{ds}: test log-likelihood lower bound (AIS)", ylabel="nats")
        axes[1, j].tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    fin = df[df.metric.isin(["test_ll_bound", "bernoulli_baseline_ll", "train_wall_s", "sample_diversity",
                             "sample_ink", "sample_nn_distance"])]
    t = fin.pivot_table(index=["dataset", "method"], columns="metric", values="value", aggfunc="mean")
    t["fails"] = (t.test_ll_bound < t.bernoulli_baseline_ll).where(t.test_ll_bound.notna())
    return t.reset_index()


def main(argv=None) -> int:
    p = base_parser(__doc__, Config)
    p.add_argument("--profile", choices=sorted(PROFILES), default="budget")
    args = p.parse_args(argv)
    csv, js, png = output_paths(args, NAME)
    out = csv.parent
    if args.plot_only:
        df = pd.read_csv(csv)
    else:
        profile = "quick" if args.quick else args.profile
        cfg = args.config(PROFILES[profile], apply=True)
        work = Path(args.work_dir) / NAME
        t0, frames = time.perf_counter(), []
        for ds in cfg.datasets:
            train, test = binary_data(ds, cfg)
            base = bernoulli_baseline(train, test)
            samples = {}
            for method, seed in progress([(m, s) for m in cfg.methods for s in range(cfg.seeds)], f"fig25 {ds}"):
                rows, trainer = run_cell(ds, method, seed, cfg, work, train, test, args.force)
                rows = pd.concat([rows, pd.DataFrame([{"dataset": ds, "method": method, "seed": seed,
                                                       "step": cfg.updates, "metric": "bernoulli_baseline_ll",
                                                       "value": base}])], ignore_index=True)
                frames.append(rows)
                if seed == 0:
                    g = torch.Generator(device=cfg.device).manual_seed(seed_hash(NAME, "samples", ds))
                    samples[method] = dbm.train.sample_images(trainer.model, 16, g)["mode"]
            out.mkdir(parents=True, exist_ok=True)
            sample_grid({m: v.reshape(-1, 1, 28, 28) for m, v in samples.items()}, out / f"fig25_samples_{ds}.png")
        df = pd.concat(frames, ignore_index=True)
        for k in ("hidden", "batch_size", "updates", "lr"):
            df[k] = str(getattr(cfg, k))
        write_csv(df, csv)
        write_sidecar(js, cfg, time.perf_counter() - t0, cfg.device, profile=profile,
                      summary=summarise(df).to_dict("records"), sample_kind="local mode (authors' 'mode')",
                      fails_definition="test_ll_bound < bernoulli_baseline_ll",
                      methods_order_in_sample_grid=list(cfg.methods))
    plot(df, png)
    finish(summarise(df), [csv, js, png])
    return 0


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
