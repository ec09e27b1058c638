"""dbm.exact_mh (issue 33): the exact acceptance a(x), the exact pair chain of the lag-1 coupled MH
estimator and its capped expectation, checked against their definitions, against the exact
target, and against the estimator itself by simulation (z-tests at TEST_FAILURE_RATE)."""
import math

import pytest
import torch

import dbm
from dbm import exact, exact_mh
from stat_helpers import binomial_z, chi2_gof, joint_index, random_dbm, z_scores, z_threshold

SIZES = [2, 2, 2]


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("marginalize", [False, True])
def test_acceptance_is_the_mean_of_min_one_ratio_over_every_proposal(clamped, marginalize):
    m = random_dbm([3, 3, 2], seed=1, w_scale=2.0)
    v = torch.tensor([1.0, 0.0, 1.0]) if clamped else None
    _, e = exact_mh.free_states(m, v, marginalize)
    a = exact_mh.acceptance(m, v, marginalize)
    brute = (torch.exp((e.unsqueeze(1) - e.unsqueeze(0)).clamp(max=0)).sum(1) - 1) / e.numel()   # z != x
    torch.testing.assert_close(a(e), brute, rtol=1e-12, atol=1e-15)
    n_free = 3 * (not clamped) + 3 * (not marginalize) + 2
    assert e.numel() == 2 ** n_free


def test_free_state_energies_are_the_models():
    m = random_dbm([3, 2, 2], seed=2)
    xs, e = exact_mh.free_states(m)
    bits, p = exact.joint_table(m)
    assert torch.allclose(torch.softmax(-e, 0), p, atol=1e-12)      # same states, same order
    xs_v, e_v = exact_mh.free_states(m, torch.tensor([0.0, 1.0, 1.0]))
    assert (xs_v[0] == torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)).all() and e_v.numel() == 16


@pytest.mark.parametrize("marginalize", [False, True])
def test_uncapped_pair_chain_gives_the_target_expectation(marginalize):
    """With the cap far beyond tau's tail, E[H] is E_target[phi] whatever pi0 is: the estimator's
    unbiasedness, here exact (no Monte Carlo)."""
    m = random_dbm(SIZES, seed=3)
    n = exact_mh.free_states(m, None, marginalize)[1].numel()
    pi0 = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64) ** 4
    r = exact_mh.capped_expectation(m, pi0 / pi0.sum(), 400, marginalize=marginalize)
    assert r.p_tau_gt[-1] < 1e-12 and bool((r.p_tau_gt[1:] <= r.p_tau_gt[:-1] + 1e-15).all())
    torch.testing.assert_close(r.mean, exact.expected_statistics(m), rtol=0, atol=1e-9)
    short = exact_mh.capped_expectation(m, pi0 / pi0.sum(), 1, marginalize=marginalize)
    xs, _ = exact_mh.free_states(m, None, marginalize)
    phi = dbm.sufficient_stats.per_state_statistics(exact._double(m), xs, marginalize)
    torch.testing.assert_close(short.mean, (pi0 / pi0.sum()) @ phi)     # max_steps = 1: X0 alone


def _phase_pi0(m, v=None):
    return exact.pi0_table(m, "random", v)[1]


@pytest.mark.parametrize("cap,loop", [(2, "per-step"), (4, "per-step"), (4, "chunked"), (12, "chunked")])
def test_capped_estimator_matches_its_exact_expectation(cap, loop, gen, monkeypatch):
    """The estimator run with max_steps = cap on many chains: its mean gradient is the exact capped
    expectation (z-test), its tau tail is the pair chain's (binomial z-test at every t < cap),
    and the cap's bias is resolved (power: the uncapped gradient is many standard errors away).
    Both coupled loops (``dbm.coupled.METHODS``); cap 12 crosses the chunked loop's first chunk."""
    from dbm import coupled
    monkeypatch.setattr(coupled, "CPU_COUPLED", loop)
    m = random_dbm(SIZES, seed=4, w_scale=2.0)
    vs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    n = 200_000
    v = vs.repeat(n // 2, 1)
    est = dbm.estimator("ucd-mh-lmi", max_steps=cap)
    g, _, info = est.chain_estimates(m, v, None, gen)
    neg = exact_mh.capped_expectation(m, _phase_pi0(m), cap)
    pos = [exact_mh.capped_expectation(m, _phase_pi0(m, x), cap, v=x) for x in vs]
    target = neg.mean - (pos[0].mean + pos[1].mean) / 2
    z = z_scores(g, target)
    checks = z.numel() + 2 * (cap - 1)
    thr = z_threshold(checks)
    assert z.abs().max() < thr, f"max |z| = {z.abs().max():.2f}"
    for t in range(1, cap):
        k = int((info.neg.tau > t).sum())
        assert abs(binomial_z(k, n, float(neg.p_tau_gt[t - 1]))) < thr
        k = int((info.pos.tau > t).sum())
        assert abs(binomial_z(k, n, float((pos[0].p_tau_gt[t - 1] + pos[1].p_tau_gt[t - 1]) / 2))) < thr
    assert z_scores(g, exact.exact_gradient(m, vs)).abs().max() > 2 * thr     # the cap is visible


def test_correction_diagnostics_from_exact_acceptances():
    """On an enumerable pi0: P(correction) is E_pi0[a] exactly (the pair chain's P(tau > 1)); the
    cap's lower bound lies below the exact P(tau > cap) and is the geometric bound's value."""
    m = random_dbm(SIZES, seed=5, w_scale=2.0)
    pi0 = _phase_pi0(m)
    _, e = exact_mh.free_states(m)
    a = exact_mh.acceptance(m)(e)
    exact_pa = float(pi0 @ a)
    pair = exact_mh.capped_expectation(m, pi0, 6)
    assert math.isclose(float(pair.p_tau_gt[0]), exact_pa, rel_tol=1e-10)
    draws = a[torch.multinomial(pi0, 400_000, replacement=True, generator=torch.Generator().manual_seed(1))]
    d = exact_mh.correction_diagnostics(draws, 6, 64)
    assert abs(d["p_correction"] - exact_pa) < 5 * d["p_correction_se"]
    assert d["p_cap_lower"] <= float(pair.p_tau_gt[-1]) * 1.02
    assert math.isclose(float(pi0 @ (a * (1 - a - 1 / 64) ** 5)), d["p_cap_lower"], rel_tol=0.05)
    assert d["chains_for_correction"] == math.ceil(math.log(0.05) / math.log1p(-d["p_correction"]))
    for bad in (dict(a=torch.tensor([1.5]), max_steps=3, states=64), dict(a=draws, max_steps=0, states=64),
                dict(a=draws, max_steps=3, states=64, prob=1.0), dict(a=draws, max_steps=3, states=1)):
        with pytest.raises(ValueError):
            exact_mh.correction_diagnostics(**bad)


@pytest.mark.parametrize("marginalize", [False, True])
def test_geometric_tail_bound_holds_from_every_start(marginalize):
    """P(tau > t | X0 = x0) >= a(x0) (1 - a(x0) - 2^-n)^(t-1) for every x0 and t, against the exact
    pair chain started at x0 (no Monte Carlo): the bound behind p_cap_lower and
    steps_past_cap_lower. Its sum over t >= cap is steps_past_cap_lower's summand."""
    m = random_dbm(SIZES, seed=7, w_scale=2.0)
    _, e = exact_mh.free_states(m, None, marginalize)
    n = e.numel()
    a = exact_mh.acceptance(m, None, marginalize)(e)
    t = torch.arange(1, 41, dtype=torch.float64)
    for x0 in range(n):
        pair = exact_mh.capped_expectation(m, torch.eye(n, dtype=torch.float64)[x0], 40, marginalize=marginalize)
        bound = a[x0] * (1 - a[x0] - 1 / n) ** (t - 1)
        assert bool((pair.p_tau_gt >= bound * (1 - 1e-12)).all()), x0
    one = exact_mh.correction_diagnostics(torch.tensor([0.01], dtype=torch.float64), 50, 64)
    q = 1 - 0.01 - 1 / 64
    assert math.isclose(one["term_cut_share"], q ** 49, rel_tol=1e-9)
    assert math.isclose(one["steps_past_cap_lower"], 0.01 / (0.01 + 1 / 64) * q ** 49, rel_tol=1e-9)
    two = exact_mh.correction_diagnostics(torch.tensor([0.5, 1e-4]), 50, 2 ** 20)   # mass, not count:
    assert two["term_cut_share"] > 5 * two["p_cap_given_correction_lower"]          # the rare start dominates


def test_pair_chain_refuses_what_it_cannot_hold():
    big = random_dbm([4, 3, 3], seed=6)                    # 2^10 free states
    with pytest.raises(ValueError, match="at most 2"):
        exact_mh.capped_expectation(big, torch.full((1024,), 1 / 1024), 3)
    m = random_dbm(SIZES, seed=6)
    with pytest.raises(ValueError, match="probability vector"):
        exact_mh.capped_expectation(m, torch.ones(64), 3)
    with pytest.raises(ValueError, match="max_steps"):
        exact_mh.capped_expectation(m, torch.full((64,), 1 / 64), 0)


@pytest.mark.parametrize("phase", ["pos", "neg"])
def test_draw_pi0_has_pi0s_law(phase, gen):
    """``draw_pi0`` (the diagnostics' X0) draws the estimator's pi0 (chi-square against
    ``exact.pi0_table``, the released random order)."""
    m = random_dbm([3, 3, 3], seed=8, w_scale=2.0)
    v1 = torch.tensor([1.0, 0.0, 1.0])
    xs = dbm.estimator("ucd-mh-lmi").draw_pi0(m, v1.expand(100_000, 3).clone(), phase, gen)
    bits, p = exact.pi0_table(m, "random", v1 if phase == "pos" else None)
    table = torch.zeros(1 << 9, dtype=torch.float64)
    table[exact.state_index(bits)] = p
    chi2_gof(joint_index(xs), table)
    with pytest.raises(ValueError, match="phase"):
        dbm.estimator("ucd-mh-lmi").draw_pi0(m, v1.expand(4, 3).clone(), "both", gen)
