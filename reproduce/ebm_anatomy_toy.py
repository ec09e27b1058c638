"""EBM anatomy, toy 2-D targets: convergent vs non-convergent ML learning (Nijkamp et al., AAAI 2020).

For each target and each outcome of the paper's toy configs, with the authors' released targets
and toy net as the defaults (exact densities in ``dbm.ebm.toy``, nets in ``dbm.ebm.nets``):

- ``gmm``: 8 equal Gaussians (sd 0.15) on the unit circle; ``rings``: 4 equal rings at radii 1-4
  (sd 0.15), whose noise start is scaled x2 (the authors' ``noise_init_factor``); net ``toy``,
  2-32-64-64-64-1 (10.6k parameters).
- named variants, the project's earlier choices: target ``rings-nested`` (2 rings at radii 0.5
  and 1, weights proportional to the radius, sd 0.1) and ``--net toy-wide`` (2-128-128-128-1).

Outcomes:

- ``convergent``: SGD lr 0.1, eps = 0.125, 500 Langevin steps from a persistent bank of 10,000
  chains: the paper finds the learned density exp(-U) close to the truth.
- ``non-convergent``: Adam lr 1e-4, eps = 0.01, 100 steps from Gaussian noise: short-run samples
  look right, the density does not.

Measured per model on a grid of cells of side ``grid_cell`` over each target's square
[-e, e]^2 (e: the outermost mean plus 4 sd, the authors' plotting range): total variation and KL(truth || model) of the learned
density softmax(-U); total variation of kernel density estimates of short-run samples (the
training initialisation, K steps), long-run samples (``long_run_steps`` steps from the same
noise) and, for the persistent bank, the bank itself; the KDE of true samples is the floor.
Traces: d_{s_t} and r_t every update (r_t in the paper's units, (eps^2 / 2) ||grad_x U||, as the
authors' code computes it; ``grad_norm``, the project's earlier unit ||grad_x U||, beside it).

    python -m reproduce.ebm_anatomy_toy [--quick | --profile budget | --profile paper]

Outputs: results/ebm_anatomy_toy.{csv,json,png}; the density grids and samples behind the plot
are the arrays of the evaluation cells in <work-dir>/ebm_anatomy_toy/ (column ``run``: the cell key).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.ebm_anatomy_toy")

import pandas as pd
import torch

from dbm.ebm.toy import Toy2D, cell_probs_from_energy, cell_probs_from_log_density, cell_probs_from_samples, grid, kl, tv
from dbm.result_cache import CellCache, file_hash
from dbm.ebm.train import EBMConfig, EBMTrainer, fresh_start, long_run, train_or_resume
from dbm.provenance import seed_hash
from reproduce.common import Computed, Run, progress, save_figure, script_main, summary_pivot

NAME = "ebm_anatomy_toy"
TARGETS = {"gmm": Toy2D("gmm", 8, 1.0, 0.15), "rings": Toy2D("rings", 4, 1.0, 0.15),
           "rings-nested": Toy2D("rings-nested", 2, 1.0, 0.1)}
NOISE_SCALE = {"gmm": 1.0, "rings": 2.0}           # the authors' noise_init_factor (1 for the others)
# the paper's toy configs (spec table); batch 100 everywhere
OUTCOMES = {
    "convergent": dict(optimizer="sgd", lr=0.1, eps=0.125, steps=500, init="persistent", bank_size=10_000),
    "non-convergent": dict(optimizer="adam", lr=1e-4, eps=0.01, steps=100, init="gaussian"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    targets: tuple = ("gmm", "rings")
    outcomes: tuple = ("convergent", "non-convergent")
    updates: int = 1500                # the paper: 200k (convergent), 100k (non-convergent)
    net: str = "toy"                   # the authors' 2-32-64-64-64-1; "toy-wide": the project's earlier net
    n_f: int = 32
    batch_size: int = 100
    data_epsilon: float = 0.0          # 2-D data are already continuous
    seeds: int = 1
    grid_cell: float = 0.04            # side of a grid cell (gmm: 80 x 80 cells, rings: 230 x 230)
    kde_bandwidth: float = 0.05
    n_eval: int = 5000                 # chains for the short-/long-run KDEs
    long_run_steps: int = 20_000
    device: str = "cpu"


PROFILES = {
    "quick": dict(updates=20, n_eval=500, long_run_steps=200, grid_cell=0.1, targets=("gmm",)),
    "budget": {},
    "paper": dict(updates=200_000, seeds=3, long_run_steps=100_000),
}


def ebm_config(cfg: Config, target: str, outcome: str, seed: int, cache: CellCache, quick: bool) -> EBMConfig:
    t = TARGETS[target]
    over = dict(OUTCOMES[outcome])
    if over["init"] != "persistent":                          # the persistent bank starts on [-1, 1]^2
        over["init_scale"] = NOISE_SCALE.get(target, 1.0)
    if quick:                                                 # keep the smoke test short
        over.update(steps=min(over["steps"], 20), bank_size=min(over.get("bank_size", 10_000), 500))
    base = EBMConfig(dataset=t.kind, toy_groups=t.groups, toy_radius=t.radius, toy_sd=t.sd, net=cfg.net, n_f=cfg.n_f,
                     batch_size=cfg.batch_size, data_epsilon=cfg.data_epsilon, updates=cfg.updates,
                     seed=seed, ckpt_every=max(1, cfg.updates // 10), device=cfg.device, **over)
    inputs = {k: v for k, v in dataclasses.asdict(base).items() if k not in ("out_dir", "device", "ckpt_every")}
    return dataclasses.replace(base, out_dir=str(cache.run_dir(f"{NAME}-train", inputs, weights=EBMTrainer.WEIGHTS)))


@torch.no_grad()
def evaluate(trainer, cfg: Config, target: str, seed: int) -> tuple[pd.DataFrame, dict]:
    """Density errors on the grid; returns metric rows and arrays for the plot."""
    ecfg, net, truth = trainer.cfg, trainer.net.eval(), TARGETS[target]
    pts, _ = target_grid(cfg, target)
    p = cell_probs_from_log_density(truth.log_density(pts))
    q = cell_probs_from_energy(net, pts.to(ecfg.device))
    g = torch.Generator(device=ecfg.device).manual_seed(seed_hash(NAME, "eval", target, ecfg.init, ecfg.optimizer, seed))
    start = "uniform" if ecfg.init == "persistent" else ecfg.init           # the bank starts from uniform noise
    x0 = fresh_start(ecfg, cfg.n_eval, g, kind=start)
    short, _ = long_run(net, x0, ecfg.steps, ecfg.eps, g)
    long, trace = long_run(net, x0, cfg.long_run_steps, ecfg.eps, g, record_every=max(1, cfg.long_run_steps // 200))
    kde = lambda s: cell_probs_from_samples(s, pts, cfg.kde_bandwidth)   # noqa: E731
    rows = {"density_tv": tv(p, q), "density_kl": kl(p, q), "short_run_kde_tv": tv(p, kde(short)),
            "long_run_kde_tv": tv(p, kde(long)), "long_run_energy_drop": float(trace.energy.iloc[0] - trace.energy.iloc[-1])}
    arrays = {"model": q, "short": short[:2000], "long": long[:2000]}
    if trainer.bank is not None:
        rows["bank_kde_tv"] = tv(p, kde(trainer.bank.x))
        arrays["bank"] = trainer.bank.x[:2000]
    return pd.DataFrame([{"metric": k, "value": v} for k, v in rows.items()]), arrays


def target_grid(cfg: Config, target: str) -> tuple[torch.Tensor, float]:
    """The evaluation grid of a target: cells of side about ``grid_cell`` over [-e, e]^2."""
    lim = TARGETS[target].extent()
    return grid(lim, max(1, round(2 * lim / cfg.grid_cell)))


EVAL_FIELDS = ("grid_cell", "kde_bandwidth", "n_eval", "long_run_steps")


def run_cell(cfg: Config, target: str, outcome: str, seed: int, cache: CellCache, quick: bool) -> pd.DataFrame:
    """Train (or reuse) one EBM and evaluate it (a cell keyed by the model's hash)."""
    ecfg = ebm_config(cfg, target, outcome, seed, cache, quick)
    out = Path(ecfg.out_dir)
    trainer = train_or_resume(ecfg, progress=False)
    inputs = dict({k: getattr(cfg, k) for k in EVAL_FIELDS}, target=target, outcome=outcome, seed=seed,
                  model=file_hash(out / EBMTrainer.WEIGHTS))
    cell = cache.cell(NAME, inputs, lambda: evaluate(trainer, cfg, target, seed))
    metrics = pd.read_csv(out / "metrics.csv")[["step", "metric", "value"]]
    trace = metrics[metrics.metric.isin(["d_st", "r_t", "grad_norm"])].assign(kind="trace")
    df = pd.concat([cell.rows.assign(kind="summary", step=ecfg.updates), trace], ignore_index=True)
    df["wall_time_s"] = float(metrics[metrics.metric == "wall_time_s"].value.max())
    return df.assign(target=target, outcome=outcome, seed=seed, run=cell.meta["key"])


def plot(df: pd.DataFrame, path: Path, run: Run) -> None:
    cfg, cache = run.cfg, run.cache
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = df[["target", "outcome", "run"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(len(runs), 5, figsize=(20, 3.6 * len(runs)), squeeze=False)
    for i, (target, outcome, cell_key) in enumerate(runs):
        lim = TARGETS[target].extent()
        ext = [-lim, lim, -lim, lim]
        arr = {k: v.numpy() for k, v in cache.load(NAME, cell_key).arrays.items()}
        s = df[(df.run == cell_key) & (df.kind == "summary")].set_index("metric").value
        pts, _ = target_grid(cfg, target)
        truth = cell_probs_from_log_density(TARGETS[target].log_density(pts)).numpy()
        n = round(len(truth) ** 0.5)
        for j, (title, img) in enumerate((("truth", truth), (f"learned exp(-U), TV {s.density_tv:.2f}", arr["model"]))):
            axes[i, j].imshow(img.reshape(n, n), origin="lower", extent=ext, cmap="viridis")
            axes[i, j].set_title(f"{target} {outcome}: {title}" if j == 0 else title, fontsize=9)
        for j, (key, label) in enumerate((("short", "short-run"), ("long", "long-run")), start=2):
            pts_s = arr[key]
            axes[i, j].scatter(pts_s[:, 0], pts_s[:, 1], s=1, alpha=0.4)
            axes[i, j].set(xlim=ext[:2], ylim=ext[2:])
            axes[i, j].set_title(f"{label} samples, KDE TV {s[key + '_run_kde_tv']:.2f}", fontsize=9)
        tr = df[(df.run == cell_key) & (df.kind == "trace")]
        ax = axes[i, 4]
        right = ax.twinx()
        for metric, color, a in (("d_st", "C0", ax), ("r_t", "C1", right)):
            t = tr[tr.metric == metric]
            a.plot(t.step, t.value, color=color, lw=0.6, label=metric)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_yscale("symlog")
        ax.set_xlabel("training update")
        ax.set_ylabel("d_st: energy difference, data - samples (symlog)", color="C0", fontsize=8)
        right.set_ylabel("r_t: (eps^2/2) |grad U| of the samples", color="C1", fontsize=8)
        ax.set_title("d_st (blue, left) and r_t (orange, right)", fontsize=9)
        for j in range(4):
            axes[i, j].set_xlabel("x1", fontsize=8)
            axes[i, j].set_ylabel("x2", fontsize=8)
    fig.suptitle(f"EBM anatomy, toy 2-D targets ({run.profile} profile): learned densities, short- and long-run "
                 "samples, and the learning diagnostics", fontsize=12)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    save_figure(fig, path, run, dpi=90, updates=int(df.updates.max()) if "updates" in df else "?")


def compute(run: Run) -> Computed:
    cfg = run.cfg
    quick = run.profile == "quick"
    jobs = [(t, o, s) for t in cfg.targets for o in cfg.outcomes for s in range(cfg.seeds)]
    df = pd.concat([run_cell(cfg, t, o, s, run.cache, quick) for t, o, s in progress(jobs, NAME)], ignore_index=True)
    df["updates"], df["profile"] = cfg.updates, run.profile
    floors = {}
    for t in cfg.targets:
        pts, _ = target_grid(cfg, t)
        floors[t] = tv(cell_probs_from_log_density(TARGETS[t].log_density(pts)),
                       cell_probs_from_samples(TARGETS[t].sample(cfg.n_eval, torch.Generator().manual_seed(0)), pts,
                                               cfg.kde_bandwidth))
    return Computed(df, dict(targets={t: dataclasses.asdict(TARGETS[t]) for t in cfg.targets}, outcomes=OUTCOMES,
                             noise_scale={t: NOISE_SCALE.get(t, 1.0) for t in cfg.targets}, net=cfg.net,
                             r_t_units="(eps^2 / 2) mean ||grad_x U|| over the Langevin path (the authors' code); "
                                       "grad_norm: mean ||grad_x U||",
                             kde_tv_of_true_samples=floors))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summary_pivot("target", "outcome"))


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
