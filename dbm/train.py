"""Training a DBM end to end with any estimator (``python -m dbm train ...``).

One update: draw a batch with replacement (as the authors do),
``loss, state, info = est.loss(model, v, state, generator)``, backward, optimizer step, lr
schedule lr / sqrt(1 + gamma t) (spec §3). The run folder, its atomic checkpoints (weights,
optimizer, scheduler, step, every RNG state and the ``EstimatorState``), ``--resume`` and the
divergence stop are the run layer's (``dbm.run``): a resumed run
reaches the same parameters as an uninterrupted one on CPU; NaN/inf stops the run with a message
and keeps the last good checkpoint. The published ``model.safetensors`` is the newest
checkpoint's weights (``load_model``).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import warnings
import math
from pathlib import Path

import torch

from . import exact
from .config import check_config, check_device, upper_bound
from .data import load_images
from .encoding import ENCODINGS
from .encoding import encode as encode_images
from .errors import CheckpointError, ConfigError, DataError, DivergenceError
from .estimators import Estimator, EstimatorState
from .meanfield import mean_field
from .model import DBM
from .presets import PRESETS, build
from .results import seed_hash
from .run import RunTrainer, check_resume_config, check_writable, read_weights, require_finite, set_generator_state
from .stats import SurrogateLoss

COUPLED = ("ucd-mh-lmi", "ucd-gibbs")     # estimators whose minibatch gradient has correction terms
from .validate import is_binary

__all__ = ["TrainConfig", "Trainer", "DivergenceError", "check_resume_config", "load_model", "sample_images"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    data_dir: str | None = None
    encoding: str = "binary"                # or "8bit"
    stochastic_binarize: bool = False
    hidden: tuple = (784, 784)              # widths of h1..hL
    estimator: str = "ucd-mh-lmi"           # a preset of dbm.presets (python -m dbm estimators lists them)
    estimator_options: dict = dataclasses.field(default_factory=dict)   # over the preset's, JSON on the command line, e.g. '{"marginalize": true}'
    optimizer: str = "sgd"                  # or "adam"
    lr: float = 1e-2
    gamma: float = 1e-3                     # lr_t = lr / sqrt(1 + gamma t)
    batch_size: int = 1000
    updates: int = 1000
    seed: int = 0
    train_limit: int = 0                    # use the first N training images (0: all)
    log_every: int = 10
    eval_every: int = 100
    eval_ais_runs: int = 0                  # AIS runs for the held-out log-likelihood bound at each evaluation (0: none)
    eval_ais_betas: int = 500               # temperatures of that AIS (same random numbers at every evaluation)
    eval_samples: int = 0                   # local modes from uniform starts whose ink and diversity each evaluation logs (0: none)
    ckpt_every: int = 100
    sample_every: int = 0                   # 0: only at the end
    correction_window: int = 100            # updates in the running share of minibatches with a correction
    correction_warn_below: float = 0.5      # warn when that share falls below (docs/training.md says why)
    tensorboard: bool = False               # also write the logged metrics to <out_dir>/tb (pip install tensorboard)
    pretrain_updates: int = 0               # greedy layer-wise RBM updates per layer (0: none)
    pretrain_lr: float = 0.05
    out_dir: str = "runs/train"
    device: str = "cpu"                     # cpu or cuda

    CHOICES = {"dataset": ("mnist", "fashion-mnist", "cifar10"), "encoding": ENCODINGS,
               "estimator": tuple(PRESETS), "optimizer": ("sgd", "adam")}

    def __post_init__(self):
        check_config(self, positive_int=("batch_size", "updates", "log_every", "ckpt_every", "correction_window",
                                   "eval_ais_betas"),
                     nonneg_int=("train_limit", "eval_every", "sample_every", "pretrain_updates", "eval_ais_runs",
                                 "eval_samples"),
                     positive=("lr", "pretrain_lr"), nonneg=("gamma",), fraction=("correction_warn_below",),
                     choices=self.CHOICES)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or abs(self.seed) >= 2 ** 63:
            raise ConfigError(f"--seed must be an integer of at most 63 bits, got {self.seed!r}")
        hidden = tuple(self.hidden) if isinstance(self.hidden, (tuple, list)) else ()
        if not hidden or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in hidden):
            raise ConfigError(f"--hidden must be one or more positive layer widths like 500,500; got {self.hidden!r}")
        if max(hidden) > upper_bound("hidden") or len(hidden) > 100:
            raise ConfigError(f"--hidden: each width must be at most {upper_bound('hidden'):,} and the layers at "
                              f"most 100, got {len(hidden)} layers, widest {max(hidden):.3g}")
        object.__setattr__(self, "hidden", hidden)
        opts = self.estimator_options
        if isinstance(opts, str):                      # JSON text (older checkpoints, hand-written configs)
            try:
                opts = json.loads(opts)
            except ValueError as e:
                raise ConfigError(f"--estimator-options must be a JSON object, got {opts!r} ({e})") from None
        if not isinstance(opts, dict):
            raise ConfigError(f"--estimator-options must be a JSON object, got {self.estimator_options!r}")
        object.__setattr__(self, "estimator_options", dict(opts))
        self.build_estimator()
        if PRESETS[self.estimator].pretrain and not self.pretrain_updates:
            raise ConfigError(f"--estimator {self.estimator} includes layer-wise pretraining: set --pretrain-updates > 0")
        check_device(self.device)

    def build_estimator(self) -> Estimator:
        """The estimator of the preset with ``estimator_options`` over its options; ConfigError if
        the estimator does not take them."""
        try:
            return build(self.estimator, **self.estimator_options)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--estimator-options {json.dumps(self.estimator_options)} for {self.estimator}: {e}") from None


# settings a resumed run must share with its checkpoint (updates, logging, paths and device may change)
RESUME_MUST_MATCH = ("dataset", "encoding", "stochastic_binarize", "hidden", "estimator", "estimator_options",
                     "optimizer", "lr", "gamma", "batch_size", "seed", "train_limit", "pretrain_updates",
                     "pretrain_lr")


def encode(images: torch.Tensor, cfg: TrainConfig, generator=None) -> torch.Tensor:
    """Images -> visible vectors in the config's encoding (``generator`` used when binarising
    stochastically)."""
    return encode_images(images, cfg.encoding, generator if cfg.stochastic_binarize else None)


def load_model(path: str | Path, device: str = "cpu") -> tuple[DBM, dict]:
    """A model and its metadata from ``model.safetensors``."""
    tensors, meta = read_weights(path, "DBM", device)
    if "layer_sizes" not in meta:
        raise CheckpointError(f"{path}: not a DBM checkpoint (no layer_sizes in its metadata)")
    model = DBM(json.loads(meta["layer_sizes"]), init="zeros", device=device)
    model.load_state_dict(tensors)
    model.centered = meta.get("centered") == "True"
    return model, meta


def sample_images(model: DBM, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The authors' samples: the visible part of a local mode from a uniform start ("mode") and
    of one T = 1 sweep after it ("random"). Neither is a long-run MCMC sample
    (``dbm.metrics.samples.gibbs_chains`` draws those)."""
    from .metrics.samples import modes
    mode, swept, _ = modes(model, n, generator)
    return {"mode": mode[0], "random": swept[0]}


def _image_shape(n0: int, images: torch.Tensor | None) -> tuple | None:
    """(C, H, W) of the visible layer for sample grids, or None when it is not an image."""
    if images is not None and images.ndim in (3, 4):
        shape = tuple(images.shape[1:])
        return (1, *shape) if len(shape) == 2 else shape
    side = math.isqrt(n0)
    return (1, side, side) if side * side == n0 else None


CAPS = ("tau", "sweeps", "residual")       # the caps an estimator's PhaseInfo counts, in Trainer.count_caps
CAP_TOTALS = tuple(f"{p}_{c}_capped_total" for p in ("pos", "neg") for c in CAPS)   # their logged running totals


class Trainer(RunTrainer):
    """Holds the model, optimizer, generators and estimator of one run; ``run()`` trains."""
    WEIGHTS, MUST_MATCH, DESC = "model.safetensors", RESUME_MUST_MATCH, "train"

    def __init__(self, cfg: TrainConfig, data: torch.Tensor | None = None, eval_data=None,
                 rank: int = 0, world: int = 1):
        self._init_run(cfg)
        self.rank, self.world = rank, world
        if cfg.batch_size % world:
            raise ConfigError(f"--batch-size {cfg.batch_size} must be divisible by the {world} processes")
        if rank == 0:
            check_writable(cfg.out_dir)
        dev = cfg.device
        images = None
        if data is None:
            images = load_images(cfg.dataset, "train", cfg.data_dir)
            if cfg.train_limit:
                images = images[:cfg.train_limit]
            data = encode(images, cfg, torch.Generator().manual_seed(seed_hash("binarize", cfg.seed)))
            test = load_images(cfg.dataset, "test", cfg.data_dir)[:1000]
            eval_data = encode(test, cfg, torch.Generator().manual_seed(seed_hash("binarize-test", cfg.seed)))
        self.data = _check_data(data, "training data").to(dev)
        self.eval_data = None if eval_data is None else _check_data(eval_data, "held-out data", data.shape[1]).to(dev)
        self.image_shape = _image_shape(self.data.shape[1], images)
        sizes = [self.data.shape[1], *cfg.hidden]
        self.model = DBM(sizes, generator=torch.Generator(device=dev).manual_seed(seed_hash("init", cfg.seed)),
                         device=dev)
        self.est = cfg.build_estimator()
        self.est_state = self.est.init_state()
        self.corrections: collections.deque = collections.deque(maxlen=cfg.correction_window)
        self.correction_warned = False
        self.cap_totals: dict = {}                # {name: 0-d tensor}: every update's cap hits, summed
        params = self.model.parameters()
        self.opt = (torch.optim.SGD(params, lr=cfg.lr) if cfg.optimizer == "sgd"
                    else torch.optim.Adam(params, lr=cfg.lr))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda t: (1 + cfg.gamma * t) ** -0.5)
        self.data_gen = torch.Generator(device=dev).manual_seed(seed_hash("batches", cfg.seed, rank))
        self.chain_gen = torch.Generator(device=dev).manual_seed(seed_hash("chains", cfg.seed, rank))
        self.forward = SurrogateLoss(self.model)   # dbm.distributed wraps it in DistributedDataParallel
        self.tb = None

    @property
    def total(self) -> int:
        return self.cfg.updates

    def run_labels(self) -> dict:
        return {"method": self.cfg.estimator, "seed": self.cfg.seed}

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_tensors(self) -> dict:
        return dict(self.model.state_dict())

    def checkpoint_meta(self) -> dict:
        return {"layer_sizes": json.dumps(self.model.layer_sizes), "centered": str(self.model.centered)}

    def checkpoint_state(self) -> dict:
        return {"opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "data_gen": self.data_gen.get_state(), "chain_gen": self.chain_gen.get_state(),
                "estimator": self.est_state._asdict(),
                "corrections": [bool(c) for c in self.corrections], "correction_warned": self.correction_warned,
                "cap_totals": {k: int(v) for k, v in self.cap_totals.items()}}

    def restore(self, tensors: dict, state: dict) -> None:
        self.model.load_state_dict(tensors)
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        set_generator_state(self.data_gen, state["data_gen"])
        set_generator_state(self.chain_gen, state["chain_gen"])
        self.est_state = EstimatorState.from_dict(state["estimator"])
        self.corrections.extend(state.get("corrections", []))
        self.correction_warned = bool(state.get("correction_warned", False))
        dev = self.model.weights[0].device
        self.cap_totals = {k: torch.tensor(int(v), device=dev) for k, v in state.get("cap_totals", {}).items()}

    # ------------------------------------------------------------------ training
    def batch(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.cfg.batch_size // self.world,),
                            generator=self.data_gen, device=self.data.device)
        return self.data[idx]

    def update(self):
        """One training update; returns (loss, info)."""
        loss, self.est_state, info = self.est.loss(self.model, self.batch(), self.est_state, self.chain_gen,
                                                   forward=self.forward)
        if not torch.isfinite(loss):
            raise DivergenceError(f"loss is {loss.item()} at update {self.step + 1}; "
                                  f"the last good checkpoint in {self.out} is kept")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.step += 1
        require_finite(self.model.named_parameters(), self.step, self.out)
        if self.est.name in COUPLED:              # 0-d tensor: no host sync until it is logged
            self.corrections.append((info.pos.tau > 1).any() | (info.neg.tau > 1).any())
        self.count_caps(info)
        return loss, info

    def count_caps(self, info) -> None:
        """Add this update's cap hits (chains whose tau, local search or residual sampler hit its
        cap, per phase) to ``cap_totals``: device tensors, read only when a record is logged, so
        a cap that fires between two logged updates is still counted (``CAP_TOTALS``)."""
        for phase, ph in (("pos", info.pos), ("neg", info.neg)):
            for name, hits in zip(CAPS, (ph.capped, ph.sweeps_capped, ph.residual_capped)):
                if hits is not None:
                    key = f"{phase}_{name}_capped_total"
                    self.cap_totals[key] = self.cap_totals.get(key, 0) + hits.sum()

    def correction_share(self) -> float | None:
        """Share of the last ``correction_window`` minibatches in which any chain of either phase
        had a correction (tau > 1); None for estimators without coupled chains. Below
        ``correction_warn_below`` most updates use only the uncorrected pi0 term, the regime where
        the unbiased estimator behaves like a biased one (docs/training.md); a warning says so once
        the window is full."""
        if self.est.name not in COUPLED or not self.corrections:
            return None
        dev = self.model.weights[0].device       # restored entries are bools, new ones 0-d device tensors
        share = float(torch.stack([torch.as_tensor(c, device=dev) for c in self.corrections]).float().mean())
        cfg = self.cfg
        if (len(self.corrections) == cfg.correction_window and share < cfg.correction_warn_below
                and not self.correction_warned):
            self.correction_warned = True
            warnings.warn(f"update {self.step}: only {share:.0%} of the last {cfg.correction_window} minibatches had a "
                          f"correction (tau > 1); most updates use the uncorrected local-mode term alone, so "
                          f"{self.est.name} is effectively biased per minibatch here (docs/training.md)", stacklevel=2)
        return share

    def train_step(self) -> dict | None:
        cfg = self.cfg
        loss, info = self.update()
        if not (self.step % cfg.log_every == 0 or self.step == cfg.updates):
            return None
        rec = {"loss": float(loss.detach()), "lr": self.sched.get_last_lr()[0],
               "wall_time_s": self.wall_time(), **info.summary(),
               **{k: float(v) for k, v in self.cap_totals.items()}}
        share = self.correction_share()
        if share is not None:
            rec["correction_share"] = share
        if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.updates):
            rec.update(self.evaluate())
        if self.tb is not None:
            for k, v in rec.items():
                self.tb.add_scalar(k, v, self.step)
        return rec

    def postfix(self, rec: dict) -> dict:
        return {"loss": f"{rec['loss']:.3g}", "T": f"{rec['neg_sweeps_mean']:.1f}", "tau": f"{rec['neg_tau_mean']:.2f}"}

    def before_fit(self) -> None:
        cfg = self.cfg
        if self.step == 0 and cfg.pretrain_updates:
            from .pretrain import pretrain_layerwise
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash("pretrain", cfg.seed, self.rank))
            pretrain_layerwise(self.model, self.data, cfg.pretrain_updates, cfg.batch_size // self.world,
                               cfg.pretrain_lr, g)
        if cfg.tensorboard and self.rank == 0:
            self.tb = self._tensorboard()

    def after_step(self) -> None:
        if self.cfg.sample_every and self.step % self.cfg.sample_every == 0:
            self.save_samples()

    def after_fit(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        self.save_samples()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out reconstruction error: v -> mean-field posterior (10 iterations) -> p(v | h1),
        mean absolute error; the exact -log p(v) when the model can be enumerated; with
        ``eval_ais_runs`` the held-out log-likelihood bound (``test_ll_bound``, nats per image;
        log Z by AIS with the same random numbers at every evaluation, so the trace's noise is
        the model's change, not the estimator's reseeding); with ``eval_samples`` the ink and
        diversity of that many local modes from fixed uniform starts. Evaluation draws from its
        own generators: it never changes the training's random stream."""
        if self.eval_data is None:
            return {}
        cfg, m, v = self.cfg, self.model, self.eval_data
        mus = mean_field(m, v, 10)
        recon = torch.sigmoid(m.logits(mus, 0))
        out = {"recon_error": float((recon - v).abs().mean())}
        n_even = sum(m.layer_sizes[l] for l in m.layers(0) if l > 0)
        if n_even <= 16 and sum(m.layer_sizes[l] for l in m.layers(0)) <= exact.MAX_ENUM_BITS:
            out["exact_test_nll"] = float(exact.nll(m, v).mean())   # enumerable: exact -log p(v)
        if cfg.eval_ais_runs:
            from .metrics.ais import ais_log_partition, log_likelihood_bound
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash("eval-ais", cfg.seed))
            ais = ais_log_partition(m, g, runs=cfg.eval_ais_runs, betas=cfg.eval_ais_betas)
            out.update(test_ll_bound=float(log_likelihood_bound(m, v, ais.log_z).mean()), log_z=ais.log_z,
                       log_z_se=ais.log_z_se)
        if cfg.eval_samples:
            from .metrics.samples import sample_stats
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash("eval-modes", cfg.seed))
            modes = sample_images(m, cfg.eval_samples, g)["mode"]
            stats = sample_stats(modes, v)
            out.update(mode_ink=stats["ink"], mode_diversity=stats["diversity"])
        return out

    def _tensorboard(self):
        """A SummaryWriter on <out_dir>/tb (TensorBoard is an optional viewer of metrics.csv)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard "
                              "(or pip install -e '.[tb]')") from None
        return SummaryWriter(str(self.out / "tb"), purge_step=self.step + 1 if self.step else None)

    def save_samples(self, n: int = 64) -> None:
        """Local-mode grids (``sample_images``) as PNGs; skipped off rank 0, for 8-bit encodings and
        for visible layers that are not images."""
        if self.rank != 0 or self.cfg.encoding != "binary" or self.image_shape is None:
            return
        from torchvision.utils import save_image
        g = torch.Generator(device=self.cfg.device).manual_seed(seed_hash("samples", self.cfg.seed, self.step))
        for kind, v in sample_images(self.model, n, g).items():
            save_image(v.reshape(n, *self.image_shape).cpu(), self.out / f"samples_{kind}_{self.step:07d}.png", nrow=8)


def _check_data(x, what: str, n0: int | None = None) -> torch.Tensor:
    """A non-empty (N, n_0) binary tensor, checked once before training starts."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{what} must be a non-empty (N, n_0) tensor, got "
                        f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if n0 is not None and x.shape[1] != n0:
        raise DataError(f"{what} has {x.shape[1]} visible units, the training data {n0}")
    if not is_binary(x):
        raise DataError(f"{what} must be binary (0/1); encode images with dbm.encode_binary or dbm.encode_8bit")
    return x.float() if not x.is_floating_point() else x
