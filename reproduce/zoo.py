"""The model zoo: the binary MNIST / Fashion-MNIST DBMs of slide 25 (data set x method x seed),
trained once and shared by fig25 (which owns them: its ``--force`` retrains them), fig26, fig27
and ebm_anatomy_mnist (which reuse them when their key matches).

A zoo model is a training cell of ``dbm.cells`` (kind "zoo"): its key is the training settings
(``ZooConfig``), the data set, method and seed; its identity downstream is the hash of its
``model.safetensors`` (``model_hash``), which every evaluation cell includes in its key.
Methods are presets of ``dbm.presets``; "pcd-pretrained" adds greedy layer-wise pretraining.
"""
from __future__ import annotations

import dataclasses

import torch

from dbm.cells import CellCache, file_hash
from dbm.data import load_images
from dbm.encoding import encode
from dbm.presets import PRESETS, caps
from dbm.train import TrainConfig, Trainer

__all__ = ["KIND", "METHODS", "HELD_OUT", "ZooConfig", "PROFILES", "zoo_config", "binary_data", "train",
           "run_path", "model_hash"]

KIND = "zoo"
HELD_OUT = 1000                           # the first test images: the held-out set of the training logs
METHODS = ("ucd-mh-lmi", "ucd-gibbs", "cd", "pcd", "pcd-pretrained")


@dataclasses.dataclass(frozen=True)
class ZooConfig:
    """What a zoo model's training depends on (its cache key)."""
    hidden: tuple = (500, 500)
    batch_size: int = 100
    updates: int = 2000
    lr: float = 1e-2
    gamma: float = 1e-3
    train_limit: int = 0
    pretrain_updates: int = 2000          # for the methods that pretrain (pcd-pretrained)
    gibbs_max_steps: int = 10             # cap on UCD-Gibbs's tau


PROFILES = {
    "quick": dict(hidden=(64, 64), updates=60, train_limit=2000, pretrain_updates=100),
    "budget": {},
    "paper": dict(hidden=(784, 784), batch_size=1000, updates=1_000_000, pretrain_updates=20_000, gibbs_max_steps=100),
}


def zoo_config(source=None, profile: str | None = None) -> ZooConfig:
    """The zoo settings: the fields of ``source`` (any config with the same field names, e.g.
    fig25's), or the named profile's."""
    if source is not None:
        return ZooConfig(**{f.name: getattr(source, f.name) for f in dataclasses.fields(ZooConfig)})
    return ZooConfig(**PROFILES[profile or "budget"])


def binary_data(ds: str, data_dir, train_limit: int, test_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The binarised training set (first ``train_limit`` images, 0: all) and the first ``test_n``
    test images."""
    imgs = load_images(ds, "train", data_dir)
    train = encode(imgs[:train_limit] if train_limit else imgs, "binary")
    return train, encode(load_images(ds, "test", data_dir)[:test_n], "binary")


def train(cache: CellCache, zcfg: ZooConfig, dataset: str, method: str, seed: int, train: torch.Tensor,
          test: torch.Tensor, device: str = "cpu", owned: bool = False):
    """Train (or resume, or reuse) one zoo model -> (Trainer, its metrics as tidy rows).

    train : ``binary_data``'s training set for ``zcfg.train_limit``; test : its test images, of
    which the first ``HELD_OUT`` (all, in a smaller test set) are the logged held-out set.
    owned : the calling script owns the zoo (fig25: ``--force`` retrains it)."""
    out = cache.run_dir(KIND, _inputs(zcfg, dataset, method, seed), owned)
    u = zcfg.updates
    tcfg = TrainConfig(dataset=dataset, hidden=tuple(zcfg.hidden), estimator=method,
                       estimator_options=caps(method, gibbs_max_steps=zcfg.gibbs_max_steps), lr=zcfg.lr,
                       gamma=zcfg.gamma, batch_size=zcfg.batch_size, updates=u, seed=seed,
                       log_every=max(1, u // 50), eval_every=max(1, u // 10), ckpt_every=max(1, u // 5),
                       pretrain_updates=zcfg.pretrain_updates if PRESETS[method].pretrain else 0,
                       out_dir=str(out), device=device)
    t = Trainer(tcfg, data=train, eval_data=test[:HELD_OUT])
    t.resume()
    return t, t.run(progress=False)


def _inputs(zcfg: ZooConfig, dataset: str, method: str, seed: int) -> dict:
    return dict(dataclasses.asdict(zcfg), dataset=dataset, method=method, seed=seed)


def run_path(cache: CellCache, zcfg: ZooConfig, dataset: str, method: str, seed: int):
    """The run folder of a zoo model (it exists once the model has been trained)."""
    return cache.run_path(KIND, _inputs(zcfg, dataset, method, seed))


def model_hash(trainer: Trainer) -> str:
    """The identity of a trained model: the hash of its published weights."""
    return file_hash(trainer.out / trainer.WEIGHTS)
