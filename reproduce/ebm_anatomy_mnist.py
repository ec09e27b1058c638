"""EBM anatomy on MNIST (images in [-1, 1]): short-run vs persistent ML learning and its diagnostics
(Nijkamp et al., AAAI 2020).

The models, each trained by ``dbm.ebm.train`` with d_{s_t} and r_t recorded every update (r_t in the
paper's units, (eps^2 / 2) ||grad_x U||, as the authors' code computes it; ``grad_norm`` =
||grad_x U||, the unit reported before, beside it):

- ``short-run``: noise-initialised short-run learning (the paper's non-convergent outcome):
  vanilla ConvNet, Adam, eps = 0.01, K = ``steps`` from uniform noise.
- ``persistent``: persistent chains with SGD and eps = 7.5e-3, K = ``persistent_steps``, with the
  authors' non-local net (``dbm.ebm.nets``: two sub-sampled attention blocks; the paper's
  convergent MNIST config, K = 500 there; the CPU budget runs it on 16 x 16 images).
- ``persistent-vanilla``: the same with the vanilla ConvNet, the net this budget used before the
  released non-local net was implemented (kept so that the two can be compared).

Evaluated on the same number of chains (``n_eval``) from uniform noise: short-run samples (K
steps, as in training) and long-run samples (``long_run_steps`` steps); with
``long_run_from_data`` also long-run chains started from training images plus the data noise
(the released evaluation's start, "long-run from data"); per sample set the
classifier-Frechet distance (the suite's 8-bit MNIST classifier; reference: the test images after
the first ``n_eval``, floor: those ``n_eval`` held-out images; both go through the same resize as
the training data, so 16 x 16 models are not charged for the lost resolution), the fraction of saturated pixels (|x| > 1) and the
mean energy; the energy along the long-run chains is recorded as a trace. If fig25's DBM runs
exist in the work folder, their d_{s_t} traces (positive minus negative phase energy) are copied
into the CSV for comparison.

    python -m reproduce.ebm_anatomy_mnist [--quick | --profile budget | --profile paper] [--device cuda]

Outputs: results/ebm_anatomy_mnist.{csv,json,png} and results/ebm_anatomy_mnist_samples.png.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import dbm
if not hasattr(dbm, "IS_THIS_PROJECT"):                       # the standard library's dbm
    sys.exit("run this script from the repository root as: python -m reproduce.ebm_anatomy_mnist")

import pandas as pd
import torch

from dbm.ebm.chains import init_chains
from dbm.result_cache import CellCache, file_hash
from dbm.ebm.train import EBMConfig, EBMTrainer, long_run, mnist32, train_or_resume
from dbm.encoding import from_signed_padded
from dbm.metrics.classifier import ClassifierConfig, load_or_train
from dbm.metrics.extractors import classifier_extractor, feature_stats
from dbm.metrics.frechet import frechet_distance
from dbm.provenance import seed_hash
from reproduce import zoo
from reproduce.common import Computed, Run, method_style, progress, sample_grid, save_figure, script_main, summary_pivot

NAME = "ebm_anatomy_mnist"
OUTCOMES = {
    "short-run": dict(net="vanilla", optimizer="adam", eps=0.01, init="uniform"),
    "persistent": dict(net="nonlocal", optimizer="sgd", eps=7.5e-3, init="persistent"),
    "persistent-vanilla": dict(net="vanilla", optimizer="sgd", eps=7.5e-3, init="persistent"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    outcomes: tuple = ("short-run", "persistent", "persistent-vanilla")
    updates: int = 1200                # the paper: 100k
    steps: int = 150                   # K of the short-run model; the authors' 150 (K = 50 diverged: docs)
    persistent_steps: int = 150        # K of the persistent model; the paper: 500
    image_size: int = 16               # the paper: 32 (MNIST padded); 16: 2x2 average-pooled, 4x cheaper
    n_f: int = 16                      # the paper: 32
    persistent_net: str = "nonlocal"   # the authors' net for ``persistent`` (``persistent-vanilla``: vanilla)
    lr_adam: float = 5e-5              # the authors' 1e-4 diverged after ~870 updates here (docs)
    lr_sgd: float = 1e-2
    bank_size: int = 1000              # the paper: one chain per training image (60,000)
    batch_size: int = 64               # the paper: 100
    data_epsilon: float = 0.015
    train_limit: int = 0
    n_eval: int = 200
    long_run_steps: int = 3000         # the paper: 100k; 20 K
    long_run_from_data: bool = True    # also long-run chains from training images (+ data noise), as the released evaluation
    classifier_epochs: int = 2
    classifier_train_limit: int = 0
    data_dir: str | None = None
    device: str = "cpu"


PROFILES = {
    "quick": dict(outcomes=("short-run", "persistent"), updates=4, steps=5, persistent_steps=5, n_f=4, bank_size=200, n_eval=50, long_run_steps=20,
                  train_limit=2000, classifier_epochs=1, classifier_train_limit=2000),
    "budget": {},
    "paper": dict(outcomes=("short-run", "persistent"), updates=100_000, steps=150, persistent_steps=500, image_size=32, n_f=32, persistent_net="nonlocal",
                  bank_size=60_000, batch_size=100, lr_adam=1e-4, n_eval=1000, long_run_steps=100_000),
}


def ebm_config(cfg: Config, outcome: str, cache: CellCache) -> EBMConfig:
    over = dict(OUTCOMES[outcome])
    if over["init"] == "persistent":
        over.update(lr=cfg.lr_sgd, bank_size=cfg.bank_size, steps=cfg.persistent_steps)
        if outcome == "persistent":
            over.update(net=cfg.persistent_net)
    else:
        over.update(lr=cfg.lr_adam, steps=cfg.steps)
    base = EBMConfig(dataset="mnist", data_dir=cfg.data_dir, image_size=cfg.image_size, n_f=cfg.n_f,
                     batch_size=cfg.batch_size,
                     data_epsilon=cfg.data_epsilon, updates=cfg.updates, train_limit=cfg.train_limit, seed=0,
                     ckpt_every=max(1, cfg.updates // 20), device=cfg.device, **over)
    inputs = {k: v for k, v in dataclasses.asdict(base).items() if k not in ("out_dir", "device", "ckpt_every", "data_dir")}
    return dataclasses.replace(base, out_dir=str(cache.run_dir(f"{NAME}-train", inputs, weights=EBMTrainer.WEIGHTS)))


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """EBM images (B, 1, S, S) in [-1, 1] -> the classifier's (B, 1, 28, 28) in [0, 1] (S = 16:
    bilinear upsampling to 32 x 32 first)."""
    if x.shape[-1] != 32:
        x = torch.nn.functional.interpolate(x.float(), size=(32, 32), mode="bilinear", align_corners=False)
    return from_signed_padded(x)


def sample_rows(name: str, x: torch.Tensor, extractor, ref, energy) -> list[dict]:
    fd = frechet_distance(feature_stats(extractor, to_unit(x)), ref)
    return [{"samples": name, "metric": "classifier_fd", "value": fd},
            {"samples": name, "metric": "saturated_fraction", "value": float((x.abs() > 1).float().mean())},
            {"samples": name, "metric": "mean_energy", "value": float(energy)}]


@torch.no_grad()
def evaluate(trainer, cfg: Config, outcome: str, extractor, ref) -> tuple[pd.DataFrame, dict]:
    ecfg, net = trainer.cfg, trainer.net.eval()
    g = torch.Generator(device=ecfg.device).manual_seed(seed_hash(NAME, "eval", outcome))
    x0 = init_chains("uniform", cfg.n_eval, net.shape, g)
    batches = [x0[i:i + 100] for i in range(0, cfg.n_eval, 100)]
    short = torch.cat([long_run(net, b, ecfg.steps, ecfg.eps, g)[0] for b in batches])
    long_parts = [long_run(net, b, cfg.long_run_steps, ecfg.eps, g, record_every=max(1, cfg.long_run_steps // 100))
                  for b in batches]
    long = torch.cat([p[0] for p in long_parts])
    trace = pd.concat([p[1].assign(batch=i) for i, p in enumerate(long_parts)]).groupby("step").energy.mean()
    u = lambda x: torch.cat([net(x[i:i + 100]) for i in range(0, len(x), 100)]).mean()   # noqa: E731
    rows = sample_rows("short-run", short, extractor, ref, u(short)) + sample_rows("long-run", long, extractor, ref, u(long))
    if trainer.bank is not None:
        bank = trainer.bank.x[:cfg.n_eval]
        rows += sample_rows("persistent bank", bank, extractor, ref, u(bank))
    if cfg.long_run_from_data:                          # the released evaluation's start: data (own generator)
        gd = torch.Generator(device=ecfg.device).manual_seed(seed_hash(NAME, "eval-data", outcome))
        idx = torch.randperm(trainer.data.shape[0], generator=gd, device=gd.device)[:cfg.n_eval]
        xd = trainer.data[idx]
        xd = xd + ecfg.data_epsilon * torch.randn(xd.shape, generator=gd, device=gd.device)
        from_data = torch.cat([long_run(net, xd[i:i + 100], cfg.long_run_steps, ecfg.eps, gd)[0]
                               for i in range(0, len(xd), 100)])
        rows += sample_rows("long-run from data", from_data, extractor, ref, u(from_data))
    df = pd.DataFrame(rows).assign(kind="summary", step=ecfg.updates)
    tr = pd.DataFrame({"samples": "long-run", "metric": "energy", "value": trace.values, "kind": "long_run_trace",
                       "step": trace.index.values})
    images = {"short-run": short[:16], "long-run": long[:16]}
    if cfg.long_run_from_data:
        images["long-run from data"] = from_data[:16]
    if trainer.bank is not None:
        images["persistent bank"] = trainer.bank.x[:16]
    return pd.concat([df, tr], ignore_index=True), images


EVAL_FIELDS = ("n_eval", "long_run_steps", "classifier_epochs", "classifier_train_limit", "image_size",
               "long_run_from_data")


def run_cell(cfg: Config, outcome: str, cache: CellCache, data, extractor, ref):
    """Train (or reuse) one EBM and evaluate it (a cell keyed by the model's hash)."""
    ecfg = ebm_config(cfg, outcome, cache)
    out = Path(ecfg.out_dir)
    trainer = train_or_resume(ecfg, data)
    inputs = dict({k: getattr(cfg, k) for k in EVAL_FIELDS}, outcome=outcome, model=file_hash(out / EBMTrainer.WEIGHTS))
    cell = cache.cell(NAME, inputs, lambda: evaluate(trainer, cfg, outcome, extractor, ref))
    df, images = cell.rows, cell.arrays
    metrics = pd.read_csv(out / "metrics.csv")[["step", "metric", "value"]]
    trace = metrics[metrics.metric.isin(["d_st", "r_t", "grad_norm"])].assign(kind="trace", samples="training")
    df = pd.concat([df, trace], ignore_index=True)
    df["wall_time_s"] = float(metrics[metrics.metric == "wall_time_s"].value.max())
    return df.assign(model=outcome, net=ecfg.net, run=cell.meta["key"]), images


def dbm_traces(cache: CellCache) -> pd.DataFrame:
    """d_st (= the logged surrogate loss) of the zoo's budget DBM runs on MNIST, if they exist."""
    frames = []
    for method in zoo.METHODS:
        path = zoo.run_path(cache, zoo.zoo_config(profile="budget"), "mnist", method, 0) / "metrics.csv"
        if path.exists():
            m = pd.read_csv(path)
            m = m[m.metric == "loss"].assign(metric="d_st", kind="dbm_trace", samples="training", model=f"dbm-{method}")
            frames.append(m[["step", "metric", "value", "kind", "samples", "model"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot(df: pd.DataFrame, path: Path, run: Run | None = None) -> None:
    """The EBMs' learning diagnostics d_st and r_t per update, the energy along long-run chains,
    and, where fig25's budget DBMs are in the work folder, their d_st (the panel is left out
    otherwise)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    has_dbm = (df.kind == "dbm_trace").any()
    fig, axes = plt.subplots(1, 3 + has_dbm, figsize=(5 * (3 + has_dbm), 4.4))
    labels = {"d_st": "d_st: energy difference, data - samples (symlog)",
              "r_t": "r_t = (eps^2/2) |grad_x U| of the samples (log)"}
    for model, d in df[df.kind == "trace"].groupby("model"):
        for ax, metric in zip(axes[:2], ("d_st", "r_t")):
            t = d[d.metric == metric]
            ax.plot(t.step, t.value, lw=0.7, label=model)
            ax.set(title=f"EBM {metric} per update", xlabel="training update", ylabel=labels[metric],
                   yscale="symlog" if metric == "d_st" else "log")
    axes[0].axhline(0, color="k", lw=0.5)
    for model, d in df[df.kind == "long_run_trace"].groupby("model"):
        axes[2].plot(d.step, d.value, label=model)
    axes[2].set(title="energy along long-run Langevin chains", xlabel="Langevin step", ylabel="mean energy U")
    if has_dbm:
        for model, d in df[df.kind == "dbm_trace"].groupby("model"):
            axes[3].plot(d.step, d.value, lw=0.7, label=model, **{k: method_style(model)[k] for k in ("color", "ls")})
        axes[3].axhline(0, color="k", lw=0.5)
        axes[3].set(title="DBM d_st (fig25's budget runs, MNIST)", xlabel="training update",
                    ylabel="d_st of the DBM (symlog)", yscale="symlog")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    profile = run.profile if run is not None else "?"
    fig.suptitle(f"EBM anatomy on MNIST ({profile} profile): the learning diagnostics of each EBM (short-run from noise; persistent)", fontsize=12)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save_figure(fig, path, run, dpi=100)


def compute(run: Run) -> Computed:
    cfg, cache = run.cfg, run.cache
    clf, clf_record = load_or_train(ClassifierConfig("mnist", "8bit", epochs=cfg.classifier_epochs,
                                                     train_limit=cfg.classifier_train_limit),
                                    cache.root / "classifiers", cfg.data_dir, cfg.device)
    extractor = classifier_extractor(clf, cfg.device)
    test = to_unit(mnist32("mnist", "test", cfg.data_dir, size=cfg.image_size))  # (N, 1, 28, 28) as the models see them
    ref = feature_stats(extractor, test[cfg.n_eval:])
    floor = frechet_distance(feature_stats(extractor, test[:cfg.n_eval]), ref)
    data = mnist32("mnist", "train", cfg.data_dir, cfg.train_limit, cfg.image_size)
    frames, grids = [pd.DataFrame([{"model": "data", "samples": "held-out test images", "metric": "classifier_fd",
                                    "value": floor, "kind": "summary", "step": 0}])], {}
    for outcome in progress(cfg.outcomes, NAME):
        df, images = run_cell(cfg, outcome, cache, data, extractor, ref)
        frames.append(df)
        grids.update({f"{outcome}: {k}": to_unit(v) for k, v in images.items()})
    frames.append(dbm_traces(cache))
    df = pd.concat(frames, ignore_index=True)
    df["profile"], df["n_eval"] = run.profile, cfg.n_eval
    grids["data"] = test[:16]
    sample_grid(grids, run.out / f"{NAME}_samples.png", run=run,
                title=f"EBM anatomy on MNIST ({run.profile} profile): rows '<training>: <samples>', short-run (the "
                      f"training chain's length) and long-run Langevin samples of the EBM trained each way "
                      f"({', '.join(cfg.outcomes)}); last row: test images")
    return Computed(df, dict(classifier=clf_record,
                             outcomes={o: dataclasses.asdict(ebm_config(cfg, o, cache)) for o in cfg.outcomes},
                             reference="MNIST test images n_eval.. (classifier features, 8-bit classifier)"))


def main(argv=None) -> int:
    return script_main(argv, doc=__doc__, name=NAME, config_cls=Config, profiles=PROFILES, compute=compute,
                       plot=plot, summary=summary_pivot("model", "samples"))


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))       # expected errors: one line on stderr, exit 2
