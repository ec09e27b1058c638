"""How good is the bias study's "stuck-Y" model of the cap? Checked exactly on enumerable DBMs.

The bias study (reproduce/bias_study.py) judges the 100,000-step cap of UCD-MH-LMI on models too
large for the exact pair chain with a model: X0 = x0 corrects with probability a(x0), and the pair
stays unmet with probability q = 1 - a - 2^-n a step, so the cap cuts the share
E[w q^(cap-1)] / E[w] (w = a / (a + 2^-n)) of the correction term, and leaves the relative bias
|s Delta| / |g*|-like ``cap_bias_model`` (dbm.exact_mh.correction_diagnostics). Here, on DBMs of
at most 2^8 states with acceptances low enough for caps of 10-100 steps to matter, the exact pair
chain (dbm.exact_mh.capped_expectation, negative phase, the released pi0 from dbm.exact.pi0_table)
gives what the model approximates: the share of E[tau - 1] past the cap, and the bias of the capped
estimator |E[H_cap] - E_target[phi]|. The rows put the two side by side.

    python -m reproduce.cap_model_check [--quick]

Outputs: results/cap_model_check.{csv,json,png}.
"""
from __future__ import annotations

import dataclasses
import sys

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.cap_model_check")

import pandas as pd
import torch

from dbm import exact, exact_mh
from dbm.provenance import seed_hash
from dbm.sufficient_stats import per_state_statistics
from reproduce.common import Computed, Run, progress, save_figure, script_main

NAME = "cap_model_check"


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple = ("3-3-2:3.0", "2-3-3:3.0", "4-2-2:3.5", "3-3-2:4.0", "2-3-3:4.0")   # shape:weight scale
    caps: tuple = (10, 30, 100)
    horizon: int = 1500                   # steps of the uncapped pair chain (its tail must vanish there)
    device: str = "cpu"


QUICK = dict(models=("2-2-2:3.0",), caps=(5, 20), horizon=800)


def check(shape: str, scale: float, cfg: Config) -> list[dict]:
    sizes = [int(s) for s in shape.split("-")]
    g = torch.Generator().manual_seed(seed_hash(NAME, shape, scale))
    m = dbm.DBM(sizes, init="gaussian", sigma=scale, generator=g)
    with torch.no_grad():
        for b in m.biases:
            b.copy_(0.5 * torch.randn(b.shape, generator=g))
    m = exact._double(m)
    _, pi0 = exact.pi0_table(m, "random")
    xs, e = exact_mh.free_states(m)
    n = e.numel()
    a = exact_mh.acceptance(m)(e)
    target = exact.expected_statistics(m)
    delta = target - pi0 @ per_state_statistics(m, xs)                 # the whole correction
    full = exact_mh.capped_expectation(m, pi0, cfg.horizon)
    tail = float(full.p_tau_gt[-1])
    rows = []
    for cap in cfg.caps:
        capped = exact_mh.capped_expectation(m, pi0, cap)
        q = (1 - a - 1 / n).clamp(min=0) ** (cap - 1)
        w = a / (a + 1 / n)
        share_model = float(pi0 @ (w * q) / (pi0 @ w))
        rows.append(dict(shape=shape, w_scale=scale, states=n, cap=cap, p_correction=float(pi0 @ a),
                         tail_at_horizon=tail,
                         share_exact=float(full.p_tau_gt[cap - 1:].sum() / full.p_tau_gt.sum()),
                         share_model=share_model,
                         steps_past_cap_exact=float(full.p_tau_gt[cap - 1:].sum()),
                         steps_past_cap_lower=float(pi0 @ (w * q)),
                         bias_exact=float((capped.mean - target).norm() / delta.norm()),
                         bias_model=share_model))
    return rows


def compute(run: Run) -> Computed:
    cfg, rows = run.cfg, []
    for spec in progress(cfg.models, "cap model check"):
        shape, scale = spec.split(":")
        inputs = dict(shape=shape, w_scale=float(scale), caps=list(cfg.caps), horizon=cfg.horizon)
        rows.append(run.cache.cell(NAME, inputs, lambda: pd.DataFrame(check(shape, float(scale), cfg))).rows)
    df = pd.concat(rows, ignore_index=True)
    short = df[df.tail_at_horizon > 1e-8]
    problems = tuple(f"{r.shape} scale {r.w_scale}: P(tau > {cfg.horizon}) = {r.tail_at_horizon:.1e}; raise --horizon"
                     for r in short.drop_duplicates("shape").itertuples())
    return Computed(df, dict(note="share: of E[tau - 1] past the cap; bias: |E[H_cap] - E_target| / |Delta|, "
                                  "Delta = E_target - E_pi0 (the model's bias is its share of Delta)"), problems)


def plot(df: pd.DataFrame, path, run: Run | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    for a, (x, y, what) in zip(ax, (("share_exact", "share_model", "share of the correction term past the cap"),
                                    ("bias_exact", "bias_model", "bias of the capped estimator / |correction|"))):
        for cap, d in df.groupby("cap"):
            a.scatter(d[x], d[y], label=f"cap {cap}", s=25)
        hi = max(df[x].max(), df[y].max(), 1e-3) * 1.1
        a.plot([0, hi], [0, hi], color="0.5", lw=0.8, ls="--")
        a.set(xlabel="exact, from the pair chain (fraction)", ylabel="stuck-Y model (fraction)", title=what)
        a.legend(fontsize=8)
    fig.suptitle("The bias study's cap model against the exact pair chain (dashed: equal)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path, run, models=len(df.drop_duplicates(["shape", "w_scale"])))


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    return df[["shape", "w_scale", "cap", "p_correction", "share_exact", "share_model", "bias_exact", "bias_model"]]


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles={"full": {}, "quick": QUICK},
                       compute=compute, plot=plot, summary=summarise, default_profile="full", version="1")


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))
