"""AIS against exact log Z on enumerable models, and the likelihood bound against exact log p(v)."""
import pytest
import torch
from scipy import stats

from dbm import exact
from dbm.metrics.ais import ais_log_partition, log_likelihood_bound
from stat_helpers import TEST_FAILURE_RATE, random_dbm

Z = stats.norm.isf(TEST_FAILURE_RATE / 2)


@pytest.mark.parametrize("sizes,w", [([3, 3, 3], 1.0), ([6, 4, 5], 1.0), ([8, 5], 1.5), ([4, 3, 3, 2], 1.0)])
def test_ais_matches_exact_log_partition(sizes, w, gen):
    m = random_dbm(sizes, seed=40, w_scale=w)
    res = ais_log_partition(m, gen, runs=2000, betas=1000)
    truth = float(exact.log_partition(m))
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
