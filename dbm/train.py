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

import dataclasses
import json
import math
from pathlib import Path

import torch

from .config import check_config, check_device, upper_bound
from .data import load_images
from .encoding import ENCODINGS
from .encoding import encode as encode_images
from .errors import CheckpointError, ConfigError, DataError, DivergenceError
from .estimators import Estimator, EstimatorState
from .metrics.heldout import heldout_metrics
from .metrics.samples import sample_images
from .model import DBM
from .presets import PRESETS, build
from .provenance import seed_hash
from .run import RunTrainer, check_resume_config, check_writable, read_weights, require_finite, set_generator_state
from .monitor import CAP_TOTALS, CAPS, COUPLED, CapCounter, CorrectionMonitor, RunOutputs
from .sufficient_stats import SurrogateLoss
from .validate import is_binary

__all__ = ["TrainConfig", "Trainer", "DivergenceError", "check_resume_config", "load_model", "sample_images",
           "prepare_data", "CAPS", "CAP_TOTALS", "COUPLED"]


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


def _image_shape(n0: int, images: torch.Tensor | None) -> tuple | None:
    """(C, H, W) of the visible layer for sample grids, or None when it is not an image."""
    if images is not None and images.ndim in (3, 4):
        shape = tuple(images.shape[1:])
        return (1, *shape) if len(shape) == 2 else shape
    side = math.isqrt(n0)
    return (1, side, side) if side * side == n0 else None


def prepare_data(cfg: TrainConfig, data: torch.Tensor | None = None, eval_data: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, tuple | None]:
    """(training data, held-out data, image shape) on the config's device: the given binary
    tensors (checked), or the data set's training images (first ``train_limit``) and first 1000
    test images, encoded with the run's binarisation seeds."""
    images = None
    if data is None:
        images = load_images(cfg.dataset, "train", cfg.data_dir)
        if cfg.train_limit:
            images = images[:cfg.train_limit]
        data = encode(images, cfg, torch.Generator().manual_seed(seed_hash("binarize", cfg.seed)))
        test = load_images(cfg.dataset, "test", cfg.data_dir)[:1000]
        eval_data = encode(test, cfg, torch.Generator().manual_seed(seed_hash("binarize-test", cfg.seed)))
    data = _check_data(data, "training data").to(cfg.device)
    held = None if eval_data is None else _check_data(eval_data, "held-out data", data.shape[1]).to(cfg.device)
    return data, held, _image_shape(data.shape[1], images)


class Trainer(RunTrainer):
    """The model, optimizer, generators and estimator of one run, its update and what it
    checkpoints; ``run()`` trains. What it watches lives apart: the correction share, cap totals,
    TensorBoard and sample grids (``dbm.monitor``), the held-out metrics (``dbm.metrics.heldout``)."""
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
        self.data, self.eval_data, self.image_shape = prepare_data(cfg, data, eval_data)
        self.model = DBM([self.data.shape[1], *cfg.hidden], device=dev,
                         generator=torch.Generator(device=dev).manual_seed(seed_hash("init", cfg.seed)))
        self.est = cfg.build_estimator()
        self.est_state = self.est.init_state()
        self.corrections = CorrectionMonitor(self.est.name, cfg.correction_window, cfg.correction_warn_below)
        self.caps = CapCounter()
        params = self.model.parameters()
        self.opt = (torch.optim.SGD(params, lr=cfg.lr) if cfg.optimizer == "sgd"
                    else torch.optim.Adam(params, lr=cfg.lr))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda t: (1 + cfg.gamma * t) ** -0.5)
        self.data_gen = torch.Generator(device=dev).manual_seed(seed_hash("batches", cfg.seed, rank))
        self.chain_gen = torch.Generator(device=dev).manual_seed(seed_hash("chains", cfg.seed, rank))
        self.forward = SurrogateLoss(self.model)   # dbm.distributed wraps it in DistributedDataParallel
        self.outputs = RunOutputs(self.out, cfg.seed, rank, cfg.tensorboard, cfg.encoding == "binary", self.image_shape)

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
                "estimator": self.est_state._asdict(), **self.corrections.state_dict(), **self.caps.state_dict()}

    def restore(self, tensors: dict, state: dict) -> None:
        self.model.load_state_dict(tensors)
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        set_generator_state(self.data_gen, state["data_gen"])
        set_generator_state(self.chain_gen, state["chain_gen"])
        self.est_state = EstimatorState.from_dict(state["estimator"])
        self.corrections.load_state_dict(state)
        self.caps.load_state_dict(state, self.model.weights[0].device)

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
        self.corrections.record(info)
        self.caps.count(info)
        return loss, info

    def train_step(self) -> dict | None:
        cfg = self.cfg
        loss, info = self.update()
        if not (self.step % cfg.log_every == 0 or self.step == cfg.updates):
            return None
        rec = {"loss": float(loss.detach()), "lr": self.sched.get_last_lr()[0], "wall_time_s": self.wall_time(),
               **info.summary(), **self.caps.record()}
        share = self.corrections.share(self.step, self.model.weights[0].device)
        if share is not None:
            rec["correction_share"] = share
        if cfg.eval_every and self.eval_data is not None and (self.step % cfg.eval_every == 0 or self.step == cfg.updates):
            rec.update(heldout_metrics(self.model, self.eval_data, cfg.seed, cfg.eval_ais_runs, cfg.eval_ais_betas,
                                       cfg.eval_samples))
        self.outputs.log(rec, self.step)
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
        self.outputs.open(self.step)

    def after_step(self) -> None:
        if self.cfg.sample_every and self.step % self.cfg.sample_every == 0:
            self.outputs.sample_grids(self.model, self.step)

    def after_fit(self) -> None:
        self.outputs.close()
        self.outputs.sample_grids(self.model, self.step)


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
