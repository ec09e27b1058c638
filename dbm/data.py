"""Data sets: MNIST and Fashion-MNIST from raw IDX files, offline first.

Files are looked up, for a data set ``name`` and a root ``data_dir`` (argument, else the
environment variable ``DBM_DATA_DIR``), in
``<root>/<name>/``, ``<root>/``, ``<root>/<TorchvisionClass>/raw/`` (an extracted torchvision
root) and, for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``; each name with or
without ``.gz``. Nothing is downloaded unless ``download=True`` (then torchvision fetches the
files into ``<root>/<TorchvisionClass>/raw/``). Missing, truncated or corrupt files raise
``DataError`` naming the file and the places searched.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["DataError", "DATASETS", "data_root", "find_file", "read_idx", "load_images",
           "load_labels"]

DATASETS = {
    "mnist": {"class": "MNIST", "extra": []},
    "fashion-mnist": {"class": "FashionMNIST", "extra": ["/usr/share/datasets/fashion-mnist"]},
}
FILES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
         ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(RuntimeError):
    """A data file is missing, truncated or corrupt (the message says which and where)."""


def data_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    d = data_dir or os.environ.get("DBM_DATA_DIR")
    return Path(d) if d else None


def _candidates(name: str, root: Path | None) -> list[Path]:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    dirs = []
    if root is not None:
        dirs += [root / name, root, root / DATASETS[name]["class"] / "raw"]
    return dirs + [Path(p) for p in DATASETS[name]["extra"]]


def find_file(name: str, split: str, kind: str, data_dir=None) -> Path:
    """The path of one raw file, or DataError listing where it was looked for."""
    if (split, kind) not in FILES:
        raise ValueError(f"split must be 'train' or 'test' and kind 'images' or 'labels'")
    base = FILES[split, kind]
    tried = []
    for d in _candidates(name, data_root(data_dir)):
        for fname in (base, base + ".gz"):
            tried.append(d / fname)
            if (d / fname).is_file():
                return d / fname
    hint = (f"put {base}.gz in <DIR>/{name}/ and pass --data-dir DIR or set DBM_DATA_DIR=DIR "
            "(this project's copies live in ../shared/data), or let torchvision download it "
            "(--download)")
    where = ", ".join(str(t.parent) for t in tried[::2]) or "nowhere: no --data-dir or DBM_DATA_DIR given"
    raise DataError(f"{name} {split} {kind}: {base}[.gz] not found; looked in {where}. {hint}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed), checking magic number and length."""
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot be read ({e}); the file is corrupt or truncated, "
                        "replace it with a fresh copy") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != need:
        raise DataError(f"{path}: expected {need} bytes for shape {shape}, found {len(raw)}; "
                        "the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _download(name: str, root: Path) -> None:
    import torchvision
    getattr(torchvision.datasets, DATASETS[name]["class"])(str(root), train=True, download=True)
    getattr(torchvision.datasets, DATASETS[name]["class"])(str(root), train=False, download=True)


def load_images(name: str, split: str = "train", data_dir=None, download: bool = False) -> torch.Tensor:
    """Images as a uint8 tensor (N, 28, 28)."""
    try:
        path = find_file(name, split, "images", data_dir)
    except DataError:
        if not download:
            raise
        root = data_root(data_dir) or Path("data")
        _download(name, root)
        path = find_file(name, split, "images", root)
    x = read_idx(path)
    if x.ndim != 3:
        raise DataError(f"{path}: expected a 3-d image array, got shape {x.shape}")
    return torch.from_numpy(x.copy())


def load_labels(name: str, split: str = "train", data_dir=None) -> torch.Tensor:
    """Labels as an int64 tensor (N,)."""
    path = find_file(name, split, "labels", data_dir)
    y = read_idx(path)
    if y.ndim != 1:
        raise DataError(f"{path}: expected a 1-d label array, got shape {y.shape}")
    return torch.from_numpy(y.astype(np.int64))
