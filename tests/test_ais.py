"""AIS against exact log Z on enumerable models, and the likelihood bound against exact log p(v)."""
import math

import pytest
import torch
from scipy import stats

from dbm import exact
from dbm.metrics.ais import ais_log_partition, log_likelihood_bound, reverse_ais_log_partition
from stat_helpers import TEST_FAILURE_RATE, random_dbm

Z = stats.norm.isf(TEST_FAILURE_RATE / 2)


@pytest.mark.parametrize("sizes,w", [([3, 3, 3], 1.0), ([6, 4, 5], 1.0), ([8, 5], 1.5), ([4, 3, 3, 2], 1.0)])
def test_ais_matches_exact_log_partition(sizes, w, gen):
    m = random_dbm(sizes, seed=40, w_scale=w)
    res = ais_log_partition(m, gen, runs=2000, betas=1000)
    truth = float(exact.log_partition(m).detach())
    # Z_hat / Z is unbiased with relative s.e. log_z_se: a z-test on the ratio
    ratio = torch.exp(torch.tensor(res.log_z - truth)).item()
    assert abs(ratio - 1) < Z * res.log_z_se + 1e-3, (res.log_z, truth, res.log_z_se)
    assert m.weights[0].dtype == torch.float32


def test_likelihood_bound_is_a_lower_bound_and_exact_for_rbm():
    v = torch.tensor([[1.0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]])
    m = random_dbm([6, 4, 5], seed=41)
    log_z = float(exact.log_partition(m))
    bound = log_likelihood_bound(m, v, log_z)
    assert (bound <= -exact.nll(m, v).float() + 1e-5).all()
    rbm = random_dbm([6, 4], seed=42)
    torch.testing.assert_close(log_likelihood_bound(rbm, v, float(exact.log_partition(rbm))).double(),
                               -exact.nll(rbm, v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sizes,w", [([3, 3, 3], 1.0), ([6, 4, 5], 1.5), ([4, 3, 3, 2], 1.0)])
def test_reverse_ais_from_exact_samples_is_unbiased_for_one_over_z(sizes, w, gen):
    """Started at exact samples, reverse AIS's weights have mean Z_0 / Z: a z-test on the ratio,
    and (Jensen) its log Z is on the high side of the forward estimate in expectation."""
    m = random_dbm(sizes, seed=43, w_scale=w)
    start = exact.sample_exact(m, 2000, gen)
    res = reverse_ais_log_partition(m, start, gen, betas=200)
    truth = float(exact.log_partition(m).detach())
    ratio = torch.exp(torch.tensor(truth - res.log_z)).item()      # mean w / (Z_0 / Z)
    assert abs(ratio - 1) < Z * res.log_z_se + 1e-3, (res.log_z, truth, res.log_z_se)



def test_forward_and_reverse_ais_bracket_a_trained_sharp_model(tmp_path, gen):
    """A 12-6-4 DBM trained on four prototypes (sharp: most of its mass on a few states): forward
    AIS and reverse AIS from exact samples each pass the z-test against the exact log Z, so the
    bracket fig25 builds on trained models contains the truth when its starts are samples."""
    from dbm.train import TrainConfig, Trainer
    g = torch.Generator().manual_seed(5)
    protos = torch.randint(0, 2, (4, 12), generator=g).float()
    x = protos[torch.randint(0, 4, (400,), generator=g)]
    x = torch.where(torch.rand(x.shape, generator=g) < 0.02, 1 - x, x)
    cfg = TrainConfig(hidden=(6, 4), estimator="cd", lr=0.1, gamma=0.0, batch_size=50, updates=300, log_every=300,
                      eval_every=0, ckpt_every=300, out_dir=str(tmp_path / "run"))
    t = Trainer(cfg, data=x)
    t.run(progress=False)
    m = t.model
    truth = float(exact.log_partition(m).detach())
    nll = float(exact.nll(m, x[:100]).detach().mean())
    assert nll < 0.5 * 12 * math.log(2)                            # sharp: the data hold far more than uniform mass
    fwd = ais_log_partition(m, gen, runs=1000, betas=1000)
    rev = reverse_ais_log_partition(m, exact.sample_exact(m, 1000, gen), gen, betas=1000)
    z = stats.norm.isf(TEST_FAILURE_RATE / 4)                      # two tests
    assert abs(math.exp(fwd.log_z - truth) - 1) < z * fwd.log_z_se + 1e-3, (fwd.log_z, truth)
    assert abs(math.exp(truth - rev.log_z) - 1) < z * rev.log_z_se + 1e-3, (rev.log_z, truth)
