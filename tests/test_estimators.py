"""Estimators against the exact gradient (z-tests with Bonferroni, TEST_FAILURE_RATE per test).

Models: random enumerable DBMs, Gaussian weights of scale 1 and biases of scale 0.5, two clamped
data vectors repeated over the batch. The per-chain estimates of one call are i.i.d. given v_b;
the standard error is taken over all rows (conservative when rows hold different v).
"""
import random

import numpy as np
import pytest
import torch

import dbm
from dbm import exact
from stat_helpers import random_dbm, z_scores, z_threshold

N = 40_000
UNBIASED = [
    ("ucd-mh-lmi", {}),
    ("ucd-mh-lmi", {"marginalize": True}),
    ("ucd-mh-lmi", {"y0": "independent"}),
    ("ucd-mh-lmi", {"warm_start": True}),
    ("ucd-gibbs", {}),
    ("ucd-gibbs", {"marginalize": True}),
    ("ucd-gibbs", {"coupling": "crn", "init": "data"}),
    ("ucd-gibbs", {"init": "local-mode", "marginalize": True}),
    ("ucd-mh-lmi", {"gibbs_sweeps": 1}),
    ("ucd-mh-lmi", {"gibbs_sweeps": 1, "marginalize": True}),
]


def data_batch(n0, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, 2, (2, n0), generator=g).float()
    return v.repeat(n // 2, 1)


def check(sizes, name, opts, seed, n=N, warm_calls=1):
    m = random_dbm(sizes, seed=seed)
    v = data_batch(sizes[0], n, seed)
    est = dbm.estimator(name, **opts, **({"max_steps": 100_000} if name.startswith("ucd") else {}))
    gen, state = torch.Generator().manual_seed(seed), est.init_state()
    for _ in range(warm_calls):
        g, state, info = est.chain_estimates(m, v, state, gen)
    capped = int(info.pos.capped.sum() + info.neg.capped.sum())
    assert capped == 0, f"{capped} chains hit the cap (the estimate would be truncated)"
    return z_scores(g, exact.exact_gradient(m, v[:2])), info


@pytest.mark.parametrize("sizes", [[3, 3, 3], [4, 3, 2]])
@pytest.mark.parametrize("name,opts", UNBIASED)
def test_unbiased_estimators_match_exact_gradient(sizes, name, opts):
    z, info = check(sizes, name, opts, seed=100, warm_calls=2 if opts.get("warm_start") else 1)
    assert z.abs().max() < z_threshold(z.numel()), f"max |z| = {z.abs().max():.2f}"


@pytest.mark.parametrize("name,opts", [("ucd-mh-lmi", {}), ("ucd-mh-lmi", {"y0": "independent"}),
                                       ("ucd-mh-lmi", {"gibbs_sweeps": 1, "marginalize": True}), ("ucd-gibbs", {})])
def test_the_chunked_coupled_loop_is_unbiased(name, opts, monkeypatch):
    """The device's coupled loop (``dbm.coupled``, "chunked": met chains of a chunk stepped on,
    masked) run on the CPU: still the exact gradient in expectation (tests/test_exact_mh.py checks
    its meeting times against the exact pair chain, across chunks)."""
    from dbm import coupled
    monkeypatch.setattr(coupled, "CPU_COUPLED", "chunked")
    z, info = check([3, 3, 3], name, opts, seed=103)
    assert float(info.neg.tau.max()) > 2                    # chains met inside a chunk while others ran on
    assert z.abs().max() < z_threshold(z.numel()), f"max |z| = {z.abs().max():.2f}"


@pytest.mark.parametrize("name,opts", [("ucd-mh-lmi", {"k": 0, "m": 3}), ("ucd-mh-lmi", {"k": 1, "m": 4}),
                                       ("ucd-mh-lmi", {"k": 2, "m": 2, "marginalize": True}),
                                       ("ucd-gibbs", {"k": 1, "m": 3}), ("ucd-gibbs", {"k": 0, "m": 2, "init": "local-mode"}),
                                       ("ucd-mh-lmi", {"gibbs_sweeps": 2, "coupling": "crn", "k": 1, "m": 3}),
                                       ("ucd-mh-lmi", {"gibbs_sweeps": 1, "k": 0, "m": 2, "marginalize": True,
                                                       "y0": "independent"})])
def test_time_averaged_estimators_match_exact_gradient(name, opts):
    """H_{k:m} (Jacob, O'Leary, Atchade 2020) is unbiased for every window, as H = H_{0:0} is."""
    z, info = check([3, 3, 3], name, opts, seed=102)
    assert z.abs().max() < z_threshold(z.numel()), f"max |z| = {z.abs().max():.2f}"


def test_time_averaged_window_reduces_to_the_lag_one_estimator_and_is_checked():
    m = random_dbm([3, 3, 3], seed=5)
    v = data_batch(3, 200, 5)
    a, _, _ = dbm.estimator("ucd-mh-lmi").chain_estimates(m, v, None, torch.Generator().manual_seed(1))
    b, _, _ = dbm.estimator("ucd-mh-lmi", k=0, m=0).chain_estimates(m, v, None, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    for bad in ({"k": 2, "m": 1}, {"k": -1, "m": 0}, {"m": 5, "max_steps": 5}, {"k": 0.5, "m": 1}):
        with pytest.raises(ValueError, match="0 <= k <= m < max_steps"):
            dbm.estimator("ucd-gibbs", **bad)


def test_mixed_kernel_options_are_checked():
    for bad in ({"gibbs_sweeps": -1}, {"gibbs_sweeps": 1.5}, {"gibbs_sweeps": True}, {"coupling": "none"},
                {"max_tries": 0}):
        with pytest.raises(ValueError):
            dbm.estimator("ucd-mh-lmi", **bad)
    with pytest.raises(ValueError, match="sweeps must be an integer >= 1"):
        dbm.samplers.GibbsMH(random_dbm([3, 3], seed=0), sweeps=0)


@pytest.mark.parametrize("sizes", [[5, 4], [2, 3, 2, 3]])
@pytest.mark.parametrize("name,opts", [("ucd-mh-lmi", {}), ("ucd-mh-lmi", {"marginalize": True}),
                                       ("ucd-gibbs", {}), ("ucd-mh-lmi", {"gibbs_sweeps": 1})])
def test_unbiased_on_rbm_and_deeper_dbm(sizes, name, opts):
    z, _ = check(sizes, name, opts, seed=101)
    assert z.abs().max() < z_threshold(z.numel())


@pytest.mark.parametrize("sizes", [[3, 3, 3], [4, 3, 2]])
@pytest.mark.parametrize("name", ["official-single-chain", "cd"])
def test_biased_estimators_are_detected(sizes, name):
    """A power test: the bias is tens of standard errors at this N (measured: 15-60), so a
    missed detection has negligible probability."""
    z, _ = check(sizes, name, {}, seed=100)
    assert z.abs().max() > z_threshold(z.numel())


def test_surrogate_gradient_equals_mean_of_chain_estimates():
    m = random_dbm([4, 3, 2], seed=7)
    v = data_batch(4, 64)
    for name, opts in [("ucd-mh-lmi", {}), ("ucd-gibbs", {"marginalize": True}), ("pcd", {})]:
        g, _, _ = dbm.estimator(name, **opts).chain_estimates(m, v, None, torch.Generator().manual_seed(3))
        loss, _, info = dbm.estimator(name, **opts).loss(m, v, None, torch.Generator().manual_seed(3))
        m.zero_grad()
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in m.parameters()]).double()
        torch.testing.assert_close(grad, g.mean(0), rtol=1e-5, atol=1e-6)
        assert loss.dim() == 0 and info.pos.tau.shape == (64,) and info.neg.sweeps.shape == (64,)


def test_loss_value_is_mean_energy_difference_without_corrections():
    m = random_dbm([6, 5, 4], seed=8)
    v = data_batch(6, 32)
    est = dbm.estimator("cd", k=2)
    pos, neg, _ = est.phases(m, v, None, torch.Generator().manual_seed(0))
    loss, _, info = dbm.estimator("cd", k=2).loss(m, v, None, torch.Generator().manual_seed(0))
    expected = (m.energy(pos.xs) - m.energy(neg.xs)).mean()
    torch.testing.assert_close(loss, expected)
    s = info.summary()                                  # the d_st diagnostic of the EBM-anatomy paper
    assert s["energy_pos"] == pytest.approx(float(m.energy(pos.xs).mean()), rel=1e-5, abs=1e-5)
    assert s["energy_neg"] == pytest.approx(float(m.energy(neg.xs).mean()), rel=1e-5, abs=1e-5)
    assert s["d_st"] == pytest.approx(float(expected), rel=1e-5, abs=1e-5)


def test_caps_are_counted_and_summarised():
    m = random_dbm([4, 3, 2], seed=9, w_scale=2.0)
    v = data_batch(4, 2000)
    est = dbm.estimator("ucd-mh-lmi", max_steps=2, max_sweeps=1)
    _, _, info = est.loss(m, v, None, torch.Generator().manual_seed(0))
    s = info.summary()
    assert s["neg_tau_capped"] > 0 and s["neg_sweeps_capped"] > 0 and s["neg_tau_max"] == 2
    assert 0 < s["neg_p_tau1"] < 1


def test_pcd_keeps_chains_and_rejects_batch_change(gen):
    m = random_dbm([4, 3, 2], seed=9)
    est = dbm.estimator("pcd", k=3)
    _, state, _ = est.loss(m, data_batch(4, 10), est.init_state(), gen)
    first = state.chains
    _, state, _ = est.loss(m, data_batch(4, 10), state, gen)
    assert state.chains is not first and state.chains[0].shape == (10, 4)
    assert est.init_state().chains == ()                # the estimator itself holds no chains
    with pytest.raises(ValueError, match="persistent chains"):
        est.loss(m, data_batch(4, 12), state, gen)


def test_library_never_touches_global_rng(gen):
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    m = dbm.DBM([6, 5, 4], generator=torch.Generator().manual_seed(0))
    v = data_batch(6, 20)
    for name in dbm.ESTIMATORS:
        loss, _, _ = dbm.estimator(name).loss(m, v, None, gen)
        loss.backward()
    dbm.samplers.local_mode(m, m.random_state(8, gen))
    exact.sample_exact(random_dbm([3, 3, 3], 0), 10, gen)
    dbm.encode_binary(torch.rand(2, 5, generator=gen), generator=gen)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state


@pytest.mark.slow
@pytest.mark.parametrize("sizes,w", [([3, 3, 3, 3], 1.5), ([5, 4, 3], 2.0), ([6, 6], 1.0)])
@pytest.mark.parametrize("name,opts", UNBIASED)
def test_unbiased_heavier_models(sizes, w, name, opts):
    """More models, stronger weights and 5x the chains (make test-all)."""
    m = random_dbm(sizes, seed=200, w_scale=w)
    v = data_batch(sizes[0], 200_000, 200)
    est = dbm.estimator(name, **opts, max_steps=1_000_000)
    gen, state = torch.Generator().manual_seed(200), est.init_state()
    for _ in range(2 if opts.get("warm_start") else 1):
        g, state, info = est.chain_estimates(m, v, state, gen)
    assert int(info.pos.capped.sum() + info.neg.capped.sum()) == 0
    z = z_scores(g, exact.exact_gradient(m, v[:2]))
    assert z.abs().max() < z_threshold(z.numel())
