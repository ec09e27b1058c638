"""The exact oracle against brute force and finite differences."""
import pytest
import torch

from dbm import exact
from stat_helpers import chi2_gof, joint_index, random_dbm


@pytest.mark.parametrize("sizes", [[3, 3, 3], [4, 2], [2, 2, 2, 2]])
def test_log_partition_and_likelihood_normalise(sizes):
    m = random_dbm(sizes, seed=30).double()
    bits = exact.all_bits(sum(sizes))
    brute = torch.logsumexp(-m.energy(bits.split(sizes, -1)), 0)
    torch.testing.assert_close(exact.log_partition(m), brute.detach())
    vs = exact.all_bits(sizes[0])
    total = torch.exp(-exact.nll(m, vs)).sum()
    torch.testing.assert_close(total.detach(), torch.tensor(1.0, dtype=torch.float64))


def test_exact_gradient_matches_finite_differences():
    m = random_dbm([3, 3, 2], seed=31).double()
    v = torch.tensor([[1.0, 0, 1], [0, 1, 1]])
    g = exact.exact_gradient(m, v)
    params = list(m.parameters())
    eps, k = 1e-6, 0
    for p in params:
        for i in range(p.numel()):
            with torch.no_grad():
                p.view(-1)[i] += eps
                up = exact.nll(m, v).mean()
                p.view(-1)[i] -= 2 * eps
                down = exact.nll(m, v).mean()
                p.view(-1)[i] += eps
            assert float(g[k]) == pytest.approx(float((up - down) / (2 * eps)), abs=1e-6)
            k += 1
    # grad(-log p(v)) = E_p[phi] - E_{p(h|v)}[phi]
    torch.testing.assert_close(g, exact.expected_statistics(m) - exact.expected_statistics(m, v))


def test_exact_samples_follow_the_table(gen):
    sizes = [3, 3, 3]
    m = random_dbm(sizes, seed=32)
    _, probs = exact.joint_table(m)
    chi2_gof(joint_index(exact.sample_exact(m, 200_000, gen)), probs)
    v = torch.tensor([[0.0, 1, 1]])
    xs = exact.sample_exact(m, 100_000, gen, v=v)
    assert (xs[0] == v).all()
    bits, _ = exact.joint_table(m)
    keep = (bits[:, :3] == v.double()).all(-1)
    chi2_gof(joint_index(xs), probs * keep / (probs * keep).sum())


def test_enumeration_limit_is_enforced():
    with pytest.raises(ValueError, match="enumeration"):
        exact.log_partition(random_dbm([20, 2, 10], seed=0))
