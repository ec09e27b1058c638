"""ML learning of an EBM with short-run Langevin (spec, Algorithm 1) and its diagnostics.

One update: a data batch x+ (plus N(0, data_epsilon^2) noise), K Langevin steps of step size eps
from the configured initialisation to x-, the loss d_{s_t} = mean U(x+) - mean U(x-) (x- detached),
one optimizer step. Recorded every update in ``<out_dir>/metrics.csv`` (tidy: step, metric,
value): ``d_st``, ``r_t`` (the paper's units: the mean norm of the gradient term the Langevin
step applies, (eps^2 / 2) ||grad_x U|| = ||grad_x f||, along the path, as in the authors' code),
``grad_norm`` (the mean ||grad_x U|| itself, the unit this project reported before),
``energy_data``, ``energy_samples``, ``lr`` and ``wall_time_s``.

Units: U = f / T with T = eps^2 / 2 (``dbm.ebm.nets.EnergyNet``). ``lr`` is the authors' learning
rate: Adam is invariant to the scale of the loss; for SGD the step on theta is
lr * grad_theta (f(x+) - f(x-)), i.e. lr * T on the loss in U units. ``lr_decay`` multiplies the
learning rate after every update.

Checkpoints (the run layer, ``dbm.run``): weights plus optimizer, schedule, generators and the
persistent bank, one atomic unit every ``ckpt_every`` updates; the newest weights are published as
``net.safetensors``; ``resume()`` continues exactly.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from ..config import check_config, check_device
from ..encoding import to_signed_padded
from ..errors import ConfigError, DataError, DivergenceError
from ..provenance import seed_hash
from ..run import RunTrainer, check_writable, read_weights, require_finite, set_generator_state
from .chains import INITS, PersistentBank, init_chains
from .langevin import run_langevin
from .nets import NET_NAMES, TOY_NETS, EnergyNet, make_net
from .toy import TOY_KINDS, Toy2D

IMAGE_SIZES = (16, 32)

__all__ = ["EBMConfig", "EBMTrainer", "IMAGE_SIZES", "load_ebm", "mnist32", "resize_signed", "long_run",
           "train_or_resume", "toy_target", "r_t_paper_units", "fresh_start"]


@dataclasses.dataclass(frozen=True)
class EBMConfig:
    dataset: str = "mnist"            # "mnist", "fashion-mnist" (images in [-1, 1]) or a 2-D target (TOY_KINDS)
    data_dir: str | None = None
    image_size: int = 32              # side S of the (1, S, S) images: 32 (the paper's) or 16 (2x2 average-pooled)
    toy_groups: int = 8
    toy_radius: float = 1.0
    toy_sd: float = 0.15
    data_epsilon: float = 0.015       # sd of the noise added to training data
    net: str = "vanilla"              # one of NET_NAMES: toy nets for 2-D targets, the others for images
    n_f: int = 32
    optimizer: str = "adam"           # or "sgd"
    lr: float = 1e-4
    lr_decay: float = 1.0
    eps: float = 1e-2                 # Langevin step size
    steps: int = 100                  # K short-run steps per update
    init: str = "uniform"             # uniform, gaussian, data or persistent
    init_scale: float = 1.0           # fresh uniform / gaussian starts are multiplied by it (the authors' rings: 2)
    bank_size: int = 10000            # persistent chains
    rejuvenate: float = 0.0
    batch_size: int = 100
    updates: int = 1000
    seed: int = 0
    train_limit: int = 0              # first N training images (0: all)
    ckpt_every: int = 100
    out_dir: str = "runs/ebm"
    device: str = "cpu"               # cpu or cuda

    CHOICES = {"dataset": ("mnist", "fashion-mnist") + TOY_KINDS, "net": NET_NAMES,
               "optimizer": ("adam", "sgd"), "init": INITS,
               "image_size": IMAGE_SIZES}

    def __post_init__(self):
        check_config(self, positive_int=("toy_groups", "n_f", "steps", "bank_size", "batch_size", "updates",
                                         "ckpt_every"),
                     nonneg_int=("train_limit",), positive=("toy_radius", "toy_sd", "lr", "lr_decay", "eps", "init_scale"),
                     nonneg=("data_epsilon",), fraction=("rejuvenate",), choices=self.CHOICES)
        if self.lr_decay > 1:
            raise ConfigError(f"--lr-decay must be in (0, 1], got {self.lr_decay!r}")
        if self.init == "persistent" and self.bank_size < self.batch_size:
            raise ConfigError(f"--bank-size {self.bank_size} < --batch-size {self.batch_size}: the persistent "
                              "bank must hold at least one batch of chains")
        if (self.net in TOY_NETS) != (self.dataset in TOY_KINDS):
            raise ConfigError(f"--net {self.net} does not fit --dataset {self.dataset}: the toy nets {TOY_NETS} are "
                              f"for the 2-D targets {TOY_KINDS}, the others for images")
        check_device(self.device)


RESUME_MUST_MATCH = ("dataset", "image_size", "toy_groups", "toy_radius", "toy_sd", "data_epsilon", "net", "n_f", "optimizer",
                     "lr", "lr_decay", "eps", "steps", "init", "init_scale", "bank_size", "rejuvenate", "batch_size", "seed",
                     "train_limit")


def mnist32(name: str = "mnist", split: str = "train", data_dir=None, limit: int = 0, size: int = 32) -> Tensor:
    """MNIST-like images as (N, 1, S, S) float32 in [-1, 1]: scaled, padded by 2 pixels of
    background (-1) on each side to 32 x 32, then for S = 16 average-pooled over 2 x 2 blocks."""
    from ..data import load_images
    x = load_images(name, split, data_dir)
    return resize_signed(to_signed_padded(x[:limit] if limit else x), size)


def resize_signed(x: Tensor, size: int) -> Tensor:
    """(N, C, 32, 32) -> (N, C, S, S): 2 x 2 average pooling for S = 16, identity for 32."""
    if size not in IMAGE_SIZES:
        raise ConfigError(f"image size {size} is not one of {IMAGE_SIZES}")
    return x if size == x.shape[-1] else torch.nn.functional.avg_pool2d(x, x.shape[-1] // size)


def _shape(cfg: EBMConfig) -> tuple[int, ...]:
    return (2,) if cfg.dataset in TOY_KINDS else (1, cfg.image_size, cfg.image_size)


def r_t_paper_units(grad_norm: float, eps: float) -> float:
    """The paper's r_t from the mean ||grad_x U||: the norm of the gradient term the Langevin step
    applies, (eps^2 / 2) ||grad_x U|| (= ||grad_x f|| for U = f / T, T = eps^2 / 2)."""
    return eps ** 2 / 2 * grad_norm


def fresh_start(cfg: EBMConfig, n: int, generator: torch.Generator, data: Tensor | None = None,
                kind: str | None = None) -> Tensor:
    """n fresh chains (n, *shape) of initialisation ``kind`` (default ``cfg.init``); uniform and
    gaussian noise is multiplied by ``cfg.init_scale``."""
    kind = cfg.init if kind is None else kind
    x = init_chains(kind, n, _shape(cfg), generator, data)
    return x * cfg.init_scale if kind in ("uniform", "gaussian") else x


def toy_target(cfg: EBMConfig) -> Toy2D:
    return Toy2D(cfg.dataset, cfg.toy_groups, cfg.toy_radius, cfg.toy_sd)


def build_net(cfg: EBMConfig) -> EnergyNet:
    g = torch.Generator().manual_seed(seed_hash("ebm-init", cfg.seed))
    return make_net(cfg.net, _shape(cfg), cfg.n_f, g, temperature=cfg.eps ** 2 / 2).to(cfg.device)


class EBMTrainer(RunTrainer):
    """Holds the net, optimizer, generators, data and chain bank of one run; ``run()`` learns."""
    WEIGHTS, MUST_MATCH, DESC = "net.safetensors", RESUME_MUST_MATCH, "ebm"

    def run_labels(self) -> dict:
        return {"method": f"ebm-{self.cfg.init}-init", "seed": self.cfg.seed}

    def __init__(self, cfg: EBMConfig, data: Tensor | None = None):
        self._init_run(cfg)
        check_writable(cfg.out_dir)
        dev = cfg.device
        self.toy = toy_target(cfg) if cfg.dataset in TOY_KINDS else None
        if data is None and self.toy is None:
            data = mnist32(cfg.dataset, "train", cfg.data_dir, cfg.train_limit, cfg.image_size)
        self.data = None if data is None else data.to(dev)
        if self.data is not None and (tuple(self.data.shape[1:]) != _shape(cfg) or not len(self.data)):
            raise DataError(f"data of shape {tuple(self.data.shape)} for inputs (N >= 1, *{_shape(cfg)})")
        self.net = build_net(cfg)
        T = cfg.eps ** 2 / 2
        self.opt = (torch.optim.Adam(self.net.parameters(), lr=cfg.lr) if cfg.optimizer == "adam"
                    else torch.optim.SGD(self.net.parameters(), lr=cfg.lr * T))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda t: cfg.lr_decay ** t)
        self.data_gen = torch.Generator(device=dev).manual_seed(seed_hash("ebm-data", cfg.seed))
        self.chain_gen = torch.Generator(device=dev).manual_seed(seed_hash("ebm-chains", cfg.seed))
        self.bank = None
        if cfg.init == "persistent":
            self.bank = PersistentBank(cfg.bank_size, _shape(cfg), self.chain_gen, cfg.rejuvenate)

    @property
    def total(self) -> int:
        return self.cfg.updates

    # ------------------------------------------------------------------ one update
    def positive_batch(self) -> Tensor:
        cfg, g = self.cfg, self.data_gen
        if self.toy is not None:
            x = self.toy.sample(cfg.batch_size, g)
        else:
            x = self.data[torch.randint(0, self.data.shape[0], (cfg.batch_size,), generator=g, device=g.device)]
        return x + cfg.data_epsilon * torch.randn(x.shape, generator=g, device=g.device)

    def negative_start(self) -> tuple[Tensor | None, Tensor]:
        cfg = self.cfg
        if self.bank is not None:
            return self.bank.draw(cfg.batch_size, self.chain_gen)
        data = self.data if self.toy is None else self.toy.sample(cfg.batch_size * 10, self.data_gen)
        return None, fresh_start(cfg, cfg.batch_size, self.chain_gen, data)

    def update(self) -> dict[str, float]:
        cfg = self.cfg
        x_pos = self.positive_batch()
        idx, x0 = self.negative_start()
        x_neg, rec = run_langevin(self.net, x0, cfg.steps, cfg.eps, self.chain_gen)
        if self.bank is not None:
            self.bank.update(idx, x_neg)
        u_pos, u_neg = self.net(x_pos).mean(), self.net(x_neg.detach()).mean()
        d_st = u_pos - u_neg                                                       # the ML loss
        if not torch.isfinite(d_st):
            raise DivergenceError(f"d_st is {float(d_st)} at update {self.step + 1}")
        self.opt.zero_grad(set_to_none=True)
        d_st.backward()
        self.opt.step()
        self.sched.step()
        self.step += 1
        require_finite(self.net.named_parameters(), self.step, self.out)
        grad_norm = float(rec["grad_norm"].mean()) if cfg.steps else 0.0
        return {"d_st": float(d_st.detach()), "r_t": r_t_paper_units(grad_norm, cfg.eps), "grad_norm": grad_norm,
                "energy_data": float(u_pos.detach()), "energy_samples": float(u_neg.detach())}

    def train_step(self) -> dict:
        rec = self.update()
        rec.update(lr=self.sched.get_last_lr()[0], wall_time_s=self.wall_time())
        return rec

    def postfix(self, rec: dict) -> dict:
        return {"d_st": f"{rec['d_st']:.3g}", "r_t": f"{rec['r_t']:.3g}"}

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_tensors(self) -> dict:
        return dict(self.net.state_dict())

    def checkpoint_state(self) -> dict:
        return {"opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "data_gen": self.data_gen.get_state(), "chain_gen": self.chain_gen.get_state(),
                "bank": None if self.bank is None else self.bank.state_dict()}

    def restore(self, tensors: dict, state: dict) -> None:
        self.net.load_state_dict(tensors)
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        set_generator_state(self.data_gen, state["data_gen"])
        set_generator_state(self.chain_gen, state["chain_gen"])
        if self.bank is not None:
            self.bank.load_state_dict(state["bank"])


def train_or_resume(cfg: EBMConfig, data: Tensor | None = None, progress: bool = True) -> EBMTrainer:
    """Train ``cfg`` in ``cfg.out_dir``, continuing from its checkpoint if there is one (a finished
    run is loaded, not retrained)."""
    trainer = EBMTrainer(cfg, data)
    trainer.resume()
    if trainer.step < cfg.updates:
        trainer.run(progress=progress)
    return trainer


def load_ebm(path: str | Path, device: str = "cpu") -> tuple[EnergyNet, EBMConfig]:
    """The net and config of ``net.safetensors``; DataError-like ValueError on a corrupt file."""
    tensors, meta = read_weights(path, "EBM", device)
    cfg = dataclasses.replace(EBMConfig(**json.loads(meta["config"])), device=device)
    net = build_net(cfg)
    net.load_state_dict(tensors)
    return net, cfg


def long_run(net: EnergyNet, x0: Tensor, steps: int, eps: float, generator: torch.Generator, mala: bool = False,
             record_every: int = 1) -> tuple[Tensor, pd.DataFrame]:
    """Long-run sampling from a learned energy (spec "Diagnostics"): returns the final states and a
    tidy per-step record (step, energy, grad_norm, accept)."""
    x, rec = run_langevin(net, x0, steps, eps, generator, mala=mala, record_every=record_every)
    return x, pd.DataFrame({k: v.numpy() for k, v in rec.items()})
