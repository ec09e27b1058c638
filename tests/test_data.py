"""Data loading on tiny synthetic IDX files in the real format, and on ../shared/data if present."""
import gzip
import struct

import numpy as np
import pytest

from conftest import shared_data_dir
from dbm import data


def write_idx(path, array, compress=True):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return raw


def test_reads_synthetic_idx_in_every_layout(tmp_path, monkeypatch):
    imgs = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_idx(tmp_path / "a" / "mnist" / "train-images-idx3-ubyte.gz", imgs)
    assert data.load_images("mnist", "train", tmp_path / "a").shape == (3, 28, 28)
    write_idx(tmp_path / "b" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte", imgs, compress=False)
    x = data.load_images("fashion-mnist", "test", tmp_path / "b")
    assert np.array_equal(x.numpy(), imgs)
    write_idx(tmp_path / "c" / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3]))
    monkeypatch.setenv("DBM_DATA_DIR", str(tmp_path / "c"))
    assert data.load_labels("mnist", "train").tolist() == [1, 2, 3]


def test_missing_truncated_and_corrupt_files_say_which(tmp_path):
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte.*DBM_DATA_DIR"):
        data.load_images("mnist", "test", tmp_path)
    raw = write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", np.zeros((2, 28, 28)), compress=False)
    (tmp_path / "mnist" / "train-images-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(data.DataError, match="truncated"):
        data.load_images("mnist", "train", tmp_path)
    (tmp_path / "mnist" / "train-images-idx3-ubyte").unlink()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(data.DataError, match="corrupt"):
        data.load_images("mnist", "train", tmp_path)
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(data.DataError, match="magic"):
        data.load_images("mnist", "train", tmp_path)


@pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data not present")
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shared_data_sets(name):
    x = data.load_images(name, "test", shared_data_dir())
    y = data.load_labels(name, "test", shared_data_dir())
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,) and set(y.tolist()) == set(range(10))
