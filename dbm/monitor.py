"""What a DBM training run watches besides its loss (``dbm.train.Trainer`` holds one of each):

- ``CorrectionMonitor``: the share of the last W minibatches in which any coupled chain of either
  phase had a correction (tau > 1), with a warning once a full window falls below a threshold:
  below it most updates are the uncorrected pi0 term, the regime where the unbiased estimator
  behaves like a biased one (docs/training.md).
- ``CapCounter``: every update's cap hits (tau, local-search sweeps, residual tries, per phase),
  summed on the device and read only when a record is logged, so a cap that fires between two
  logged updates is still counted (issue 33).
- ``RunOutputs``: what a run writes besides its log and checkpoints: the optional TensorBoard
  mirror of ``metrics.csv`` (``tensorboard_writer``) and the local-mode sample grids (PNG).

Each keeps its checkpoint state under the keys older checkpoints use (``corrections``,
``correction_warned``, ``cap_totals``), so runs resume across the move out of the trainer.
"""
from __future__ import annotations

import collections
import warnings
from pathlib import Path

import torch

from .errors import ConfigError
from .provenance import seed_hash

__all__ = ["CAPS", "CAP_TOTALS", "COUPLED", "CorrectionMonitor", "CapCounter", "RunOutputs", "tensorboard_writer"]

COUPLED = ("ucd-mh-lmi", "ucd-gibbs")     # estimators whose minibatch gradient has correction terms
CAPS = ("tau", "sweeps", "residual")       # the caps an estimator's PhaseInfo counts
CAP_TOTALS = tuple(f"{p}_{c}_capped_total" for p in ("pos", "neg") for c in CAPS)   # their logged running totals


class CorrectionMonitor:
    """The windowed share of minibatches with a correction; ``active`` False for estimators
    without coupled chains (``share`` is then None)."""

    def __init__(self, estimator: str, window: int, warn_below: float):
        self.estimator, self.window, self.warn_below = estimator, int(window), float(warn_below)
        self.active = estimator in COUPLED
        self.flags: collections.deque = collections.deque(maxlen=self.window)
        self.warned = False

    def record(self, info) -> None:
        """Add one update's flag (a 0-d device tensor: no host sync until it is logged)."""
        if self.active:
            self.flags.append((info.pos.tau > 1).any() | (info.neg.tau > 1).any())

    def share(self, step: int, device) -> float | None:
        """The share over the window (None without coupled chains); warns once when a full window
        is below ``warn_below``."""
        if not self.active or not self.flags:
            return None
        share = float(torch.stack([torch.as_tensor(c, device=device) for c in self.flags]).float().mean())
        if len(self.flags) == self.window and share < self.warn_below and not self.warned:
            self.warned = True
            warnings.warn(f"update {step}: only {share:.0%} of the last {self.window} minibatches had a "
                          f"correction (tau > 1); most updates use the uncorrected local-mode term alone, so "
                          f"{self.estimator} is effectively biased per minibatch here (docs/training.md)", stacklevel=3)
        return share

    def state_dict(self) -> dict:
        return {"corrections": [bool(c) for c in self.flags], "correction_warned": self.warned}

    def load_state_dict(self, state: dict) -> None:
        self.flags.extend(state.get("corrections", []))       # restored entries are bools
        self.warned = bool(state.get("correction_warned", False))


class CapCounter:
    """Running totals {``CAP_TOTALS`` name: 0-d device tensor} of every update's cap hits."""

    def __init__(self):
        self.totals: dict = {}

    def count(self, info) -> None:
        for phase, ph in (("pos", info.pos), ("neg", info.neg)):
            for name, hits in zip(CAPS, (ph.capped, ph.sweeps_capped, ph.residual_capped)):
                if hits is not None:
                    key = f"{phase}_{name}_capped_total"
                    self.totals[key] = self.totals.get(key, 0) + hits.sum()

    def record(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.totals.items()}

    def state_dict(self) -> dict:
        return {"cap_totals": {k: int(v) for k, v in self.totals.items()}}

    def load_state_dict(self, state: dict, device) -> None:
        self.totals = {k: torch.tensor(int(v), device=device) for k, v in state.get("cap_totals", {}).items()}


def tensorboard_writer(out: Path, step: int):
    """A SummaryWriter on <out>/tb, continuing after ``step`` (TensorBoard is an optional viewer of
    metrics.csv); ConfigError naming the package when it is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard "
                          "(or pip install -e '.[tb]')") from None
    return SummaryWriter(str(out / "tb"), purge_step=step + 1 if step else None)


class RunOutputs:
    """The TensorBoard mirror (when ``tensorboard``) and the sample grids of one run, written by
    rank 0 alone; grids only for binary encodings of image-shaped visible layers."""

    def __init__(self, out: Path, seed: int, rank: int, tensorboard: bool, grids: bool, image_shape: tuple | None):
        self.out, self.seed, self.rank, self.tensorboard = out, seed, rank, tensorboard
        self.image_shape = image_shape if grids and rank == 0 else None
        self.tb = None

    def open(self, step: int) -> None:
        if self.tensorboard and self.rank == 0:
            self.tb = tensorboard_writer(self.out, step)

    def log(self, rec: dict, step: int) -> None:
        if self.tb is not None:
            for k, v in rec.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None

    def sample_grids(self, model, step: int, n: int = 64) -> None:
        """``dbm.metrics.samples.save_sample_grids`` at ``samples_<kind>_<step>.png``."""
        if self.image_shape is None:
            return
        from .metrics.samples import save_sample_grids
        g = torch.Generator(device=model.weights[0].device).manual_seed(seed_hash("samples", self.seed, step))
        save_sample_grids(model, n, self.image_shape, g, str(self.out / f"samples_{{kind}}_{step:07d}.png"))
