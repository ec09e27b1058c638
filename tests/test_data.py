"""Data loading on tiny synthetic IDX files in the real format, and on ../shared/data if present."""
import gzip

import numpy as np
import torch
import pytest

from conftest import shared_data_dir, write_cifar, write_idx
from dbm import data


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


def test_cifar10_python_batches(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    x = data.load_images("cifar10", "train", tmp_path)
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8
    assert data.load_labels("cifar10", "test", tmp_path).tolist() == [0, 1, 2, 3]
    import dbm
    assert dbm.encode_8bit(x).shape == (20, 24_576)
    with pytest.raises(data.DataError, match="cifar-10-batches-py"):
        data.load_images("cifar10", "train", tmp_path / "nothing")
    write_cifar(tmp_path / "bad" / "cifar-10-batches-py", corrupt=True)
    with pytest.raises(data.DataError, match="corrupt"):
        data.load_images("cifar10", "test", tmp_path / "bad")
    (tmp_path / "bad" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(data.DataError, match="data_batch_3"):
        data.load_images("cifar10", "train", tmp_path / "bad")
