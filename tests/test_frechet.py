"""Frechet maths against pytorch-fid's function and closed forms; Inception weights handling."""
import numpy as np
import pytest
import torch

from dbm.metrics import extractors as fid
from dbm.metrics.frechet import Stats, accumulate, frechet_distance, load_stats, save_stats


def random_spd(rng, d):
    a = rng.standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 1e-3 * np.eye(d)


@pytest.mark.parametrize("d", [2, 16, 64])
def test_agrees_with_pytorch_fid(d):
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(d)
    for _ in range(3):
        a = Stats(rng.standard_normal(d), random_spd(rng, d), 100)
        b = Stats(rng.standard_normal(d), random_spd(rng, d), 100)
        ref = calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
        assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6, abs=1e-6)


def test_closed_forms():
    rng = np.random.default_rng(0)
    s = random_spd(rng, 8)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    # equal covariances: the distance is |mu1 - mu2|^2
    assert frechet_distance(Stats(mu1, s, 2), Stats(mu2, s, 2)) == pytest.approx(((mu1 - mu2) ** 2).sum(), abs=1e-9)
    # commuting (diagonal) covariances: sum (sqrt a - sqrt b)^2
    a, b = rng.uniform(0.1, 2, 8), rng.uniform(0.1, 2, 8)
    want = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(Stats(mu1, np.diag(a), 2), Stats(mu1, np.diag(b), 2)) == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(Stats(mu1, s, 2), Stats(mu1[:4], s[:4, :4], 2))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(Stats(mu1 * np.nan, s, 2), Stats(mu1, s, 2))


def test_accumulate_matches_numpy_and_round_trips(tmp_path):
    x = torch.randn(1000, 5, dtype=torch.float64) * torch.arange(1, 6) + 3
    st = accumulate(lambda b: b, x.split(128))
    assert st.n == 1000
    np.testing.assert_allclose(st.mu, x.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.sigma, np.cov(x.numpy(), rowvar=False), rtol=1e-10)
    man = {"dataset": "mnist", "split": "test", "n": 1000}
    save_stats(tmp_path / "ref.npz", st, man)
    back = load_stats(tmp_path / "ref.npz", man)
    assert back.n == 1000 and np.array_equal(back.sigma, st.sigma)
    assert load_stats(tmp_path / "ref.npz", dict(man, n=999)) is None and load_stats(tmp_path / "no.npz") is None


def test_feature_stats_from_a_tensor_or_a_sample_function():
    ext = fid.standin_extractor(channels=1, dims=8)
    x = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = fid.feature_stats(ext, x, batch_size=64)
    it = iter(x.split(50))
    b = fid.feature_stats(ext, lambda k: next(it)[:k], n=300, batch_size=50)
    assert a.n == b.n == 300
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-9, atol=1e-12)
    assert frechet_distance(a, b) == pytest.approx(0, abs=1e-8)


def test_missing_and_wrong_inception_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("DBM_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(fid.MissingWeightsError) as e:
        fid.inception_extractor()
    msg = str(e.value)
    assert fid.WEIGHTS_NAME in msg and str(tmp_path / "torch") in msg and "DBM_INCEPTION_WEIGHTS" in msg
    bad = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(3)}, bad)
    monkeypatch.setenv("DBM_INCEPTION_WEIGHTS", str(bad))
    with pytest.raises(ValueError, match="is not the FID Inception weights"):
        fid.inception_extractor()


def test_inception_extractor_loads_a_local_file(tmp_path, monkeypatch):
    """A stand-in file with the FID network's layout (random weights) loads through the local path."""
    import torchvision
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    path = tmp_path / fid.WEIGHTS_NAME
    torch.save(net.state_dict(), path)
    monkeypatch.setattr(fid, "WEIGHTS_SHA256_PREFIX", fid.file_sha256(path)[:8])
    before = torch.get_rng_state()
    ext = fid.inception_extractor(path)
    assert torch.equal(torch.get_rng_state(), before)
    f = ext(torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and ext.weights_hash == fid.file_sha256(path)


def test_reference_statistics_are_a_cell_of_the_result_cache(tmp_path, monkeypatch):
    """Computed once per manifest and extractor, read back equal; another manifest recomputes."""
    from dbm.metrics import extractors as ex
    e = ex.standin_extractor(channels=1)
    imgs = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    calls = []
    real = ex.feature_stats
    monkeypatch.setattr(ex, "feature_stats", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    a = ex.feature_stats_cached(e, imgs, tmp_path, {"dataset": "x", "split": "test"})
    b = ex.feature_stats_cached(e, imgs, tmp_path, {"dataset": "x", "split": "test"})
    assert len(calls) == 1 and a.n == b.n == 40
    assert np.array_equal(a.mu, b.mu) and np.array_equal(a.sigma, b.sigma)
    ex.feature_stats_cached(e, imgs, tmp_path, {"dataset": "x", "split": "train"})
    assert len(calls) == 2 and list(tmp_path.glob("feature-stats/*.safetensors"))
