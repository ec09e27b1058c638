"""Data sets: MNIST and Fashion-MNIST from raw IDX files, CIFAR-10 from its python batches,
offline first.

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
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError

__all__ = ["DataError", "DATASETS", "data_root", "find_file", "read_idx", "load_images",
           "load_labels", "load_cifar10"]

DATASETS = {
    "mnist": {"class": "MNIST", "extra": [], "shape": (28, 28)},
    "fashion-mnist": {"class": "FashionMNIST", "extra": ["/usr/share/datasets/fashion-mnist"], "shape": (28, 28)},
}
FILES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
         ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def data_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    d = data_dir or os.environ.get("DBM_DATA_DIR")
    return Path(d) if d else None


def _candidates(name: str, root: Path | None) -> list[Path]:
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose from {sorted(DATASETS) + ['cifar10']}")
    dirs = []
    if root is not None:
        dirs += [root / name, root, root / DATASETS[name]["class"] / "raw"]
    return dirs + [Path(p) for p in DATASETS[name]["extra"]]


def find_file(name: str, split: str, kind: str, data_dir=None) -> Path:
    """The path of one raw file, or DataError listing where it was looked for."""
    if (split, kind) not in FILES:
        raise ValueError("split must be 'train' or 'test' and kind 'images' or 'labels'")
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


def _read_raw(path: Path, size: int = -1) -> bytes:
    """The first ``size`` bytes (all for -1) of a plain or gzip-compressed file, or DataError."""
    try:
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
            return f.read(size)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: cannot be read ({e}); the file is corrupt or truncated, "
                        "replace it with a fresh copy") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed), checking magic number and length."""
    path = Path(path)
    raw = _read_raw(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = header + math.prod(shape) * dtype.itemsize
    if len(raw) != need:
        raise DataError(f"{path}: expected {need} bytes for shape {shape}, found {len(raw)}; "
                        "the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _download(name: str, root: Path) -> None:
    import torchvision
    getattr(torchvision.datasets, DATASETS[name]["class"])(str(root), train=True, download=True)
    getattr(torchvision.datasets, DATASETS[name]["class"])(str(root), train=False, download=True)


def _cifar_dir(data_dir) -> Path:
    root = data_root(data_dir)
    tried = [] if root is None else [root / "cifar-10-batches-py", root / "cifar10" / "cifar-10-batches-py",
                                      root / "cifar10", root]
    for d in tried:
        if (d / "test_batch").is_file() or (d / "data_batch_1").is_file():
            return d
    where = ", ".join(map(str, tried)) or "nowhere: no --data-dir or DBM_DATA_DIR given"
    raise DataError("cifar10: the python batches (cifar-10-batches-py/data_batch_1..5, test_batch, "
                    "from cifar-10-python.tar.gz) were not found; looked in " + where +
                    ". Extract the archive into DIR and pass --data-dir DIR, or use --download")


# the globals a CIFAR-10 python batch may name: numpy arrays and dtypes, and bytes written by Python 3
_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                  ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}


def _restricted_unpickle(f):
    """``pickle.load`` that admits only the dicts, lists, bytes, numbers and numpy arrays of the
    CIFAR-10 format; any other global (a function, a class with side effects) raises DataError
    before it is called."""
    import codecs
    import pickle

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in _CIFAR_GLOBALS:
                raise DataError(f"refuses to unpickle {module!r}.{name!r}: a CIFAR-10 batch holds only "
                                "numpy arrays, lists and dicts")
            if module == "_codecs":
                return codecs.encode
            if name in ("ndarray", "dtype"):
                return getattr(np, name)
            from numpy._core import multiarray
            return getattr(multiarray, name)

    return Restricted(f, encoding="latin1").load()


def load_cifar10(split: str = "train", data_dir=None, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 images (N, 3, 32, 32) uint8 and labels (N,) from the python batches, read with a
    restricted unpickler (only the arrays, lists, bytes and dicts of the format)."""
    try:
        d = _cifar_dir(data_dir)
    except DataError:
        if not download:
            raise
        import torchvision
        root = data_root(data_dir) or Path("data")
        torchvision.datasets.CIFAR10(str(root), train=split == "train", download=True)
        d = _cifar_dir(root)
    xs, ys = [], []
    for name in CIFAR_FILES[split]:
        path = d / name
        if not path.is_file():
            raise DataError(f"{path}: missing CIFAR-10 batch (expected {', '.join(CIFAR_FILES[split])} in {d})")
        try:
            with open(path, "rb") as f:
                batch = _restricted_unpickle(f)
            if not isinstance(batch, dict):
                raise DataError(f"{path}: a CIFAR-10 batch is a dict, found {type(batch).__name__}")
            batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
            x = np.asarray(batch["data"], dtype=np.uint8)
            y = np.asarray(batch["labels"], dtype=np.int64)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        except Exception as e:            # unpickling errors come in many types
            raise DataError(f"{path}: not a readable CIFAR-10 python batch ({e}); the file is "
                            "truncated or corrupt, replace it") from e
        if x.ndim != 2 or x.shape[1] != 3072 or y.shape != (x.shape[0],):
            raise DataError(f"{path}: expected data (N, 3072) and N labels, got {x.shape} and {y.shape}")
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def load_images(name: str, split: str = "train", data_dir=None, download: bool = False) -> torch.Tensor:
    """Images as a uint8 tensor: (N, 28, 28) for MNIST / Fashion-MNIST, (N, 3, 32, 32) for CIFAR-10."""
    if name == "cifar10":
        return load_cifar10(split, data_dir, download)[0]
    try:
        path = find_file(name, split, "images", data_dir)
    except DataError:
        if not download:
            raise
        root = data_root(data_dir) or Path("data")
        _download(name, root)
        path = find_file(name, split, "images", root)
    x = read_idx(path)
    want = DATASETS[name]["shape"]
    if x.dtype != np.uint8:
        raise DataError(f"{path}: {name} images are unsigned bytes (IDX type 0x08), found {x.dtype}")
    if x.ndim != 3 or x.shape[1:] != want or x.shape[0] == 0:
        raise DataError(f"{path}: {name} images are (N, {want[0]}, {want[1]}) with N >= 1, found shape {x.shape}")
    return torch.from_numpy(x.copy())


def load_labels(name: str, split: str = "train", data_dir=None) -> torch.Tensor:
    """Labels as an int64 tensor (N,)."""
    if name == "cifar10":
        return load_cifar10(split, data_dir)[1]
    path = find_file(name, split, "labels", data_dir)
    y = read_idx(path)
    if y.ndim != 1 or y.dtype != np.uint8:
        raise DataError(f"{path}: expected a 1-d array of unsigned-byte labels, got shape {y.shape} of {y.dtype}")
    try:
        images = find_file(name, split, "images", data_dir)
    except DataError:                     # labels alone: nothing to compare with
        return torch.from_numpy(y.astype(np.int64))
    n_images = _idx_length(images)
    if y.shape[0] != n_images:
        raise DataError(f"{path}: {y.shape[0]} labels for the {n_images} images of {images}; the files "
                        "belong to different data sets or one is truncated")
    return torch.from_numpy(y.astype(np.int64))


def _idx_length(path: Path) -> int:
    """The first dimension an IDX file's header declares (reads 8 bytes)."""
    head = _read_raw(path, 8)
    if len(head) < 8 or head[3] < 1:
        raise DataError(f"{path}: truncated IDX header")
    return int.from_bytes(head[4:8], "big")
