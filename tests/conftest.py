import gzip
import os
import pathlib
import struct

import numpy as np

import pytest
import torch

torch.set_num_threads(min(2, len(os.sched_getaffinity(0))))   # respects taskset

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def gen():
    """A fresh CPU generator with a fixed seed (tests never use the global RNG)."""
    return torch.Generator().manual_seed(1234)


def search_case(sizes, clamp, order, gen, n=200, dtype=torch.float64):
    """A local-search comparison's inputs: (model, starts, clamp, odd_first, kernel) for a DBM of
    ``sizes`` (seed 7), ``n`` uniform starts, ``clamp`` None / True / "mask" (40 % of v fixed per
    chain) and the per-chain ``order`` (``samplers.draw_order``), drawn from ``gen`` in that order."""
    import dbm
    from dbm import samplers
    m = dbm.DBM(sizes, generator=torch.Generator().manual_seed(7), dtype=dtype)
    xs = m.random_state(n, gen)
    if clamp == "mask":
        clamp = torch.rand(n, sizes[0], generator=gen) < 0.4
    of = samplers.draw_order(order, n, gen)
    return m, xs, clamp, of, samplers._Kernel(m, clamp, xs[0])


def shared_data_dir():
    """../shared/data when present (the project's offline copies of MNIST and Fashion-MNIST)."""
    d = ROOT.parent / "shared" / "data"
    return d if d.is_dir() else None


def write_idx(path, array, compress=True):
    """Write ``array`` as an IDX file (uint8), gzipped unless ``compress`` is False; returns the raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return raw


def synthetic_mnist(root, name="mnist", n_train=600, n_test=200, seed=0):
    """A tiny labelled stand-in for MNIST in the real IDX format under ``root/name``: class c is a
    bar at row/column position c, with 5% pixel noise. Returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 28, 28), np.uint8)
        for c in range(10):
            rows = y == c
            if c < 5:
                x[rows, 4 + 4 * c:7 + 4 * c, 4:24] = 255
            else:
                x[rows, 4:24, 4 + 4 * (c - 5):7 + 4 * (c - 5)] = 255
        flip = rng.random(x.shape) < 0.05
        x = np.where(flip, 255 - x, x)
        write_idx(pathlib.Path(root) / name / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(pathlib.Path(root) / name / f"{split}-labels-idx1-ubyte.gz", y)
    return root


def write_cifar(folder, n=4, corrupt=False):
    """CIFAR-10's python batches (data_batch_1..5, test_batch) with ``n`` random images each."""
    import pickle
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": g.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(n)]}
        raw = pickle.dumps(batch)
        (folder / name).write_bytes(raw[:20] if corrupt and name == "test_batch" else raw)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine (the CUDA path runs where one is)"))]


@pytest.fixture(params=DEVICES)
def device(request):
    """Each device the machine has: "cpu" always, "cuda" when present (skipped otherwise)."""
    return request.param
