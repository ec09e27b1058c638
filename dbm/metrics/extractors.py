"""Feature extractors for Frechet distances, and the Inception weights handling of FID.

- ``inception_extractor``: pytorch-fid's InceptionV3 (2048-d pool features; inputs (B, C, H, W) in
  [0, 1], grayscale repeated to 3 channels, resized to 299 inside). The weights file
  ``pt_inception-2015-12-05-6726825d.pth`` is taken from an explicit path (argument or
  ``DBM_INCEPTION_WEIGHTS``) or the torch hub cache, checked against its published SHA-256
  prefix, and never replaced by other weights: when it is missing, ``MissingWeightsError`` says
  what to put where. Only this extractor's distance is called FID.
- ``classifier_extractor``: the suite's CNN (``dbm.metrics.classifier``), 128-d penultimate
  features: the "classifier Frechet distance", always labelled as such.
- ``standin_extractor``: a fixed random ConvNet for smoke tests; its numbers mean nothing.

``feature_stats(extractor, source, n)`` accepts a tensor of samples or a function
``source(batch_size) -> samples`` and accumulates float64 statistics batch by batch on the device.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..provenance import file_sha256, state_hash
from .frechet import Stats, accumulate

__all__ = ["WEIGHTS_NAME", "WEIGHTS_URL", "MissingWeightsError", "Extractor", "find_inception_weights",
           "inception_extractor", "classifier_extractor", "standin_extractor", "feature_stats",
           "feature_stats_cached", "file_sha256"]

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
WEIGHTS_SHA256_PREFIX = "6726825d"           # torch hub names files by their SHA-256 prefix


class MissingWeightsError(UserError, FileNotFoundError):
    """The FID Inception weights are not on this machine."""


@dataclass(frozen=True)
class Extractor:
    """name: what the distance is called; dims: D; weights_hash: SHA-256 of the weights;
    fn: (B, C, H, W) in [0, 1] -> (B, D) features."""
    name: str
    dims: int
    weights_hash: str
    fn: Callable[[Tensor], Tensor]

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)


def _hub_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def find_inception_weights(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The weights file and its SHA-256: ``path``, else $DBM_INCEPTION_WEIGHTS, else the hub cache."""
    given = path or os.environ.get("DBM_INCEPTION_WEIGHTS")
    candidates = [Path(given)] if given else [_hub_path()]
    for p in candidates:
        if p.is_file():
            digest = file_sha256(p)
            if not digest.startswith(WEIGHTS_SHA256_PREFIX):
                raise ValueError(f"{p} is not the FID Inception weights: its SHA-256 is {digest[:16]}..., "
                                 f"the published file {WEIGHTS_NAME} has one starting {WEIGHTS_SHA256_PREFIX}")
            return p, digest
    raise MissingWeightsError(
        f"FID needs the Inception weights {WEIGHTS_NAME} (about 91 MiB, SHA-256 starting "
        f"{WEIGHTS_SHA256_PREFIX}; published at {WEIGHTS_URL}). Looked for "
        f"{', '.join(map(str, candidates))}. Download it on a machine with internet and either put it "
        f"at {_hub_path()} or pass --inception-weights FILE / set DBM_INCEPTION_WEIGHTS=FILE.")


def _to_rgb(x: Tensor) -> Tensor:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1 or 3, H, W), got {tuple(x.shape)}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def inception_extractor(weights: str | os.PathLike | None = None, device: str = "cpu") -> Extractor:
    """pytorch-fid's InceptionV3 pool3 features (2048-d) from the local weights file."""
    path, digest = find_inception_weights(weights)
    from pytorch_fid import inception as pfi
    original = pfi.load_state_dict_from_url
    try:                                      # pytorch-fid has no local-path argument: serve the file
        pfi.load_state_dict_from_url = lambda *a, **k: torch.load(path, map_location="cpu", weights_only=True)
        with torch.random.fork_rng(devices=[]):   # torchvision's init draws from the global RNG
            net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval().to(device)
    finally:
        pfi.load_state_dict_from_url = original

    @torch.no_grad()
    def fn(x):
        return net(_to_rgb(x.to(device, torch.float32)))[0].flatten(1)
    return Extractor("inception-fid (pytorch-fid " + _version("pytorch-fid") + ")", 2048, digest, fn)


def classifier_extractor(net: nn.Module, device: str = "cpu") -> Extractor:
    """The suite's classifier's penultimate features; weights hash over its parameters."""
    digest = state_hash(net)
    net = net.to(device).eval()

    @torch.no_grad()
    def fn(x):
        return net.features(x.to(device, torch.float32))
    return Extractor("classifier-frechet (suite CNN, not FID)", 128, digest, fn)


def standin_extractor(channels: int = 1, dims: int = 32, seed: int = 0, device: str = "cpu") -> Extractor:
    """A fixed random ConvNet (smoke tests only)."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(16, channels, 5, 5, generator=g).to(device) / 5
    w2 = torch.randn(dims, 16 * 16, generator=g).to(device) / 16

    @torch.no_grad()
    def fn(x):
        f = torch.relu(nn.functional.conv2d(x.to(device, torch.float32), w1, stride=2))
        return nn.functional.adaptive_avg_pool2d(f, 4).flatten(1) @ w2.T
    return Extractor("stand-in (random ConvNet, not FID)", dims, f"random-seed-{seed}", fn)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    with contextlib.suppress(PackageNotFoundError):
        return version(dist)
    return "unknown"


def feature_stats(extractor: Extractor, source: Tensor | Callable[[int], Tensor], n: int | None = None,
                  batch_size: int = 500, progress: bool = False) -> Stats:
    """Float64 feature statistics of ``n`` images: a tensor (N, C, H, W) in [0, 1], or a function
    ``source(b) -> (b, C, H, W)`` called until n images have been drawn."""
    if isinstance(source, Tensor):
        n = len(source) if n is None else min(n, len(source))
        batches = (source[i:min(i + batch_size, n)] for i in range(0, n, batch_size))
    else:
        if not n:
            raise ValueError("a sample function needs n")
        batches = (source(min(batch_size, n - i)) for i in range(0, n, batch_size))
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, total=-(-n // batch_size), desc=extractor.name.split(" ")[0], leave=False)
    return accumulate(extractor, batches)


def feature_stats_cached(extractor: Extractor, images: Tensor, cache_dir, manifest: dict) -> Stats:
    """Reference statistics as a cell of the one result cache (``dbm.result_cache``, kind
    "feature-stats" under ``cache_dir``): keyed by ``manifest`` (data set, split, preprocessing,
    count) plus the extractor's name and weights hash and the code version; shared, never forced."""
    import numpy as np
    import pandas as pd
    from ..result_cache import CellCache
    manifest = dict(manifest, extractor=extractor.name, weights_hash=extractor.weights_hash, n=len(images))

    def compute():
        st = feature_stats(extractor, images)
        return (pd.DataFrame([{"n": st.n}]),
                {"mu": torch.from_numpy(np.ascontiguousarray(st.mu)), "sigma": torch.from_numpy(np.ascontiguousarray(st.sigma))})

    cell = CellCache(cache_dir).cell("feature-stats", manifest, compute, owned=False)
    return Stats(cell.arrays["mu"].numpy(), cell.arrays["sigma"].numpy(), int(cell.rows.n.iloc[0]))
