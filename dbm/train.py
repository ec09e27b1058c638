"""Training a DBM end to end with any estimator (``python -m dbm train ...``).

One update: draw a batch with replacement (as the authors do), ``loss, info = est.loss(...)``,
backward, optimizer step, lr schedule lr / sqrt(1 + gamma t) (spec §3). Every ``ckpt_every``
updates the run folder gets ``model.safetensors`` (weights, config as metadata) and
``state.pt`` (optimizer, scheduler, step, every RNG state and the estimator's chains), written
atomically; ``resume=True`` continues a killed run and reaches the same parameters as an
uninterrupted one on CPU. NaN/inf stops the run with a message and keeps the last good checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import pandas as pd
import torch

from . import exact
from .checkpoint import append_metrics, trim_metrics
from .data import load_images
from .encoding import encode_8bit, encode_binary
from .estimators import estimator as make_estimator
from .model import DBM
from .results import seed_hash
from .samplers import draw_uniforms, gibbs_update, local_mode

__all__ = ["TrainConfig", "Trainer", "DivergenceError", "check_resume_config", "load_model", "sample_images"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    data_dir: str | None = None
    encoding: str = "binary"                # or "8bit"
    stochastic_binarize: bool = False
    hidden: tuple = (784, 784)              # widths of h1..hL
    estimator: str = "ucd-mh-lmi"
    estimator_options: str = "{}"           # JSON, e.g. '{"marginalize": true}'
    optimizer: str = "sgd"                  # or "adam"
    lr: float = 1e-2
    gamma: float = 1e-3                     # lr_t = lr / sqrt(1 + gamma t)
    batch_size: int = 1000
    updates: int = 1000
    seed: int = 0
    train_limit: int = 0                    # use the first N training images (0: all)
    log_every: int = 10
    eval_every: int = 100
    ckpt_every: int = 100
    sample_every: int = 0                   # 0: only at the end
    tensorboard: bool = False               # also write the logged metrics to <out_dir>/tb (pip install tensorboard)
    pretrain_updates: int = 0               # greedy layer-wise RBM updates per layer (0: none)
    pretrain_lr: float = 0.05
    out_dir: str = "runs/train"
    device: str = "cpu"


# settings a resumed run must share with its checkpoint (updates, logging, paths and device may change)
RESUME_MUST_MATCH = ("dataset", "encoding", "stochastic_binarize", "hidden", "estimator", "estimator_options",
                     "optimizer", "lr", "gamma", "batch_size", "seed", "train_limit", "pretrain_updates",
                     "pretrain_lr")


class DivergenceError(RuntimeError):
    """Parameters or the loss became NaN/inf; the last good checkpoint is kept."""


def check_resume_config(saved: dict, now: dict, keys, out) -> None:
    """ValueError naming every setting in ``keys`` where a checkpoint and the current run differ."""
    diff = {k: (saved[k], now[k]) for k in keys if k in saved and saved[k] != now[k]
            and not (isinstance(now[k], tuple) and list(now[k]) == list(saved[k]))}
    if diff:
        raise ValueError(f"{out}: the checkpoint was written with other settings (saved, now): {diff}; "
                         "use another out_dir or start afresh")


def encode(images: torch.Tensor, cfg: TrainConfig, generator=None) -> torch.Tensor:
    if cfg.encoding == "binary":
        return encode_binary(images, generator=generator if cfg.stochastic_binarize else None)
    if cfg.encoding == "8bit":
        return encode_8bit(images)
    raise ValueError(f"encoding must be 'binary' or '8bit', got {cfg.encoding!r}")


def _state_dict_tensors(model: DBM) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_model(model: DBM, path: Path, cfg: TrainConfig, step: int) -> None:
    from safetensors.torch import save_file
    meta = {"config": json.dumps(dataclasses.asdict(cfg)), "layer_sizes": json.dumps(model.layer_sizes),
            "step": str(step), "centered": str(model.centered)}
    tmp = path.with_name(".tmp-" + path.name)
    save_file(_state_dict_tensors(model), str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_model(path: str | Path, device: str = "cpu") -> tuple[DBM, dict]:
    """A model and its metadata from ``model.safetensors``."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    model = DBM(json.loads(meta["layer_sizes"]), init="zeros", device=device)
    model.load_state_dict(load_file(str(path), device=device))
    model.centered = meta.get("centered") == "True"
    return model, meta


@torch.no_grad()
def sample_images(model: DBM, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The authors' samples: the visible part of a local mode from a uniform start ("mode") and
    of one T = 1 sweep after it ("random"). Neither is a long-run MCMC sample."""
    xs = model.random_state(n, generator)
    mode, _ = local_mode(model, xs)
    swept, _ = gibbs_update(model, mode, draw_uniforms(model, n, generator))
    return {"mode": mode[0], "random": swept[0]}


class Trainer:
    """Holds the model, optimizer, generators and estimator of one run; ``run()`` trains."""

    def __init__(self, cfg: TrainConfig, data: torch.Tensor | None = None, eval_data=None,
                 rank: int = 0, world: int = 1):
        self.cfg, self.rank, self.world = cfg, rank, world
        self.out = Path(cfg.out_dir)
        dev = cfg.device
        if data is None:
            images = load_images(cfg.dataset, "train", cfg.data_dir)
            if cfg.train_limit:
                images = images[:cfg.train_limit]
            data = encode(images, cfg, torch.Generator().manual_seed(seed_hash("binarize", cfg.seed)))
            test = load_images(cfg.dataset, "test", cfg.data_dir)[:1000]
            eval_data = encode(test, cfg, torch.Generator().manual_seed(seed_hash("binarize-test", cfg.seed)))
        self.data = data.to(dev)
        self.eval_data = None if eval_data is None else eval_data.to(dev)
        sizes = [self.data.shape[1], *cfg.hidden]
        self.model = DBM(sizes, generator=torch.Generator(device=dev).manual_seed(seed_hash("init", cfg.seed)),
                         device=dev)
        self.est = make_estimator(cfg.estimator, **json.loads(cfg.estimator_options))
        params = self.model.parameters()
        self.opt = (torch.optim.SGD(params, lr=cfg.lr) if cfg.optimizer == "sgd"
                    else torch.optim.Adam(params, lr=cfg.lr))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda t: (1 + cfg.gamma * t) ** -0.5)
        self.data_gen = torch.Generator(device=dev).manual_seed(seed_hash("batches", cfg.seed, rank))
        self.chain_gen = torch.Generator(device=dev).manual_seed(seed_hash("chains", cfg.seed, rank))
        self.forward = self.model          # dbm.distributed replaces it by a DDP wrapper
        self.step = 0
        self.rows: list[dict] = []

    # ------------------------------------------------------------------ checkpoints
    def estimator_state(self) -> dict:
        return {k: v for k, v in vars(self.est).items() if k in ("chains", "_warm")}

    def save(self) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        save_model(self.model, self.out / "model.safetensors", self.cfg, self.step)
        state = {"step": self.step, "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                 "data_gen": self.data_gen.get_state(), "chain_gen": self.chain_gen.get_state(),
                 "estimator": self.estimator_state(), "config": dataclasses.asdict(self.cfg)}
        tmp = self.out / ".tmp-state.pt"
        torch.save(state, tmp)
        os.replace(tmp, self.out / "state.pt")
        self._flush_metrics()

    def resume(self) -> bool:
        """Load the last checkpoint of ``out_dir`` if there is one; True if resumed."""
        if not (self.out / "state.pt").exists():
            return False
        model, _ = load_model(self.out / "model.safetensors", self.cfg.device)
        self.model.load_state_dict(model.state_dict())
        state = torch.load(self.out / "state.pt", map_location=self.cfg.device, weights_only=False)
        check_resume_config(state.get("config", {}), dataclasses.asdict(self.cfg), RESUME_MUST_MATCH, self.out)
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.data_gen.set_state(state["data_gen"])
        self.chain_gen.set_state(state["chain_gen"])
        for k, v in state["estimator"].items():
            setattr(self.est, k, v)
        self.step = state["step"]
        trim_metrics(self.out, self.step)
        return True

    def _flush_metrics(self) -> None:
        self.rows = append_metrics(self.out, self.rows)

    # ------------------------------------------------------------------ training
    def batch(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.cfg.batch_size // self.world,),
                            generator=self.data_gen, device=self.data.device)
        return self.data[idx]

    def update(self):
        """One training update; returns (loss, info)."""
        loss, info = self.est.loss(self.model, self.batch(), self.chain_gen, forward=self.forward)
        if not torch.isfinite(loss):
            raise DivergenceError(f"loss is {loss.item()} at update {self.step + 1}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.step += 1
        for name, p in self.model.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise DivergenceError(f"parameter {name} became NaN/inf at update {self.step}; "
                                      f"the last good checkpoint in {self.out} is kept")
        return loss, info

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out reconstruction error: v -> mean-field posterior (10 iterations) -> p(v | h1),
        mean absolute error; and the exact -log p(v) when the model can be enumerated."""
        if self.eval_data is None:
            return {}
        m, v = self.model, self.eval_data
        mus = [v] + [torch.full((v.shape[0], n), 0.5, device=v.device, dtype=v.dtype) for n in m.layer_sizes[1:]]
        for _ in range(10):
            for parity in (1, 0):
                for l in m.layers(parity):
                    if l > 0:
                        mus[l] = torch.sigmoid(m.logits(mus, l))
        recon = torch.sigmoid(m.logits(mus, 0))
        out = {"recon_error": float((recon - v).abs().mean())}
        n_even = sum(m.layer_sizes[l] for l in m.layers(0) if l > 0)
        if n_even <= 16 and sum(m.layer_sizes[l] for l in m.layers(0)) <= exact.MAX_ENUM_BITS:
            out["exact_test_nll"] = float(exact.nll(m, v).mean())   # enumerable: exact -log p(v)
        return out

    def run(self, progress: bool = True) -> pd.DataFrame:
        cfg = self.cfg
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if self.step == 0 and cfg.pretrain_updates:
            from .pretrain import pretrain_layerwise
            g = torch.Generator(device=cfg.device).manual_seed(seed_hash("pretrain", cfg.seed, self.rank))
            pretrain_layerwise(self.model, self.data, cfg.pretrain_updates, cfg.batch_size // self.world,
                               cfg.pretrain_lr, g)
        tb = self._tensorboard() if cfg.tensorboard and self.rank == 0 else None
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.updates, initial=self.step, disable=not progress or self.rank != 0,
                   desc="train", dynamic_ncols=True, mininterval=1.0)
        while self.step < cfg.updates:
            loss, info = self.update()
            if self.step % cfg.log_every == 0 or self.step == cfg.updates:
                s = info.summary()
                rec = {"loss": float(loss.detach()), "lr": self.sched.get_last_lr()[0],
                       "wall_time_s": time.perf_counter() - t0, **s}
                if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.updates):
                    rec.update(self.evaluate())
                self.rows += [{"step": self.step, "metric": k, "value": v} for k, v in rec.items()]
                if tb is not None:
                    for k, v in rec.items():
                        tb.add_scalar(k, v, self.step)
                bar.set_postfix(loss=f"{float(loss.detach()):.3g}", T=f"{s['neg_sweeps_mean']:.1f}",
                                tau=f"{s['neg_tau_mean']:.2f}", refresh=False)
            bar.update(1)
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.updates:
                self.save()
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                self.save_samples()
        bar.close()
        if tb is not None:
            tb.close()
        self.save()
        if self.rank == 0:
            self.save_samples()
        return pd.read_csv(self.out / "metrics.csv") if (self.out / "metrics.csv").exists() else pd.DataFrame()

    def _tensorboard(self):
        """A SummaryWriter on <out_dir>/tb (TensorBoard is an optional viewer of metrics.csv)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError("--tensorboard needs the tensorboard package: pip install tensorboard "
                              "(or pip install -e '.[tb]')") from None
        return SummaryWriter(str(self.out / "tb"), purge_step=self.step + 1 if self.step else None)

    def save_samples(self, n: int = 64) -> None:
        if self.rank != 0 or self.cfg.encoding != "binary":
            return
        from torchvision.utils import save_image
        side = int(math.isqrt(self.model.layer_sizes[0]))
        g = torch.Generator(device=self.cfg.device).manual_seed(seed_hash("samples", self.cfg.seed, self.step))
        for kind, v in sample_images(self.model, n, g).items():
            save_image(v.reshape(n, 1, side, side).cpu(), self.out / f"samples_{kind}_{self.step:07d}.png", nrow=8)
