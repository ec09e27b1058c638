"""Slide 27: inpainting with a DBM on MNIST and Fashion-MNIST test images.

Fix the observed pixels of v, search for (v, h) of low energy with the clamped local search (the
paper) and fill in the missing pixels; or draw completions by clamped Gibbs sweeps from that
local mode (several per image; the best by missing-pixel error, an oracle choice, and the mean).
The DBMs are fig25's models of the same profile (trained on first use, reused after).

Metrics per data set, model (fig25 method), mask and completion: the mean absolute error on the
missing pixels and the accuracy of the suite's classifier (``dbm.metrics.classifier``) on the
completed images against the true label, each with its standard error over test images. Two
references: the classifier on the original images ("original") and on the masked images with
missing pixels set to 0 ("masked").

    python -m reproduce.fig27_inpainting [--quick | --profile budget | --profile paper] [--device cuda]

Outputs: results/fig27_inpainting.{csv,json,png} and results/fig27_grid_<dataset>_<method>.png.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.fig27_inpainting")

import pandas as pd
import torch

from dbm.data import load_labels
from dbm.inpaint import inpaint_gibbs, inpaint_local_search, make_mask, missing_error
from dbm.metrics.classifier import ClassifierConfig, accuracy, load_or_train, to_images
from dbm.result_cache import CellCache
from dbm.provenance import seed_hash
from reproduce import zoo
from reproduce.common import Computed, Run, method_style, progress, save_figure, script_main

NAME = "fig27_inpainting"


@dataclasses.dataclass(frozen=True)
class Config(zoo.ZooConfig):
    """Masks, completions and the classifier of slide 27, over the zoo's training settings
    (inherited, so that --updates or --hidden selects the same models as in fig25 and fig26)."""
    datasets: tuple = ("mnist", "fashion-mnist")
    methods: tuple = zoo.METHODS                      # the zoo's (fig25's) models
    masks: tuple = ("left", "right", "top", "bottom", "center", "random-0.25", "random-0.5", "random-0.75")
    test_n: int = 1000
    gibbs_samples: int = 5
    gibbs_sweeps: int = 50
    max_sweeps: int = 1000
    order: str = "random"                             # the local search's block order (released: random per chain)
    classifier_epochs: int = 2
    classifier_train_limit: int = 0
    data_dir: str | None = None
    device: str = "cpu"


_PROFILES = {
    "quick": dict(methods=("ucd-mh-lmi", "cd"), masks=("left", "top", "center", "random-0.5"), test_n=100,
                  gibbs_samples=4, gibbs_sweeps=10, classifier_epochs=1, classifier_train_limit=5000),
    "budget": dict(methods=zoo.METHODS + ("ucd-mh-lmi-even-first",)),   # fig25's budget models, the ablation too
    "paper": dict(test_n=10_000, gibbs_samples=10),
}
PROFILES = {name: {**zoo.PROFILES[name], **p} for name, p in _PROFILES.items()}   # the zoo's settings, then ours


def observed_mask(kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 784) bool, True where observed; "random-<rate>" hides each pixel with that probability."""
    if kind.startswith("random-"):
        return make_mask("random", rate=float(kind.split("-", 1)[1]), generator=generator, batch=n)
    return make_mask(kind, batch=n)


def _mean_se(x: torch.Tensor) -> tuple[float, float]:
    return float(x.mean()), float(x.std() / len(x) ** 0.5) if len(x) > 1 else float("nan")


def evaluate(model, clf, v, labels, mask: str, cfg: Config, seed: int, ds: str) -> list[dict]:
    """Rows (completion, metric, value, se) for one model and mask over the test images v (B, 784)."""
    g = torch.Generator(device=cfg.device).manual_seed(seed_hash(seed, "chains"))
    v = v.to(cfg.device)
    mask_gen = torch.Generator().manual_seed(seed_hash(NAME, ds, mask))            # the same for every model
    obs = observed_mask(mask, len(v), mask_gen).to(cfg.device)
    acc = lambda x: accuracy(clf, to_images(x.cpu(), ds, "binary"), labels)   # noqa: E731
    rows = []

    def add(completion, metric, x):
        m, se = _mean_se(x.float().cpu())
        rows.append({"completion": completion, "metric": metric, "value": m, "se": se})

    add("masked", "accuracy", acc(v * obs))
    ls, info = inpaint_local_search(model, v, obs, g, max_sweeps=cfg.max_sweeps, order=cfg.order)
    add("local-search", "missing_error", missing_error(ls, v, obs))
    add("local-search", "accuracy", acc(ls))
    add("local-search", "sweeps", info.sweeps)
    add("local-search", "capped", info.capped)                 # the search's own flag (issue 33)
    gs = inpaint_gibbs(model, v, obs, g, n_samples=cfg.gibbs_samples, sweeps=cfg.gibbs_sweeps,
                       order=cfg.order)                                                   # (S, B, 784)
    err = torch.stack([missing_error(s, v, obs) for s in gs]).cpu()                          # (S, B)
    hit = torch.stack([acc(s) for s in gs]).cpu()              # (S, B); the classifier's device may differ
    best = err.argmin(0)
    add("gibbs-mean", "missing_error", err.mean(0))
    add("gibbs-mean", "accuracy", hit.mean(0))
    add("gibbs-best", "missing_error", err.gather(0, best[None])[0])
    add("gibbs-best", "accuracy", hit.gather(0, best[None])[0])
    return rows


CELL_FIELDS = ("test_n", "gibbs_samples", "gibbs_sweeps", "max_sweeps", "order")


def run_cell(cache: CellCache, ds, method, mask, cfg: Config, model, model_id: str, clf, clf_id: str, v, labels
             ) -> pd.DataFrame:
    """One (data set, model, mask) evaluation; its key includes the model's and classifier's hashes."""
    inputs = dict({k: getattr(cfg, k) for k in CELL_FIELDS}, dataset=ds, method=method, mask=mask,
                  model=model_id, classifier=clf_id)
    df = cache.cell(NAME, inputs, lambda: pd.DataFrame(
        evaluate(model, clf, v, labels, mask, cfg, seed_hash(NAME, ds, method, mask), ds))).rows
    df.insert(0, "mask", mask)
    df.insert(0, "method", method)
    df.insert(0, "dataset", ds)
    return df


def grid(model, v, cfg: Config, path: Path, seed: int, title: str = "", run: Run | None = None) -> None:
    """Rows: masks; columns: original, masked (missing pixels grey), local search, one Gibbs sample."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid
    v = v[:8].to(cfg.device)
    cols = ("original", "masked", "local search", "Gibbs sample")
    fig, axes = plt.subplots(len(cfg.masks), 4, figsize=(16, 0.75 * len(cfg.masks) + 0.5), squeeze=False)
    for i, mask in enumerate(cfg.masks):
        g = torch.Generator(device=cfg.device).manual_seed(seed_hash(seed, mask))
        obs = observed_mask(mask, len(v), torch.Generator().manual_seed(seed_hash(seed, mask))).to(cfg.device)
        ls, _ = inpaint_local_search(model, v, obs, g, max_sweeps=cfg.max_sweeps, order=cfg.order)
        gs = inpaint_gibbs(model, v, obs, g, n_samples=1, sweeps=cfg.gibbs_sweeps, order=cfg.order)[0]
        for j, x in enumerate((v, torch.where(obs, v, 0.5), ls, gs)):
            ax = axes[i, j]
            ax.imshow(make_grid(x.reshape(-1, 1, 28, 28).cpu(), nrow=8, padding=1, pad_value=1)[0],
                      cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(mask, rotation=0, ha="right", va="center", fontsize=9)
            if i == 0:
                ax.set_title(cols[j])
    fig.suptitle(title + " (rows: masks; grey: hidden pixels)", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save_figure(fig, path, run, dpi=100)


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    """Per data set: the missing-pixel error and the classifier's accuracy of each method's clamped
    local-search completion, per mask (bars), with the accuracy on the masked inputs (grey ticks)
    and on the original images (dashed); one legend of methods."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    datasets = list(dict.fromkeys(df.dataset))
    methods = [m for m in dict.fromkeys(df[df.completion == "local-search"].method)]
    sty = {m: method_style(m) for m in methods}
    fig, axes = plt.subplots(2, len(datasets), figsize=(7.5 * len(datasets), 8.6), squeeze=False)
    for j, ds in enumerate(datasets):
        d = df[(df.dataset == ds) & (df.completion == "local-search")]
        masks = list(dict.fromkeys(d["mask"]))
        width = 0.8 / max(1, len(methods))
        for i, metric in enumerate(("missing_error", "accuracy")):
            ax = axes[i, j]
            for k, m in enumerate(methods):
                r = d[(d.metric == metric) & (d.method == m)].set_index("mask").value.reindex(masks)
                x = [q + (k - (len(methods) - 1) / 2) * width for q in range(len(masks))]
                ax.bar(x, r.values, width, color=sty[m]["color"], hatch=sty[m]["hatch"], edgecolor="white", linewidth=0)
            ylabel = {"missing_error": "hidden pixels completed wrongly (fraction)",
                      "accuracy": "classifier accuracy on the completions"}[metric]
            ax.set_xticks(range(len(masks)), masks, rotation=30)
            ax.set(title=f"{ds}: {'error on the hidden pixels' if i == 0 else 'is the completion recognisable?'}",
                   ylabel=ylabel, xlabel="mask")
        acc = df[(df.dataset == ds) & (df.metric == "accuracy")]
        masked = acc[acc.completion == "masked"].groupby("mask").value.mean().reindex(masks)
        axes[1, j].hlines(masked.values, [q - 0.42 for q in range(len(masks))], [q + 0.42 for q in range(len(masks))],
                          color="0.45", lw=2.5)
        ref = acc[acc.completion == "original"].value
        if len(ref):
            axes[1, j].axhline(ref.iloc[0], color="k", ls="--", lw=1)
        axes[1, j].set_ylim(0, 1.05)
    handles = [Patch(facecolor=sty[m]["color"], hatch=sty[m]["hatch"], edgecolor="white", linewidth=0, label=m)
               for m in methods]
    handles += [Line2D([], [], color="0.45", lw=2.5, label="masked input (accuracy)"),
                Line2D([], [], color="k", ls="--", lw=1, label="original images (accuracy)")]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 8), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()))
    profile = run.profile if run is not None else "?"
    fig.suptitle(f"Slide 27: inpainting by clamped local search with fig25's DBMs ({profile} profile)", fontsize=12)
    fig.tight_layout(rect=(0, 0.02, 1, 1 - 0.8 / fig.get_figheight()))
    save_figure(fig, path, run, test_images=int(df.n_test.max()) if "n_test" in df else "?")


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df.metric.isin(["missing_error", "accuracy"]) & (df.completion != "original")]
    t = d.pivot_table(index=["dataset", "method", "completion"], columns="metric", values="value", aggfunc="mean")
    return t.reset_index()


def compute(run: Run) -> Computed:
    cfg, cache, frames, classifiers = run.cfg, run.cache, [], {}
    zcfg = zoo.zoo_config(cfg)
    for ds in cfg.datasets:
        ccfg = ClassifierConfig(dataset=ds, epochs=cfg.classifier_epochs, train_limit=cfg.classifier_train_limit)
        clf, record = load_or_train(ccfg, cache.root / "classifiers", cfg.data_dir, cfg.device)
        classifiers[ds] = record
        train, test = zoo.binary_data(ds, cfg.data_dir, zcfg.train_limit, max(cfg.test_n, zoo.HELD_OUT))
        v = test[:cfg.test_n]
        labels = load_labels(ds, "test", cfg.data_dir)[:cfg.test_n]
        m, se = _mean_se(accuracy(clf, to_images(v, ds, "binary"), labels))
        frames.append(pd.DataFrame([{"dataset": ds, "method": "none", "mask": "none", "completion": "original",
                                     "metric": "accuracy", "value": m, "se": se}]))
        for method in progress(cfg.methods, f"fig27 {ds}"):
            trainer, _ = zoo.train(cache, zcfg, ds, method, 0, train, test, cfg.device)
            model, model_id = trainer.model.eval(), zoo.model_hash(trainer)
            for mask in cfg.masks:
                frames.append(run_cell(cache, ds, method, mask, cfg, model, model_id, clf, ccfg.key(), v, labels))
            grid(model, v, cfg, run.out / f"fig27_grid_{ds}_{method}.png", seed_hash(NAME, "grid", ds),
                 title=f"{ds}: inpainting with the DBM trained by {method}", run=run)
    df = pd.concat(frames, ignore_index=True)
    df["n_test"] = cfg.test_n
    df["fig25_profile"] = run.profile
    return Computed(df, dict(classifiers=classifiers, dbm_models=dataclasses.asdict(zcfg),
                             sample_kind="clamped local mode / clamped Gibbs",
                             gibbs_best="oracle: the sample with the lowest missing-pixel error"))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summarise)


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
