"""The suite's classifier: a small CNN per data set, trained here and cached on disk.

It serves two measurements and is always labelled as the suite's classifier (never as FID):
- the accuracy of the classifier on generated or inpainted images against their true label
  (fig27);
- the classifier Frechet distance, from its 128-d penultimate features (``features``), used like
  Inception's pool features in FID (``dbm.metrics.frechet``).

Inputs are the DBM's visible vectors: (B, n_0) in the data set's encoding ("binary": pixels in
{0, 1}; "8bit": 8 bits per pixel, decoded to [0, 1]); the classifier is trained on the training
split in the same encoding, so completions are judged in the domain they live in.

Architecture: conv3x3(32) - ReLU - maxpool2 - conv3x3(64) - ReLU - maxpool2 - linear(128) - ReLU -
linear(10). Adam, ``epochs`` passes over the training set in a generator-drawn order.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn

from ..data import DataError, load_images, load_labels
from ..nninit import seeded
from ..encoding import decode, model_view
from ..provenance import seed_hash

__all__ = ["ClassifierConfig", "SmallCNN", "to_images", "train_classifier", "load_or_train", "accuracy"]

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    dataset: str = "mnist"
    encoding: str = "binary"          # the DBM's visible encoding: "binary" or "8bit"
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    train_limit: int = 0              # first N training images (0: all)
    seed: int = 0

    def key(self) -> str:
        return f"{self.dataset}-{self.encoding}-{seed_hash(json.dumps(dataclasses.asdict(self), sort_keys=True)):08x}"


class SmallCNN(nn.Module):
    """(B, C, H, W) images in [0, 1] -> (B, 10) logits; ``features`` gives the (B, 128) penultimate."""

    def __init__(self, shape: tuple[int, int, int], generator: torch.Generator, classes: int = 10):
        super().__init__()
        c, h, w = shape
        self.body, self.head = seeded(lambda: nn.ModuleList([nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU()), nn.Linear(128, classes)]), generator)
        self.shape = shape

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def to_images(v: Tensor, dataset: str, encoding: str) -> Tensor:
    """Visible vectors (B, n_0) -> float images (B, C, H, W) in [0, 1]; clear error on a wrong size."""
    shape = SHAPES[dataset]
    n = shape[0] * shape[1] * shape[2]
    want = n if encoding == "binary" else 8 * n
    if v.ndim != 2 or v.shape[1] != want:
        raise ValueError(f"{dataset} {encoding} visible vectors must have shape (B, {want}), got {tuple(v.shape)}")
    return decode(v, encoding, shape)                   # CIFAR pixels are channel-major (C, H, W)


@contextlib.contextmanager
def one_cpu_thread(device: str):
    """Run the block with one torch CPU thread (restored after) when ``device`` is the CPU."""
    before = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_classifier(cfg: ClassifierConfig, data_dir=None, device: str = "cpu") -> tuple[SmallCNN, dict]:
    """Train on the training split; returns the model and a record with its test accuracy.

    On the CPU the training runs on one thread whatever torch's setting: the weights are then a
    function of the config, the data and the torch build, not of the thread count (1 and 2 threads
    give different weights, so classifier-FD values from two sessions' classifiers could not share
    a table; a fresh cache now retrains the same classifier)."""
    with one_cpu_thread(device):
        return _train(cfg, data_dir, device)


def _train(cfg: ClassifierConfig, data_dir, device: str) -> tuple[SmallCNN, dict]:
    g = torch.Generator().manual_seed(seed_hash("classifier", cfg.key()))
    x = load_images(cfg.dataset, "train", data_dir)
    y = load_labels(cfg.dataset, "train", data_dir)
    if cfg.train_limit:
        x, y = x[:cfg.train_limit], y[:cfg.train_limit]
    x = model_view(x, cfg.encoding)
    net = SmallCNN(SHAPES[cfg.dataset], g).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            loss = nn.functional.cross_entropy(net(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    xt = model_view(load_images(cfg.dataset, "test", data_dir), cfg.encoding)
    acc = float(accuracy(net, xt, load_labels(cfg.dataset, "test", data_dir)).mean())
    return net, {"config": dataclasses.asdict(cfg), "test_accuracy": acc, "train_wall_s": time.perf_counter() - t0,
                 "torch": torch.__version__, "threads": torch.get_num_threads() if torch.device(device).type == "cpu" else None}


@torch.no_grad()
def predict(net: SmallCNN, x: Tensor, batch: int = 1000) -> Tensor:
    """(B, C, H, W) -> (B,) predicted labels, in batches on the net's device."""
    dev = next(net.parameters()).device
    return torch.cat([net(x[i:i + batch].to(dev)).argmax(-1).cpu() for i in range(0, len(x), batch)])


def accuracy(net: SmallCNN, x: Tensor, labels: Tensor) -> Tensor:
    """(B,) 1.0 where the predicted label is the true one."""
    return (predict(net, x) == labels.cpu()).float()


KIND, VERSION = "classifier", "1"          # the classifiers' cells in the result cache


def load_or_train(cfg: ClassifierConfig, cache_dir: str | os.PathLike = "runs/classifiers", data_dir=None,
                  device: str = "cpu") -> tuple[SmallCNN, dict]:
    """The classifier for ``cfg``, trained on first use: a cell of the one result cache
    (``dbm.result_cache``, kind "classifier" under ``cache_dir``), keyed like every cell by its
    inputs (the config) and the code version. Never forced: the classifiers are shared by every
    script, as the zoo's models are by fig26 and fig27. A classifier cached by an earlier version
    as ``<cache_dir>/<cfg.key()>.safetensors`` is adopted with its weights unchanged, so the
    Frechet-distance cells keyed by its weights stay valid."""
    from ..result_cache import CellCache
    legacy = Path(cache_dir) / f"{cfg.key()}.safetensors"

    def compute():
        net, record = _read_legacy(legacy, cfg) if legacy.exists() else train_classifier(cfg, data_dir, device)
        return (pd.DataFrame([{"record": json.dumps(record)}]),
                {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})

    cell = CellCache(cache_dir, version=VERSION).cell(KIND, dataclasses.asdict(cfg), compute, owned=False)
    net = SmallCNN(SHAPES[cfg.dataset], torch.Generator().manual_seed(0))
    try:
        net.load_state_dict(cell.arrays)
        record = json.loads(cell.rows.record.iloc[0])
    except (RuntimeError, KeyError, AttributeError, IndexError, ValueError) as e:
        raise DataError(f"{cell.meta.get('key')}: the cached classifier under {cache_dir} is damaged ({e}); "
                        "delete its files to retrain it") from None
    net.eval()
    return net.to(device), record


def _read_legacy(path: Path, cfg: ClassifierConfig) -> tuple[SmallCNN, dict]:
    """A classifier file of the earlier cache layout: weights with the training record."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
    net = SmallCNN(SHAPES[cfg.dataset], torch.Generator().manual_seed(0))
    try:
        with safe_open(str(path), framework="pt") as f:
            record = json.loads(f.metadata()["record"])
        net.load_state_dict(load_file(str(path)))
    except (SafetensorError, KeyError, RuntimeError, json.JSONDecodeError, OSError) as e:
        raise DataError(f"{path}: corrupt classifier cache ({e}); delete the file to retrain it") from None
    if record.get("config") != dataclasses.asdict(cfg):
        raise DataError(f"{path}: cached classifier was trained with {record.get('config')}, not {cfg}; "
                        "delete the file to retrain it")
    return net, record
