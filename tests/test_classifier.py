"""The suite's classifier: input handling, caching, corrupt caches, no global RNG."""
import dataclasses
import json

import pytest
import torch

from conftest import synthetic_mnist
from dbm.data import DataError
from dbm.errors import CheckpointError
from dbm.encoding import encode_8bit
from dbm.metrics.classifier import ClassifierConfig, SmallCNN, accuracy, load_or_train, to_images


def test_to_images_shapes_and_8bit_decoding():
    v = torch.randint(0, 2, (3, 784)).float()
    assert to_images(v, "mnist", "binary").shape == (3, 1, 28, 28)
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    x = to_images(encode_8bit(imgs), "cifar10", "8bit")
    assert torch.equal(x, imgs.float() / 255)
    with pytest.raises(ValueError, match=r"\(B, 784\)"):
        to_images(torch.zeros(3, 783), "mnist", "binary")


def test_construction_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    a = SmallCNN((1, 28, 28), torch.Generator().manual_seed(3))
    b = SmallCNN((1, 28, 28), torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_train_cache_reload_and_corrupt_cache(tmp_path):
    data = synthetic_mnist(tmp_path / "data", n_train=400, n_test=100)
    cfg = ClassifierConfig(epochs=2)
    net, rec = load_or_train(cfg, tmp_path / "cache", data)
    assert rec["test_accuracy"] > 0.9                                # ten well-separated bar classes
    path = next((tmp_path / "cache").rglob("*.safetensors"))          # the cell's weights (dbm.result_cache)
    again, rec2 = load_or_train(cfg, tmp_path / "cache", data)
    assert rec2 == rec and all(torch.equal(p, q) for p, q in zip(net.parameters(), again.parameters()))
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(accuracy(net, x, torch.zeros(5, dtype=torch.long)),
                       accuracy(again, x, torch.zeros(5, dtype=torch.long)))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged"):
        load_or_train(cfg, tmp_path / "cache", data)


def test_a_classifier_of_the_earlier_cache_layout_is_adopted_with_its_weights(tmp_path):
    """A file <cache>/<key>.safetensors (weights + record) becomes the cell, unchanged: the FD
    cells keyed by its weights hash stay valid, and nothing is retrained."""
    from safetensors.torch import save_file
    from dbm.provenance import state_hash
    cfg = ClassifierConfig(epochs=1)
    net = SmallCNN((1, 28, 28), torch.Generator().manual_seed(7))
    record = {"config": dataclasses.asdict(cfg), "test_accuracy": 0.5, "train_wall_s": 1.0, "torch": "x"}
    (tmp_path / "cache").mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "cache" / f"{cfg.key()}.safetensors"),
              metadata={"record": json.dumps(record)})
    got, rec = load_or_train(cfg, tmp_path / "cache", data_dir=tmp_path / "no-data")   # no data: no training
    assert rec == record and state_hash(got) == state_hash(net)


def test_training_is_the_same_at_any_thread_count(tmp_path):
    """The CPU training runs on one thread, so torch's thread setting changes no weight (it did:
    1 and 2 threads gave two classifiers), and the setting is restored afterwards."""
    from dbm.metrics.classifier import train_classifier
    from dbm.provenance import state_hash
    data = synthetic_mnist(tmp_path / "data", n_train=300, n_test=50)
    cfg, before = ClassifierConfig(epochs=1), torch.get_num_threads()
    hashes = []
    for n in (1, 2):
        torch.set_num_threads(n)
        try:
            net, rec = train_classifier(cfg, data)
            assert torch.get_num_threads() == n and rec["threads"] == 1
        finally:
            torch.set_num_threads(before)
        hashes.append(state_hash(net))
    assert hashes[0] == hashes[1]
