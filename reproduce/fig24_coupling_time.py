"""Slide 24: coupling time tau and local-search sweeps T on randomly initialised DBMs.

Claim (spec §4): as the width d grows, the Gibbs-based coupling's tau grows exponentially while
UCD-MH-LMI's tau is almost always 1, and T grows sublinearly. Every chain here samples from the
model (negative phase, no clamping); per chain we record tau, whether the cap was hit, and T.

    python -m reproduce.fig24_coupling_time [--quick] [--device cuda] [--plot-only] [--force]

Outputs: results/fig24_coupling_time.{csv,json,png}. Finished cells are cached in --work-dir and
skipped on a re-run unless --force.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.fig24_coupling_time")

import pandas as pd
import torch

from dbm import presets
from dbm.result_cache import CellCache
from dbm.provenance import seed_hash
from reproduce.common import Computed, Run, method_palette, method_style, progress, save_figure, script_main

NAME = "fig24_coupling_time"


@dataclasses.dataclass(frozen=True)
class Config:
    widths_mh: tuple = (10, 20, 50, 100, 200, 500, 1000, 2000)
    widths_gibbs: tuple = (10, 20, 50, 100, 200, 500)
    depths: tuple = (2, 3)
    weight_init: str = "orthogonal"       # or "gaussian"
    sigma: float | None = None            # orthogonal gain (1) or Gaussian std (1/sqrt(d))
    biases: str = "zero"                  # or "random": N(0, bias_sigma^2)
    bias_sigma: float = 0.5
    seeds: int = 3                        # model seeds per width
    chains: int = 100                     # chains per model
    mh_max_steps: int = 1000              # caps on tau (hits are counted)
    gibbs_max_steps: int = 1000
    max_sweeps: int = 10_000              # cap on the local search
    methods: tuple = ("ucd-mh-lmi", "mh-independent-y0", "ucd-gibbs-uniform", "ucd-gibbs-lmi",
                      "ucd-mh-lmi-mixed",   # not in the paper (issue 17: the mixed kernel)
                      "ucd-mh-lmi-even-first")   # pi0's fixed-order ablation (the faithful-order issue)
    device: str = "cpu"


QUICK = dict(widths_mh=(10, 20, 50, 100, 200), widths_gibbs=(10, 20, 50), depths=(2,), seeds=2,
             chains=50, mh_max_steps=200, gibbs_max_steps=200)


def make_estimator(method: str, cfg: Config) -> dbm.Estimator:
    """The chain type ``method`` (a preset of ``dbm.presets``) with this figure's caps."""
    return presets.build(method, **presets.caps(method, cfg.mh_max_steps, cfg.gibbs_max_steps, cfg.max_sweeps))


def random_dbm(width: int, depth: int, seed: int, cfg: Config) -> tuple[dbm.DBM, float]:
    """A DBM with all L + 1 layers of width d and random weights; returns it and its sigma."""
    g = torch.Generator(device=cfg.device).manual_seed(
        seed_hash(NAME, "model", depth, cfg.weight_init, cfg.biases, width, seed))
    sigma = cfg.sigma if cfg.sigma is not None else (
        1.0 if cfg.weight_init == "orthogonal" else 1.0 / math.sqrt(width))
    model = dbm.DBM([width] * (depth + 1), init=cfg.weight_init, sigma=sigma, generator=g,
                    device=cfg.device)
    if cfg.biases == "random":
        with torch.no_grad():
            for b in model.biases:
                b.copy_(cfg.bias_sigma * torch.randn(b.shape, generator=g, device=cfg.device))
    return model, sigma


def run_cell(method: str, width: int, depth: int, seed: int, cfg: Config) -> pd.DataFrame:
    """All chains of one (method, width, depth, seed): tidy rows, one per chain and metric."""
    model, sigma = random_dbm(width, depth, seed, cfg)
    gen = torch.Generator(device=cfg.device).manual_seed(
        seed_hash(NAME, "chains", method, depth, cfg.weight_init, cfg.biases, width, seed))
    est = make_estimator(method, cfg)
    t0 = time.perf_counter()
    info = est.coupling_times(model, cfg.chains, gen)
    if cfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    cap = est.max_steps
    per_chain = {"tau": info.tau, "tau_capped": info.capped, "sweeps": info.sweeps,
                 "sweeps_capped": info.sweeps_capped}
    if info.residual_capped is not None:            # UCD-Gibbs: its maximal coupling's residual cap (issue 33)
        per_chain["residual_capped"] = info.residual_capped
    base = dict(method=method, width=width, depth=depth, weight_init=cfg.weight_init, sigma=sigma,
                biases=cfg.biases, model_seed=seed, max_steps=cap)
    frames = [pd.DataFrame({**base, "chain": range(cfg.chains), "metric": k,
                            "value": v.double().cpu().numpy()}) for k, v in per_chain.items()]
    frames.append(pd.DataFrame([{**base, "chain": -1, "metric": "wall_time_s", "value": wall}]))
    return pd.concat(frames, ignore_index=True)


def meets_by_gibbs(method: str) -> bool:
    """Whether the chains of ``method`` meet through coupled Gibbs sweeps (UCD-Gibbs, the mixed
    kernel): their tau grows fast with width, so they run on ``widths_gibbs``."""
    est, opts = presets.resolve(method)
    return est == "ucd-gibbs" or opts.get("gibbs_sweeps", 0) > 0


def cells(cfg: Config):
    for depth in cfg.depths:
        for method in cfg.methods:
            widths = cfg.widths_gibbs if meets_by_gibbs(method) else cfg.widths_mh
            for width in widths:
                for seed in range(cfg.seeds):
                    yield method, width, depth, seed


def sweep(cfg: Config, cache: CellCache) -> pd.DataFrame:
    """Every cell, computed unless cached (key: the settings a cell reads, its coordinates)."""
    frames, todo = [], list(cells(cfg))
    shared = {k: v for k, v in dataclasses.asdict(cfg).items()
              if k not in ("widths_mh", "widths_gibbs", "depths", "seeds", "methods", "device")}
    bar = progress(todo, desc="fig24 cells")
    for method, width, depth, seed in bar:
        bar.set_postfix(method=method, d=width, L=depth, refresh=False)
        inputs = dict(shared, method=method, width=width, depth=depth, seed=seed)
        frames.append(cache.cell(NAME, inputs, lambda: run_cell(method, width, depth, seed, cfg)).rows)
    return pd.concat(frames, ignore_index=True)


def summarise(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per method, depth and width: P(tau = 1), mean / max tau, cap hits, mean / max T; and the
    log-log slope of mean T against width for the local-mode methods."""
    chains = df[df.chain >= 0].pivot_table(index=["method", "depth", "width", "model_seed", "chain"],
                                           columns="metric", values="value").reset_index()
    g = chains.groupby(["method", "depth", "width"])
    table = pd.DataFrame({
        "P(tau=1)": g.tau.apply(lambda t: (t == 1).mean()), "tau_mean": g.tau.mean(),
        "tau_max": g.tau.max(), "capped": g.tau_capped.sum().astype(int),
        "T_mean": g.sweeps.mean(), "T_max": g.sweeps.max(), "chains": g.tau.size()}).reset_index()
    slopes = []
    for (method, depth), t in table[table.T_mean > 0].groupby(["method", "depth"]):
        if len(t) >= 2:
            x, y = t.width.map(math.log), t.T_mean.map(math.log)
            slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
            slopes.append({"method": method, "depth": depth, "T_loglog_slope": slope})
    return table, pd.DataFrame(slopes)


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    """tau and T against width (log-log), a line per method, band = range over model seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    chains = df[df.chain >= 0]
    depths = sorted(chains.depth.unique())
    methods = list(dict.fromkeys(chains.method))
    colors = method_palette(methods)
    sty = {m: method_style(m) for m in methods}
    fig, axes = plt.subplots(2, len(depths), figsize=(5.5 * len(depths), 8), squeeze=False)
    for j, depth in enumerate(depths):
        for i, metric in enumerate(["tau", "sweeps"]):
            ax = axes[i, j]
            for method in methods:
                d = chains[(chains.depth == depth) & (chains.method == method) & (chains.metric == metric)]
                if d.empty or (metric == "sweeps" and d.value.max() == 0):
                    continue
                per_seed = d.groupby(["width", "model_seed"]).value.mean().unstack()
                ax.plot(per_seed.index, per_seed.mean(axis=1), color=colors[method], ls=sty[method]["ls"],
                        marker=sty[method]["marker"], label=method)
                ax.fill_between(per_seed.index, per_seed.min(axis=1), per_seed.max(axis=1), color=colors[method],
                                alpha=0.2)
                if metric == "tau":
                    cap = df[(df.method == method)].max_steps.iloc[0]
                    capped = chains[(chains.depth == depth) & (chains.method == method)
                                    & (chains.metric == "tau_capped")].groupby("width").value.mean()
                    hit = capped[capped > 0].index
                    ax.plot(hit, [cap] * len(hit), "x", color=colors[method], ms=9)
                    ax.axhline(cap, color=colors[method], ls=":", lw=0.8)
            ax.set(xscale="log", yscale="log", xlabel="width d, units in every layer (log)",
                   ylabel="mean coupling time tau, steps (log)" if metric == "tau"
                   else "mean local-search sweeps T (log)",
                   title=f"L = {depth}: " + ("tau (x: chains hit the cap, dotted)" if metric == "tau"
                                             else "T of the local-mode initialisation"))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    profile = run.profile if run is not None else "?"
    fig.suptitle(f"Slide 24: coupling time tau and local-search length T against width ({profile} profile; "
                 "band: range over model seeds)", fontsize=11)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    save_figure(fig, path, run, dpi=120, chains_per_model=int(chains.groupby(["method", "width", "model_seed"])
                                                                  .chain.nunique().max()),
                model_seeds=int(chains.model_seed.nunique()), bands="range over model seeds")


PROFILES = {"full": {}, "quick": QUICK}


def compute(run: Run) -> Computed:
    df = sweep(run.cfg, run.cache)
    table, slopes = summarise(df)
    return Computed(df, dict(summary=table.to_dict("records"), T_loglog_slopes=slopes.to_dict("records")))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summarise, default_profile="full",
                       version="3")            # 2: pi0's block order drawn per chain (the faithful-order issue);
                                               # 3: UCD-Gibbs's residual caps per chain (issue 33)


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
