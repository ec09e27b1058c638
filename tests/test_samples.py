"""Sample kinds and their statistics (dbm.metrics.samples): long Gibbs chains reach the model's
distribution (chi-square against exact enumeration), modes are fixed points, statistics are right."""
import pytest
import torch

import dbm
from dbm import exact
from dbm.metrics.samples import gibbs_chains, modes, sample_stats
from dbm.samplers import local_mode
from stat_helpers import chi2_gof, random_dbm


def test_sample_stats_by_hand():
    v = torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    test = torch.tensor([[1.0, 1, 0, 1], [0, 0, 0, 0]])
    s = sample_stats(v, test)
    # pairwise Hamming distances 2, 2, 4 -> mean 8/3 over 4 pixels
    assert s["diversity"] == pytest.approx(8 / 3 / 4)
    assert s["ink"] == pytest.approx(6 / 12) and s["test_ink"] == pytest.approx(3 / 8)
    # nearest test image: 1, 0, 1 -> mean 2/3 over 4 pixels
    assert s["nn_distance"] == pytest.approx(2 / 3 / 4)
    with pytest.raises(ValueError, match="share n_0"):
        sample_stats(v, test[:, :3])


def test_modes_are_fixed_points_and_chains_keep_their_starts(gen):
    m = random_dbm([6, 4, 5], seed=50, w_scale=2.0)
    mode, swept, _ = modes(m, 30, gen)
    again, _ = local_mode(m, mode)
    assert all(torch.equal(a, b) for a, b in zip(mode, again))
    out, last = gibbs_chains(m, mode, (0, 3), gen)
    assert torch.equal(out[0], mode[0]) and set(out) == {0, 3} and torch.equal(last[0], out[3])
    with pytest.raises(ValueError, match="non-negative"):
        gibbs_chains(m, mode, (-1,), gen)


def test_long_gibbs_chains_sample_the_visible_marginal(gen):
    """Visible states after 200 sweeps from uniform starts: chi-square against the exact p(v)."""
    m = random_dbm([4, 3, 3], seed=51, w_scale=1.0)
    n = 4000
    v = gibbs_chains(m, m.random_state(n, gen), (200,), gen)[0][200]
    bits, probs = exact.joint_table(m)
    p_v = torch.zeros(16, dtype=torch.float64).index_add_(0, exact.state_index(bits[:, :4]), probs)
    chi2_gof(exact.state_index(v.double()), p_v)


def test_mode_search_caps_are_counted(gen):
    """Issue 33: ``modes`` returns its search's info, and fig25's rows count the capped searches."""
    from reproduce.fig25_end_to_end import search_rows
    m = dbm.DBM([30, 20, 10], init="gaussian", sigma=2.0, generator=torch.Generator().manual_seed(3))
    _, _, info = modes(m, 64, gen, max_sweeps=1)
    assert info.capped.any()
    rows = {r["metric"]: r["value"] for r in search_rows(info, 64)}
    assert rows["sweeps_capped"] == float(info.capped.sum()) > 0 and rows["sweeps_mean"] == 1.0
