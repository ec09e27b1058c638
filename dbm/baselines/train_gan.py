"""Training the WGAN-GP / WGAN baselines (``python -m dbm train-gan ...``), like the DBM trainer.

Same data (binary threshold 0.5 as the DBMs, or "8bit": the plain pixel values), batches drawn
with replacement, tidy ``metrics.csv`` (step, metric, value: Wasserstein estimate, gradient
penalty, generator loss, wall time), checkpoints every ``ckpt_every`` generator steps by the run
layer (``dbm.run``: both networks, optimizers, step and every generator state, one atomic unit;
the newest weights published as ``model.safetensors``) and exact resume. Samples for evaluation: ``sample(n, generator)`` returns
images in [0, 1], thresholded at 0.5 for the binary encoding (the DBM's domain).

Training to the plateau (issue 13): with ``fd_every`` the classifier-Frechet distance of
``fd_n`` generator samples to the test split is logged every ``fd_every`` generator steps
(``classifier_fd``; the suite's CNN, ``dbm.metrics.classifier``; the samples drawn with a
generator seeded by the step, so the trace does not touch the training randomness and resume
stays exact). With ``stop_on_plateau`` training stops at the first evaluation, at or after
``min_steps``, where that trace is flat over its last ``plateau_tail`` by the converged
profile's test (``dbm.metrics.convergence.Plateau``) with at least ``plateau_points``
evaluations in the window; ``steps`` is the cap, and a run that reaches it is reported as
capped (``stop_reason``), never as converged.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

import torch

from ..config import check_config, check_device
from ..data import load_images
from ..encoding import model_view
from ..metrics.convergence import Plateau
from ..errors import ConfigError, DataError, DivergenceError
from ..provenance import device_name, seed_hash
from ..run import RunTrainer, check_writable, read_weights, set_generator_state
from .wgan import Z_DIM, build, critic_loss, generator_loss

__all__ = ["GANConfig", "GANTrainer", "load_generator", "classifier_fd_monitor", "default_monitor"]

RECIPES = {  # kind -> optimizer settings of the reference code
    "wgan-gp": dict(lr=1e-4, betas=(0.5, 0.9)),
    "wgan": dict(lr=5e-5),
}


@dataclasses.dataclass(frozen=True)
class GANConfig:
    dataset: str = "mnist"
    data_dir: str | None = None
    kind: str = "wgan-gp"                  # or "wgan" (weight clipping)
    encoding: str = "binary"               # the DBM's data: "binary" (threshold 0.5) or "8bit"
    width: int = 0                         # 0: the recipe's (64 for 28x28, 128 for CIFAR-10)
    batch_size: int = 50
    steps: int = 200_000                   # generator steps
    n_critic: int = 5
    lr: float = 0.0                        # 0: the recipe's (1e-4 WGAN-GP, 5e-5 WGAN)
    lam: float = 10.0                      # gradient-penalty weight
    clip: float = 0.01                     # WGAN weight clipping
    seed: int = 0
    train_limit: int = 0
    log_every: int = 100
    ckpt_every: int = 1000
    out_dir: str = "runs/gan"
    device: str = "cpu"                    # cpu or cuda
    fd_every: int = 0                      # classifier-FD of the generator every this many steps (0: never)
    fd_n: int = 2000                       # generator samples per classifier-FD
    stop_on_plateau: bool = False          # stop when the classifier-FD trace is flat (module docstring)
    min_steps: int = 0                     # no plateau stop before this step
    plateau_tail: float = 0.2              # the trace's window for the flatness test
    plateau_points: int = 5                # evaluations the window must hold
    classifier_dir: str = "runs/classifiers"   # the suite classifier's cache (trained on first use)

    CHOICES = {"dataset": ("mnist", "fashion-mnist", "cifar10"), "kind": tuple(RECIPES),
               "encoding": ("binary", "8bit")}

    def __post_init__(self):
        check_config(self, positive_int=("batch_size", "steps", "n_critic", "log_every", "ckpt_every", "fd_n",
                                         "plateau_points"),
                     nonneg_int=("width", "train_limit", "fd_every", "min_steps"), nonneg=("lr", "lam"),
                     positive=("clip",), choices=self.CHOICES)
        check_device(self.device)
        if not 0 < self.plateau_tail <= 1:
            raise ConfigError(f"plateau_tail must be in (0, 1], got {self.plateau_tail}")
        if self.stop_on_plateau and not self.fd_every:
            raise ConfigError("stop_on_plateau needs fd_every > 0: the plateau is judged on the classifier-FD trace")


RESUME_MUST_MATCH = ("dataset", "kind", "encoding", "width", "batch_size", "n_critic", "lr", "lam", "clip",
                     "seed", "train_limit", "fd_every", "fd_n", "stop_on_plateau", "min_steps", "plateau_tail",
                     "plateau_points")


def images_for(dataset: str, encoding: str, data_dir=None, limit: int = 0, split: str = "train") -> torch.Tensor:
    """(N, C, H, W) float images in [0, 1] in the DBM's encoding."""
    x = load_images(dataset, split, data_dir)
    return model_view(x[:limit] if limit else x, encoding)


def classifier_fd_monitor(extractor, reference, n: int) -> Callable[["GANTrainer"], float]:
    """``monitor(trainer)``: the Frechet distance between ``extractor``'s features of ``n``
    generator samples and the ``reference`` statistics; the samples come from a generator seeded
    by the run's seed and step, never from the training generator."""
    from ..metrics.extractors import feature_stats
    from ..metrics.frechet import frechet_distance

    def monitor(t: "GANTrainer") -> float:
        g = torch.Generator(device=t.cfg.device).manual_seed(seed_hash("gan-fd", t.cfg.seed, t.step))
        return frechet_distance(feature_stats(extractor, lambda b: t.sample(b, g), n), reference)
    return monitor


def default_monitor(cfg: GANConfig) -> Callable[["GANTrainer"], float]:
    """The suite classifier's FD to the whole test split (classifier and reference statistics
    cached under ``cfg.classifier_dir``, the classifier trained there on first use)."""
    from ..metrics import extractors as F
    from ..metrics.classifier import ClassifierConfig, load_or_train
    clf, _ = load_or_train(ClassifierConfig(dataset=cfg.dataset, encoding=cfg.encoding), cfg.classifier_dir,
                           cfg.data_dir, cfg.device)
    ext = F.classifier_extractor(clf, cfg.device)
    test = images_for(cfg.dataset, cfg.encoding, cfg.data_dir, 0, "test")
    ref = F.feature_stats_cached(ext, test, Path(cfg.classifier_dir) / "refs",
                                 dict(dataset=cfg.dataset, split="test", encoding=cfg.encoding))
    return classifier_fd_monitor(ext, ref, cfg.fd_n)


class GANTrainer(RunTrainer):
    """Holds both networks, optimizers and generators of one run; ``run()`` trains.
    ``monitor(trainer) -> float``: the classifier-FD of the plateau rule (``fd_every``); by
    default ``default_monitor(cfg)``."""
    WEIGHTS, MUST_MATCH = "model.safetensors", RESUME_MUST_MATCH
    CPU_GEN_BYTES = torch.Generator().get_state().numel()    # older checkpoints: the device from the state's size

    def __init__(self, cfg: GANConfig, data: torch.Tensor | None = None,
                 monitor: Callable[["GANTrainer"], float] | None = None):
        self.DESC = cfg.kind
        self._init_run(cfg)
        check_writable(cfg.out_dir)
        dev = cfg.device
        self.data = (images_for(cfg.dataset, cfg.encoding, cfg.data_dir, cfg.train_limit) if data is None
                     else data).to(dev)
        shape = tuple(self.data.shape[1:])
        if shape not in ((1, 28, 28), (3, 32, 32)):
            raise DataError(f"the reference architectures take (1, 28, 28) or (3, 32, 32) images, got {shape}")
        if not len(self.data):
            raise DataError("the GAN's training data is empty")
        width = cfg.width or (64 if shape[1] == 28 else 128)
        self.G, self.D = build(shape, width, torch.Generator().manual_seed(seed_hash("gan-init", cfg.seed)))
        self.G.to(dev), self.D.to(dev)
        recipe = dict(RECIPES[cfg.kind], **({"lr": cfg.lr} if cfg.lr else {}))
        if cfg.kind == "wgan-gp":
            self.opt_g = torch.optim.Adam(self.G.parameters(), **recipe)
            self.opt_d = torch.optim.Adam(self.D.parameters(), **recipe)
        else:
            self.opt_g = torch.optim.RMSprop(self.G.parameters(), **recipe)
            self.opt_d = torch.optim.RMSprop(self.D.parameters(), **recipe)
        self.gen = torch.Generator(device=dev).manual_seed(seed_hash("gan", cfg.seed))
        self.monitor = monitor if monitor is not None or not cfg.fd_every else default_monitor(cfg)
        self.plateau = Plateau(cfg.stop_on_plateau, cfg.min_steps, cfg.plateau_tail, cfg.plateau_points)
        self.trained_on = device_name(dev)                    # kept through resume (restore)

    @property
    def total(self) -> int:
        return self.cfg.steps

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_tensors(self) -> dict:
        return {f"{k}.{n}": t for k, net in (("G", self.G), ("D", self.D)) for n, t in net.state_dict().items()}

    def checkpoint_meta(self) -> dict:
        return {"shape": json.dumps(self.G.shape), "width": str(self.G.width)}

    def checkpoint_state(self) -> dict:
        return {"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "gen": self.gen.get_state(),
                "gen_device": self.gen.device.type, "trained_on": self.trained_on, **self.plateau.state_dict()}

    def restore(self, tensors: dict, state: dict) -> None:
        """Exact resume needs the device the run trained on (a CUDA generator's state is not a
        CPU one's); a *finished* run (plateau or cap) loads on any device for evaluation, its
        training random stream left unused, and keeps ``trained_on``."""
        saved = state.get("gen_device") or ("cpu" if state["gen"].numel() == self.CPU_GEN_BYTES else "cuda")
        done = state.get("plateau", False) or int(state["step"]) >= self.cfg.steps
        if saved != self.gen.device.type and not done:
            raise ConfigError(f"{self.out} was trained on {saved} and is unfinished (step {int(state['step'])} of "
                              f"{self.cfg.steps}): resume it on {saved} (--device {saved}); exact resume needs "
                              "that device's random stream")
        _load_nets(self.G, self.D, tensors)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if saved == self.gen.device.type:
            set_generator_state(self.gen, state["gen"])
        self.trained_on = state.get("trained_on", self.trained_on)
        self.plateau.load_state_dict(state)

    # ------------------------------------------------------------------ training
    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, Z_DIM, generator=self.gen, device=self.cfg.device)

    def update(self) -> dict:
        """n_critic critic steps then one generator step."""
        cfg, b = self.cfg, self.cfg.batch_size
        self.G.train()
        for _ in range(cfg.n_critic):
            real = self.data[torch.randint(0, len(self.data), (b,), generator=self.gen, device=self.data.device)]
            with torch.no_grad():
                fake = self.G(self._noise(b))
            u = torch.rand(b, generator=self.gen, device=self.data.device) if cfg.kind == "wgan-gp" else None
            loss, info = critic_loss(self.D, real, fake, u, cfg.lam)
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            if cfg.kind == "wgan":
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-cfg.clip, cfg.clip)
        g_loss = generator_loss(self.D, self.G(self._noise(b)))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.step += 1
        info["generator_loss"] = float(g_loss.detach())
        if not all(math.isfinite(v) for v in info.values()):
            raise DivergenceError(f"{cfg.kind} losses became NaN/inf at step {self.step}: {info}; "
                                  f"the last good checkpoint in {self.out} is kept")
        return info

    def train_step(self) -> dict | None:
        info = self.update()
        judge = self.cfg.fd_every and self.step % self.cfg.fd_every == 0
        if judge or self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
            return dict(info, wall_time_s=self.wall_time(), **(self._judge() if judge else {}))
        return None

    def _judge(self) -> dict:
        """Log the classifier-FD at this step and apply the plateau rule; the trace's drift is logged too."""
        return self.plateau.observe(self.step, float(self.monitor(self)))

    def finished(self) -> bool:
        return self.plateau.reached

    @property
    def fd_trace(self) -> list[tuple[int, float]]:
        return self.plateau.trace

    def summary(self) -> dict:
        """How the run ended (``Plateau.summary``), the steps trained and the device it trained on."""
        return dict(steps_trained=self.step, **self.plateau.summary(self.step, self.cfg.steps),
                    trained_on=self.trained_on)

    def postfix(self, rec: dict) -> dict:
        return {"W": f"{rec['wasserstein']:.3g}", **({"FD": f"{rec['classifier_fd']:.3g}"}
                                                      if "classifier_fd" in rec else {})}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return sample(self.G, n, generator, self.cfg.encoding)


@torch.no_grad()
def sample(G, n: int, generator: torch.Generator, encoding: str = "binary") -> torch.Tensor:
    """(n, C, H, W) images in [0, 1]; thresholded at 0.5 for the binary encoding."""
    G.eval()
    x = G(torch.randn(n, Z_DIM, generator=generator, device=generator.device))
    return (x > 0.5).float() if encoding == "binary" else x


def _load_nets(G, D, tensors: dict) -> None:
    """Load the "G.*" and "D.*" entries of a checkpoint's tensors into the two networks."""
    G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
    D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")})


def load_generator(path, device: str = "cpu", with_critic: bool = False):
    """The generator (and critic) saved in a run's ``model.safetensors``."""
    tensors, meta = read_weights(path, "GAN", device)
    G, D = build(tuple(json.loads(meta["shape"])), int(meta["width"]), torch.Generator().manual_seed(0))
    _load_nets(G, D, tensors)
    G.to(device), D.to(device)
    return (G, D) if with_critic else G
