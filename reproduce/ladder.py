"""The scale ladder (issue 31): how every slide-25/26 criterion moves as the DBM's width and batch
approach the released setting (784-784-784, batch 1000), for the paper's estimator (UCD-MH-LMI
with the released pi0) on MNIST at seed 0; at rung 1 also at seeds 1 and 2, whose spread is the
yardstick of the trend rule (``trend``).

| rung | zoo profile | shape | batch | updates |
|---|---|---|---|---|
| 1 | ladder-1 | 784-200-200 | 100 | 12,000 (the converged profile: its cells are shared) |
| 2 | ladder-2 | 784-500-500 | 100 | 12,000 |
| 3 | ladder-3 | 784-784-784 | 100 | 12,000 |
| 4 | ladder-4 | 784-784-784 | 1000 | 5,000 |

Pretrained PCD (the reference that works) is trained at rungs 1 and 3 (``reproduce.zoo.LADDERS``
and ``MATRICES``). Every rung is judged by fig25's converged evaluator: the forward and reverse
AIS bracket of log Z, samples by kind (local modes, one sweep after them, block-Gibbs chains from
noise and from the mode), classifier-FD at 2,000 samples, and the held-out traces' flatness test.
The cells are fig25's, so ``python -m reproduce.fig25_end_to_end --profile ladder-3`` reads the
same ones.

    make zoo PROFILE=ladder              # every rung, 2 processes, resumable (checkpoints every 500 updates)
    make reproduce-fig25 PROFILE=ladder  # this script: evaluates every rung, then the table and the figure

Outputs in results/ladder/: ladder.csv (fig25's final rows of every rung, with ``rung``),
ladder_trace.csv (the training traces), ladder.json (protocol: each rung's resolved config and
evaluation wall time; summary), ladder.png, and <rung>/fig25_samples_mnist.png. A flag of fig25's
config (``--updates 100``) overrides every rung; ``--quick`` runs the two-rung smoke ladder.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.ladder")

import numpy as np
import pandas as pd

from reproduce import fig25_end_to_end as fig25
from reproduce import zoo
from reproduce.common import Computed, Run, method_palette, method_style, save_figure, script_main

NAME = "ladder"

# Every field of fig25's config, unset (None) unless given on the command line: a given flag
# overrides every rung; the rest is each rung's own profile. Inheriting fig25.Config keeps the
# flags' help texts.
Config = dataclasses.make_dataclass(
    "Config", [("rungs", "tuple", dataclasses.field(default=()))]
    + [(f.name, f.type, dataclasses.field(default=None)) for f in dataclasses.fields(fig25.Config)
       if f.name != "device"] + [("device", "str", dataclasses.field(default="cpu"))],
    bases=(fig25.Config,), frozen=True)
Config.__module__ = __name__
Config.__doc__ = ("The rungs (zoo profiles, in order) and the fig25 settings given on the command line "
                  "(None: each rung's own).")
PROFILES = {"ladder": dict(rungs=zoo.LADDERS["ladder"]), "quick": dict(rungs=zoo.LADDERS["ladder-quick"])}


def rung_config(cfg, rung: str) -> fig25.Config:
    """A rung's fig25 config: its profile, then the flags given (``cfg``'s fields that are set)."""
    given = {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None and k != "rungs"}
    return fig25.Config(**{**fig25.PROFILES[rung], **given})


# the trend's words wherever it is written (the ladder table, the README's verdict rows)
TREND_WORDS = {"toward": "toward the paper's claim", "away": "away from the paper's claim",
               "flat": "no trend beyond the noise"}


def shape_name(n_h) -> str:
    """'784-200-200' for hidden widths (200, 200)."""
    return "-".join(map(str, (784, *n_h)))


def shape_label(n_h: tuple, batch: int, updates: int) -> str:
    """'784-200-200, batch 100, 12,000 updates'."""
    return f"{shape_name(n_h)}, batch {batch}, {updates:,} updates"


def compute(run: Run) -> Computed:
    frames, rungs = [], {}
    for i, rung in enumerate(run.cfg.rungs, 1):
        cfg = rung_config(run.cfg, rung)
        out = run.out / rung
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        part = fig25.compute(Run(cfg, run.cache, rung, out, run.args))
        rungs[rung] = dict(rung=i, config=dataclasses.asdict(cfg), wall_time_s=time.perf_counter() - t0,
                           label=shape_label(cfg.hidden, cfg.batch_size, cfg.updates))
        frames.append(part.df.assign(rung=i))
    df = pd.concat(frames, ignore_index=True)
    return Computed(df, dict(rungs=rungs, summary=summarise(df).to_dict("records"),
                             trend=trend(df), fails_definition="test_ll_bound < bernoulli_baseline_ll"))


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """One row per rung and method: shape, batch, updates, training time, fig25's summary
    (likelihood, interval, sample statistics and classifier-FD by kind, flatness) and the margin
    of the interval's low end over independent pixels."""
    rows = []
    for r, d in df[df.kind != "trace"].groupby("rung"):
        s = fig25.summarise(d)
        first = d.iloc[0]
        s.insert(0, "rung", int(r))
        s.insert(1, "shape", shape_name(int(first[c]) for c in d if c.startswith("n_h")))
        s.insert(2, "batch_size", int(first.batch_size))
        s.insert(3, "updates", int(first.updates))
        s["margin_over_pixels"] = s.test_ll_low - s.bernoulli_baseline_ll
        rows.append(s)
    return pd.concat(rows, ignore_index=True)


def trend(df: pd.DataFrame, method: str = "ucd-mh-lmi") -> dict:
    """Where the slide-25/26 criteria move from the first rung to the last, by stated rules:

    - likelihood (slide 25): the margin of the LL interval's low end over independent pixels
      (mean over a rung's seeds); "toward" the paper's claim when it grows by more than the two
      rungs' bracket widths plus twice the seed spread of the difference (the standard deviation
      over the first rung's seeds, times sqrt(1/n_first + 1/n_last); 0 with one seed there),
      "away" when it shrinks by more, else "flat";
    - samples (slide 26): the best classifier-FD over the kinds (seed mean); "toward" when the last
      rung's is below half the first's, "away" when above twice, else "flat" (a factor of 2)."""
    fin = df[(df.kind == "final") & (df.method == method)] if "kind" in df else df.iloc[:0]
    if fin.empty or fin.rung.nunique() < 2:
        return {}
    per = fin.pivot_table(index=["rung", "seed"], columns="metric", values="value").reset_index()
    per["margin"] = per.test_ll_low - per.bernoulli_baseline_ll
    per["width"] = per.test_ll_high - per.test_ll_low
    by = per.groupby("rung").agg(margin=("margin", "mean"), width=("width", "mean"), seeds=("seed", "nunique"),
                                 sd=("margin", "std"))
    a, b = by.iloc[0], by.iloc[-1]
    sd = float(a.sd) if a.seeds > 1 else 0.0
    noise = 2 * sd * float(np.sqrt(1 / a.seeds + 1 / b.seeds))
    dm = float(b.margin - a.margin)
    tol = float(a.width + b.width) + noise
    out = dict(method=method, first_rung=int(by.index[0]), last_rung=int(by.index[-1]),
               margin=[float(x) for x in by.margin], seeds=[int(x) for x in by.seeds], ll_change=dm,
               bracket_widths=[float(a.width), float(b.width)], seed_sd_first=sd, tolerance=tol,
               ll_trend="toward" if dm > tol else "away" if dm < -tol else "flat")
    fd = df[(df.kind == "fd") & (df.method == method)] if "kind" in df else df.iloc[:0]
    if len(fd):
        best = fd.groupby(["rung", "samples"]).value.mean().reset_index().sort_values("value").groupby("rung").first()
        v = best.value.to_numpy()
        out.update(best_fd=[float(x) for x in v], best_fd_kind=best.samples.tolist(),
                   fd_trend="toward" if v[-1] < v[0] / 2 else "away" if v[-1] > 2 * v[0] else "flat")
    return out


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    """Each criterion against the rung: the likelihood with its bracket (dashed: independent
    pixels), the classifier-FD by sample kind (dashed: training images), the samples' diversity
    and distance to the test set by kind, the held-out LL traces (the flatness test's last 20 %
    shaded) and the training time. UCD-MH-LMI's rungs are joined by lines; pretrained PCD is
    drawn where it was trained."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fin = df[df.kind != "trace"]
    s = summarise(df)
    methods = list(dict.fromkeys(s.method))
    pal, sty = method_palette(methods), {m: method_style(m) for m in methods}
    ticks = s.drop_duplicates("rung").sort_values("rung")
    labels = [f"{int(r.rung)}\n{r.shape}\nbatch {int(r.batch_size)}\n{int(r.updates):,} upd." for r in ticks.itertuples()]
    fig, axes = plt.subplots(2, 3, figsize=(18, 10.5))
    fd_kinds = fig25.kind_order(fin[(fin.kind == "fd") & (fin.method != "data")].samples) if "samples" in fin else []
    kind_marks = dict(zip(fd_kinds, "os^v<>Dp"))

    def xaxis(ax):
        ax.set_xticks(ticks.rung, labels, fontsize=8)
        ax.set_xlabel("rung")

    ax = axes[0, 0]
    for m in methods:
        r = s[s.method == m].sort_values("rung")
        ax.plot(r.rung, r.test_ll_bound, marker=sty[m]["marker"], ls=sty[m]["ls"] if len(r) > 1 else "none",
                color=pal[m], label=m)
        ax.vlines(r.rung, r.test_ll_low, r.test_ll_high, color=pal[m], lw=3, alpha=0.6)
    base = fin[fin.metric == "bernoulli_baseline_ll"].value
    if len(base):
        ax.axhline(float(base.iloc[0]), color="k", ls="--", lw=1, label="independent pixels")
    ax.set(title="test log-likelihood (dot: forward AIS bound; bar: forward/reverse AIS bracket)",
           ylabel="nats per image")
    ax.legend(fontsize=8)
    xaxis(ax)
    ax = axes[0, 1]
    for m in methods:
        r = s[s.method == m].sort_values("rung")
        for k, mk in kind_marks.items():
            col = f"{k}_classifier_fd"
            if col in r and r[col].notna().any():
                ax.plot(r.rung, r[col], marker=mk, ls=sty[m]["ls"] if len(r) > 1 else "none", color=pal[m],
                        alpha=0.9 if m == "ucd-mh-lmi" else 0.6, label=f"{m}: {k}")
    floor = fin[(fin.kind == "fd") & (fin.method == "data")].groupby("rung").value.first()
    if len(floor):
        ax.axhline(float(floor.mean()), color="k", ls="--", lw=1, label="training images")
    n = int(fin[fin.kind == "fd"].n.max()) if (fin.kind == "fd").any() else 0
    ax.set_yscale("log")
    ax.set(title=f"classifier-Frechet distance by sample kind, {n:,} samples (not FID)",
           ylabel="Frechet distance in the suite's CNN features (log)")
    ax.legend(fontsize=7, ncol=2)
    xaxis(ax)
    smp = fin[fin.kind == "samples"]
    kinds = fig25.kind_order(smp.samples)
    for ax, metric, label in ((axes[0, 2], "diversity", "diversity (mean pairwise Hamming / pixel)"),
                              (axes[1, 0], "nn_distance", "distance to the nearest test image (Hamming / pixel)")):
        for m in methods:
            for k, mk in zip(kinds, "osv^<>Dp"):
                r = smp[(smp.method == m) & (smp.samples == k) & (smp.metric == metric)].groupby(
                    "rung").value.mean().reset_index()                 # seed means
                if len(r):
                    ax.plot(r.rung, r.value, marker=mk, ls=sty[m]["ls"] if len(r) > 1 else "none", color=pal[m],
                            alpha=0.9 if m == "ucd-mh-lmi" else 0.6, label=f"{m}: {k}")
        ax.set(title=f"samples by kind: {label.split(' (')[0]}", ylabel=label)
        ax.legend(fontsize=6, ncol=2)
        xaxis(ax)
    ax = axes[1, 1]
    tr = df[(df.kind == "trace") & (df.metric == "test_ll_bound")]
    shades = dict(zip(sorted(ticks.rung), np.linspace(0.35, 1.0, len(ticks))))
    for (m, rung), t in tr.groupby(["method", "rung"]):
        ax.plot(t.step / t.step.max(), t.value, color=pal[m], ls=sty[m]["ls"], alpha=shades[rung], lw=1.3,
                label=f"{m}, rung {rung}")
    ax.axvspan(0.8, 1.0, color="0.9", zorder=0)
    ax.set(title="held-out LL bound in training (grey: the flatness test's last 20 %)",
           xlabel="fraction of the rung's updates", ylabel="nats per image (small AIS)")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        r = s[s.method == m].sort_values("rung")
        ax.bar(r.rung + (i - (len(methods) - 1) / 2) * width, r.train_wall_s / 60, width, color=pal[m],
               hatch=sty[m]["hatch"], label=m)
    ax.set(title="training time on this machine (one core per process)", ylabel="minutes")
    ax.legend(fontsize=8)
    xaxis(ax)
    import textwrap
    for a in fig.axes:
        a.set_title(textwrap.fill(a.get_title(), 60), fontsize=10)
    seeds = fin.groupby("rung").seed.nunique()
    many = {int(r): int(n) for r, n in seeds.items() if n > 1}
    note = "; ".join(f"rung {r}: mean of {n} seeds" for r, n in many.items())
    fig.suptitle("The scale ladder: slide-25/26 criteria as width and batch approach the released 784-784-784, "
                 f"batch 1000 (MNIST, seed 0{'; ' + note if note else ''})", fontsize=13)
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    save_figure(fig, path, run, seeds="1" + (f" ({note})" if note else ""))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=lambda df: summarise(df)[["rung", "shape", "batch_size", "updates", "method",
                                                                    "test_ll_bound", "test_ll_low", "test_ll_high",
                                                                    "margin_over_pixels"]],
                       default_profile="ladder", default_dir="results/ladder", version=fig25.VERSION)


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))
