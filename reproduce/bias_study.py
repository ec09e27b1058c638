"""Estimator bias against the exact gradient, on DBMs small enough to enumerate (not in the paper).

For each model (shape, weight scale, random or briefly trained weights) and estimator, N chains
give per-chain gradient estimates g_b of grad mean(-log p(v)) for two clamped data vectors;
against the exact gradient g* (dbm.exact) we record the relative bias |mean g - g*| / |g*|, the
largest |z| over parameters, the per-chain mean squared error, the rate of UCD-MH-LMI correction
events P(tau > 1), the cost in sweeps per chain, and every cap hit (tau, the maximal coupling's
residual sampler, the local search's sweeps). The question: as the model grows, the uniform MH
proposal is rarely accepted, corrections become rare, and then how far is the finite-sample
estimate from the exact gradient?

For the plain lag-1 MH estimators (``diagnosable``) each cell also holds exact diagnostics
(dbm.exact_mh, issue 33): from ``diag_draws`` draws of X0 per phase and the exact first-step
acceptance a(X0), the chance of a correction, the median a, a lower bound on the share of
corrections that run past the cap ``mh_max_steps``, and the chains needed to see a correction from
the typical half of pi0. Each cell gets a verdict (``verdict``): "biased by its cap", "unbiased
within noise", "heavy-tailed" (the test has no power at this chain count), "capped" or "biased".

    python -m reproduce.bias_study [--quick]

Outputs: results/bias_study.{csv,json,png}.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.bias_study")

import pandas as pd
import torch

from dbm import exact, exact_mh, presets
from dbm.provenance import seed_hash
from dbm.estimators import EstimatorInfo, PhaseInfo
from dbm.samplers import energy_fn
from dbm.sufficient_stats import per_state_statistics
from reproduce.common import Computed, Run, method_style, progress, save_figure, script_main

NAME = "bias_study"
FLAG_Z = 4.0                              # a cell is flagged when max |z| over parameters exceeds this
ESTIMATORS = ("cd-1", "cd-10", "pcd-1", "ucd-gibbs", "ucd-gibbs-avg", "ucd-mh-lmi", "ucd-mh-lmi-marg",
              "ucd-mh-lmi-avg", "ucd-mh-lmi-mixed", "ucd-mh-lmi-mixed-marg",
              "official-single-chain", "ucd-mh-lmi-even-first")         # presets of dbm.presets; the last:
                                                                        # pi0's fixed-order ablation


@dataclasses.dataclass(frozen=True)
class Config:
    shapes: tuple = ("3-3-3", "4-4-4", "6-5-5", "8-7-7", "10-8-8")
    w_scales: tuple = ("0.5", "1.0", "2.0")
    weights: tuple = ("random", "trained")
    estimators: tuple = ESTIMATORS
    mh_max_steps: int = 100_000           # cap on UCD-MH-LMI's tau (hits counted)
    gibbs_max_steps: int = 10_000         # cap on UCD-Gibbs's tau (hits counted)
    chains: int = 20_000
    pcd_burn_in: int = 50                 # calls on the fixed model before PCD is measured
    diag_draws: int = 100_000             # draws of X0 per phase for the exact a(X0) diagnostics (0: none)
    flag_z: float = FLAG_Z                # verdicts only (not in the cells' keys)
    rerun_estimators: tuple = ("ucd-mh-lmi",)   # flagged cells of these whose verdict is open are rerun
    rerun_factor: int = 10                # with this many times the chains a typical correction needs
    rerun_min_chains: int = 200_000
    rerun_max_chains: int = 3_000_000     # above: the verdict says what a rerun would need
    train_steps: int = 100                # exact-gradient steps for "trained" weights
    device: str = "cpu"


QUICK = dict(shapes=("3-3-3", "4-4-4", "6-5-5"), w_scales=("1.0",), weights=("random",), chains=4000,
             pcd_burn_in=10, diag_draws=4000, rerun_min_chains=8000, rerun_max_chains=20_000)
CAP_SHARE = 0.05                          # "biased by its cap" when the cap cuts at least this share of the
                                          # correction term (stuck-Y model, dbm.exact_mh.correction_diagnostics)


def make_model(shape: str, scale: float, kind: str, cfg: Config):
    sizes = [int(s) for s in shape.split("-")]
    g = torch.Generator().manual_seed(seed_hash(NAME, "model", shape, scale, kind))
    m = dbm.DBM(sizes, init="gaussian", sigma=scale, generator=g)
    with torch.no_grad():
        for b in m.biases:
            b.copy_(0.5 * torch.randn(b.shape, generator=g))
    v = torch.randint(0, 2, (2, sizes[0]), generator=g).float()
    if kind == "trained":                  # a few exact-gradient steps on 16 random vectors
        data = torch.randint(0, 2, (16, sizes[0]), generator=g).float()
        for _ in range(cfg.train_steps):
            grad = exact.exact_gradient(m, data).float()
            with torch.no_grad():
                k = 0
                for p in m.parameters():
                    p -= 0.1 * grad[k:k + p.numel()].view_as(p)
                    k += p.numel()
        v = data[:2]
    return m, v


_TABLES: dict = {}


def _acceptance(key, m, v, marginalize):
    """exact_mh.acceptance of one phase of one model, kept while the cells of that model run."""
    if key not in _TABLES:
        if _TABLES and next(iter(_TABLES))[0] != key[0]:
            _TABLES.clear()                   # a new model: its tables replace the last one's
        _TABLES[key] = exact_mh.acceptance(m, v, marginalize)
    return _TABLES[key]


def diagnosable(name: str, opts: dict) -> bool:
    """The plain lag-1 MH estimator (Y0 = X0, no Gibbs sweeps, no averaging): its corrections
    follow the first step's acceptance a(X0) (dbm.exact_mh)."""
    return (name == "ucd-mh-lmi" and not opts.get("gibbs_sweeps", 0) and not opts.get("m", 0)
            and opts.get("y0", "same") == "same")


DIAG_KEYS = ("p_correction", "a_median", "p_cap_lower", "p_cap_given_correction_lower", "steps_past_cap_lower",
             "term_cut_share", "chains_for_correction", "chains_for_typical")
DIAG_VERSION = 2                          # 2: its own cells, the cut share of the term and the capped-bias model


def mh_diagnostics(shape, scale, kind, label, cfg: Config) -> dict:
    """Per phase, from ``diag_draws`` draws of X0 and the exact a(X0) (dbm.exact_mh): the exact
    chance of a correction, the median a, lower bounds on the share of corrections the cap cuts and
    on the unmet steps past it, the share of the correction term past the cap in the stuck-Y model
    (``term_cut_share``), and the chains needed to see a correction (from the typical half of pi0)
    with probability 0.95. ``cap_bias_model``: the relative bias |b| / |g*| that the cap leaves in
    that model, b = term_cut_share_neg (E_target - E_pi0)[phi]_neg - the same for the positive phase
    (each phase's correction restores E_target - E_pi0; the cap cuts its share of it)."""
    m, v2 = make_model(shape, float(scale), kind, cfg)
    name, opts = presets.resolve(label, **presets.caps(label, cfg.mh_max_steps, cfg.gibbs_max_steps))
    est = dbm.estimator(name, **opts)
    gen = torch.Generator().manual_seed(seed_hash(NAME, "diag", shape, scale, kind, label))
    md, out, delta = exact._double(m), {}, {}
    for phase in ("pos", "neg"):
        v = v2.repeat(cfg.diag_draws // 2, 1)
        xs = [x.double() for x in est.draw_pi0(m, v, phase, gen)]
        with torch.no_grad():
            e = energy_fn(md, est.marginalize)(xs)
        a = torch.empty_like(e)
        rows = [(None, torch.ones_like(e, dtype=torch.bool))] if phase == "neg" else \
            [(v2[i], torch.arange(e.numel()) % 2 == i) for i in range(2)]
        for vi, sel in rows:
            acc = _acceptance(((shape, scale, kind), phase, None if vi is None else tuple(vi.tolist()),
                               est.marginalize), m, vi, est.marginalize)
            a[sel] = acc(e[sel])
        d = exact_mh.correction_diagnostics(a, cfg.mh_max_steps, acc.states)
        out.update({f"{k}_{phase}": d[k] for k in DIAG_KEYS})
        target = exact.expected_statistics(md, None if phase == "neg" else v2)
        delta[phase] = d["term_cut_share"] * (target - per_state_statistics(md, xs, est.marginalize).mean(0))
    g_star = exact.exact_gradient(m, v2)
    out["cap_bias_model"] = float((delta["neg"] - delta["pos"]).norm() / g_star.norm())
    return out


def verdict(metrics: dict, chains: int, label: str = "", flag_z: float = FLAG_Z) -> str:
    """The cell's verdict, first words one of: "biased by its cap" (in the stuck-Y model the cap
    cuts at least CAP_SHARE of the correction term in some phase, flagged or not: the estimator as
    configured is truncated), "unbiased within noise" (max |z| <= FLAG_Z), "heavy-tailed" (flagged,
    the cap cuts almost nothing, and a correction from the typical half of pi0 needs more chains
    than were run: the test has no power at this chain count), "flagged, not explained" (flagged
    although neither holds), "capped" (flagged, an estimator without the diagnostics that hit a
    cap), "flagged, no diagnostics" (a UCD estimator, unbiased by construction, without the exact
    diagnostics) or "biased". Computed from a cell's metrics when the table is assembled
    (``compute``), so the rule can change without recomputing the cells."""
    flagged = metrics["max_abs_z"] > flag_z
    z = f"max |z| {metrics['max_abs_z']:.1f}"
    if "term_cut_share_neg" in metrics:
        cut = max(metrics["term_cut_share_pos"], metrics["term_cut_share_neg"])
        count = max(metrics["p_cap_given_correction_lower_pos"], metrics["p_cap_given_correction_lower_neg"])
        if cut >= CAP_SHARE:
            return (f"biased by its cap: {cut:.0%} of the correction term cut, relative bias about "
                    f"{metrics['cap_bias_model']:.2f} (stuck-Y model); at least {count:.0%} of corrections cut ({z})")
        if not flagged:
            return "unbiased within noise"
        need = max(metrics["chains_for_typical_pos"], metrics["chains_for_typical_neg"])
        if need > chains:
            return (f"heavy-tailed: a correction from the typical half of pi0 needs about {need:.1e} chains, "
                    f"{chains} used ({z})")
        return (f"flagged, not explained: no cap cuts corrections and the typical ones are seen ({need:.1e} "
                f"chains needed, {chains} used; {z})")
    if not flagged:
        return "unbiased within noise"
    caps = metrics["caps"] + metrics["sweeps_capped"] + metrics["residual_capped"]
    if caps:
        return f"capped: {int(caps)} chains hit a cap ({z})"
    unbiased = label in presets.PRESETS and presets.resolve(label)[0].startswith("ucd")
    return f"flagged, no diagnostics ({z})" if unbiased else f"biased ({z})"


BATCH = 250_000                           # chains per call of the estimator (memory); sums are float64


def run_cell(shape, scale, kind, label, cfg: Config, chains: int | None = None) -> list[dict]:
    """The sampled metrics of one cell with ``chains`` chains (default ``cfg.chains``), run in
    batches of at most BATCH chains (one generator, so the first batch is the unbatched run)."""
    chains = cfg.chains if chains is None else chains
    m, v2 = make_model(shape, float(scale), kind, cfg)
    name, opts = presets.resolve(label, **presets.caps(label, cfg.mh_max_steps, cfg.gibbs_max_steps))
    est = dbm.estimator(name, **opts)
    gen = torch.Generator().manual_seed(seed_hash(NAME, "chains", shape, scale, kind, label))
    state = est.init_state()
    g_star = exact.exact_gradient(m, v2)
    s1 = s2 = sq = 0.0
    infos, wall = [], 0.0
    batch = chains if name == "pcd" else BATCH           # PCD's persistent chains: one batch
    for start in range(0, chains, batch):
        v = v2.repeat(min(batch, chains - start) // 2, 1)
        if name == "pcd" and start == 0:
            for _ in range(cfg.pcd_burn_in):
                _, _, state = est.phases(m, v, state, gen)
        t0 = time.perf_counter()
        g, state, info = est.chain_estimates(m, v, state, gen)
        wall += time.perf_counter() - t0
        g = g.double()
        s1, s2, sq = s1 + g.sum(0), s2 + (g ** 2).sum(0), sq + ((g - g_star) ** 2).sum()
        infos.append(info)
    n = sum(int(i.pos.tau.numel()) for i in infos)
    mean = s1 / n
    se = ((s2 - n * mean ** 2).clamp(min=0) / (n - 1)).sqrt() / n ** 0.5
    z = ((mean - g_star) / se).abs()
    s = EstimatorInfo(*(PhaseInfo(*(None if f[0] is None else torch.cat(f) for f in zip(*ph)))
                        for ph in zip(*((i.pos, i.neg) for i in infos)))).summary()
    window = opts.get("m", 0)              # H_{k:m}: X runs to max(tau, m) steps
    per_step = 1 + opts.get("gibbs_sweeps", 0)       # the mixed kernel: g sweeps and the MH step
    x_steps = per_step * sum(float(torch.clamp(torch.cat([getattr(i, ph).tau for i in infos]), min=window)
                                   .double().mean()) for ph in ("pos", "neg"))
    sweeps = {"cd": opts.get("k", 1) + 10, "pcd": opts.get("k", 1) + 10}.get(
        name, s["pos_sweeps_mean"] + s["neg_sweeps_mean"] + x_steps)
    metrics = {"rel_bias": float((mean - g_star).norm() / g_star.norm()),
               "rel_se": float(se.norm() / g_star.norm()),
               "max_abs_z": float(z[torch.isfinite(z)].max()),
               "mse_per_chain": float(sq / n / g_star.norm() ** 2),
               "p_correction_neg": 1.0 - s["neg_p_tau1"], "p_correction_pos": 1.0 - s["pos_p_tau1"],
               "p_any_correction_minibatch_100": 1.0 - s["neg_p_tau1"] ** 100 * s["pos_p_tau1"] ** 100,
               "tau_mean_neg": s["neg_tau_mean"], "cost_sweeps": sweeps,
               "caps": s["pos_tau_capped"] + s["neg_tau_capped"],
               "sweeps_capped": s["pos_sweeps_capped"] + s["neg_sweeps_capped"],
               "residual_capped": s.get("pos_residual_capped", 0.0) + s.get("neg_residual_capped", 0.0),
               "wall_s_per_1k": 1000 * wall / n}
    base = dict(shape=shape, units=sum(m.layer_sizes), w_scale=float(scale), weights=kind,
                estimator=label, chains=n)
    return [{**base, "metric": k, "value": val} for k, val in metrics.items()]


def plot(df: pd.DataFrame, path, run: Run | None = None) -> None:
    """Four panels, one colour (and line style) per estimator, one legend: relative bias and
    per-chain MSE against cost (a point per model; circle: random weights, cross: trained), and
    against model size the lag-1 MH estimators' P(tau > 1) (median over the models of a size) and
    the z-test's max |z| (the worst model of each size)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    df = df[df.final] if "final" in df else df               # a rerun cell: its largest chain count
    w = df.pivot_table(index=["shape", "units", "w_scale", "weights", "estimator"], columns="metric",
                       values="value").reset_index()
    ests = list(dict.fromkeys(w.estimator))
    sty = {e: method_style(e) for e in ests}
    marks = {"random": "o", "trained": "X"}
    fig, ax = plt.subplots(1, 4, figsize=(22, 5.4))
    for e in ests:
        for kind, x in w[w.estimator == e].groupby("weights"):
            for a_, y in ((ax[0], "rel_bias"), (ax[3], "mse_per_chain")):
                a_.scatter(x.cost_sweeps, x[y], color=sty[e]["color"], marker=marks.get(kind, "o"), s=22, alpha=0.8,
                           linewidths=0)
        by_size = w[w.estimator == e].groupby("units")
        if e.startswith("ucd-mh-lmi"):
            p = by_size.p_correction_neg.median()
            ax[1].plot(p.index, p.values, color=sty[e]["color"], ls=sty[e]["ls"], marker="o", ms=4)
        z = by_size.max_abs_z.max()
        ax[2].plot(z.index, z.values, color=sty[e]["color"], ls=sty[e]["ls"], marker="o", ms=4)
    ax[0].set(xscale="log", yscale="log", title="relative bias of the mean gradient against cost",
              xlabel="cost: sweeps + coupled steps per chain (log)", ylabel="|mean g - g*| / |g*| (log)")
    ax[1].set(yscale="log", title="lag-1 MH estimators: how often a correction comes",
              xlabel="units in the DBM", ylabel="P(tau > 1), negative phase, median over models (log)")
    ax[2].axhline(4.0, color="k", ls="--", lw=0.8)
    ax[2].set(yscale="log", title="z-test of the mean against g* (dashed: 4)", xlabel="units in the DBM",
              ylabel="max |z| over parameters, worst model of the size (log)")
    ax[3].set(xscale="log", yscale="log", title="per-chain mean squared error against cost",
              xlabel="cost: sweeps + coupled steps per chain (log)", ylabel="mean |g_b - g*|^2 / |g*|^2 (log)")
    handles = [Line2D([], [], color=sty[e]["color"], ls=sty[e]["ls"], marker="o", ms=5, label=e) for e in ests]
    handles += [Line2D([], [], ls="", marker=m, color="0.4", label=f"{k} weights") for k, m in marks.items()]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    chains = int(df.chains.max())
    n_models = len(w[["shape", "w_scale", "weights"]].drop_duplicates())
    fig.suptitle(f"Bias study: gradient estimators against the exact gradient g* on {n_models} enumerable DBMs",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 0.9, 1))
    save_figure(fig, path, run, chains=f"{int(df.chains.min()):,}-{chains:,} per cell")


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Medians per estimator and weights, and how many cells got each verdict (its first words);
    a rerun cell counts once, with its largest chain count."""
    df = df[df.final] if "final" in df else df
    w = df.pivot_table(index=["estimator", "weights"], columns="metric", values="value", aggfunc="median")
    out = w[["rel_bias", "rel_se", "max_abs_z", "mse_per_chain", "p_correction_neg", "cost_sweeps"]].reset_index()
    if "verdict" in df:
        cells = df.drop_duplicates(["shape", "w_scale", "weights", "estimator"])
        kinds = cells.assign(kind=cells.verdict.str.split(":").str[0])
        counts = kinds.groupby(["estimator", "weights"]).kind.agg(
            lambda k: ", ".join(f"{n} {v}" for v, n in k.value_counts().sort_index().items()))
        out = out.merge(counts.rename("verdicts").reset_index(), on=["estimator", "weights"], how="left")
    return out


PROFILES = {"full": {}, "quick": QUICK}


def _planned(cell_verdict: str, metrics: dict, label: str, cfg: Config) -> int:
    """Chains for a rerun of a flagged cell of ``rerun_estimators`` whose verdict the diagnostics
    leave open ("heavy-tailed", "flagged, not explained"): rerun_factor times the chains needed
    to see one correction from the typical half of pi0, at least rerun_min_chains; 0: no rerun."""
    if label not in cfg.rerun_estimators or not cell_verdict.startswith(("heavy-tailed", "flagged, not explained")):
        return 0
    need = max(metrics["chains_for_typical_pos"], metrics["chains_for_typical_neg"])
    return 2 * math.ceil(max(cfg.rerun_min_chains, cfg.rerun_factor * need) / 2)


def compute(run: Run) -> Computed:
    cfg, rows = run.cfg, []
    cells = [(s, w, k, e) for s in cfg.shapes for w in cfg.w_scales for k in cfg.weights for e in cfg.estimators]
    shared = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("shapes", "w_scales", "weights",
              "estimators", "device", "flag_z") and not k.startswith("rerun_")}
    for shape, scale, kind, label in progress(cells, "bias study"):
        inputs = dict(shared, shape=shape, w_scale=scale, weights=kind, estimator=label)
        cell = run.cache.cell(NAME, inputs, lambda: pd.DataFrame(run_cell(shape, scale, kind, label, cfg))).rows
        cell = cell[~cell.metric.str.endswith(("_pos", "_neg")) | cell.metric.isin(SAMPLED)]   # v4 cells held
        if cfg.diag_draws and diagnosable(*presets.resolve(label)):                          # the diagnostics
            diag = run.cache.cell(f"{NAME}-diag", dict(inputs, diagnostics=DIAG_VERSION, chains=None), lambda: pd.DataFrame(
                [{"metric": k, "value": v} for k, v in mh_diagnostics(shape, scale, kind, label, cfg).items()])).rows
            cell = pd.concat([cell, cell.iloc[:1][list(CELL_KEYS + ("units", "chains"))].merge(diag, how="cross")])
        rows.append(cell)
    df = with_verdicts(pd.concat(rows, ignore_index=True), cfg.flag_z)
    reruns, over = [], {}
    for key, g in df.groupby(list(CELL_KEYS), sort=False):
        metrics = dict(zip(g.metric, g.value))
        n = _planned(g.verdict.iloc[0], metrics, key[3], cfg)
        if n > cfg.rerun_max_chains:
            over[key] = n
        elif n:
            inputs = dict(shared, shape=key[0], w_scale=_scale_label(key[1], cfg), weights=key[2], estimator=key[3],
                          chains=n)
            cell = run.cache.cell(NAME, inputs, lambda: pd.DataFrame(
                run_cell(key[0], _scale_label(key[1], cfg), key[2], key[3], cfg, chains=n))).rows
            diag = g[g.metric.str.endswith(("_pos", "_neg")) & ~g.metric.isin(SAMPLED) | (g.metric == "cap_bias_model")]
            reruns.append(pd.concat([cell, diag.assign(chains=n)]))
    df = with_verdicts(pd.concat([df] + reruns, ignore_index=True), cfg.flag_z)
    df["final"] = df.chains == df.groupby(list(CELL_KEYS)).chains.transform("max")
    for key, n in over.items():                   # say what a rerun would need
        sel = df[list(CELL_KEYS)].apply(tuple, axis=1) == key
        df.loc[sel, "verdict"] += f"; a rerun needs {n:.1e} chains, above the study's {cfg.rerun_max_chains:.0e}"
    return Computed(df, dict(summary=summarise(df).to_dict("records"), flag_z=cfg.flag_z, cap_share=CAP_SHARE,
                             diag_version=DIAG_VERSION, reruns=len(reruns)))


def _scale_label(scale: float, cfg: Config) -> str:
    """The configured label ("1.0") of a weight scale read back as a float."""
    return next(w for w in cfg.w_scales if float(w) == scale)


CELL_KEYS = ("shape", "w_scale", "weights", "estimator")
SAMPLED = ("p_correction_neg", "p_correction_pos")           # sampled metrics whose names end in a phase


def with_verdicts(df: pd.DataFrame, flag_z: float = FLAG_Z) -> pd.DataFrame:
    """The table with each cell's ``verdict`` (from its metrics, per chain count) as a column."""
    keys = list(CELL_KEYS) + ["chains"]
    df = df.drop(columns="verdict", errors="ignore")
    v = {k: verdict(dict(zip(g.metric, g.value)), k[-1], k[3], flag_z) for k, g in df.groupby(keys)}
    return df.assign(verdict=[v[k] for k in zip(*(df[c] for c in keys))])


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summarise, default_profile="full",
                       version="4")            # 2: P(any correction in a minibatch of 100), H_{k:m} cost;
                                               # 3: pi0's block order drawn per chain (the faithful-order issue);
                                               # 4: every cap, the exact a(X0) diagnostics, a verdict per cell


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
