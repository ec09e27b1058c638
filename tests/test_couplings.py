"""Couplings: each chain keeps the single-chain law, met chains stay met, and the meeting
probabilities equal their closed forms (binomial z-tests, TEST_FAILURE_RATE each)."""
import pytest
import torch
from scipy import stats

from dbm import coupled, couplings, exact, samplers
from stat_helpers import TEST_FAILURE_RATE, binomial_z, chi2_gof, joint_index, random_dbm

N = 200_000
ZMAX = stats.norm.isf(TEST_FAILURE_RATE / 2)


def product_probs(a):
    """Exact law of a product of Bernoulli(sigmoid(a)) over all 2^n vectors."""
    bits = exact.all_bits(a.shape[0])
    p = torch.sigmoid(a.double())
    return (bits * p + (1 - bits) * (1 - p)).prod(-1)


def test_maximal_bernoulli_coupling(gen):
    a_p = torch.tensor([1.0, -0.5, 0.3, 2.0])
    a_q = torch.tensor([0.2, 0.4, -1.0, 1.5])
    x, y, info = couplings.maximal_bernoulli(a_p.expand(N, 4), a_q.expand(N, 4), gen)
    P, Q = product_probs(a_p), product_probs(a_q)
    chi2_gof(exact.state_index(x), P)
    chi2_gof(exact.state_index(y), Q)
    p_meet = float(torch.minimum(P, Q).sum())                  # 1 - TV(P, Q)
    meet = int((x == y).all(-1).sum())
    assert abs(binomial_z(meet, N, p_meet)) < ZMAX
    assert torch.equal(info.met, (x == y).all(-1) & info.met) and not info.capped.any()


def test_crn_bernoulli_meets_with_product_probability(gen):
    a_p = torch.tensor([1.0, -0.5, 0.3, 2.0, 0.0])
    a_q = torch.tensor([0.2, 0.4, -1.0, 1.5, 0.1])
    u = torch.rand(N, 5, generator=gen)
    x, y = couplings.crn_bernoulli(a_p.expand(N, 5), a_q.expand(N, 5), u)
    p_meet = float((1 - (torch.sigmoid(a_p) - torch.sigmoid(a_q)).abs()).prod())
    assert abs(binomial_z(int((x == y).all(-1).sum()), N, p_meet)) < ZMAX
    chi2_gof(exact.state_index(x), product_probs(a_p))
    chi2_gof(exact.state_index(y), product_probs(a_q))


@pytest.mark.parametrize("kind", ["mh", "gibbs-maximal", "gibbs-crn", "mixed", "mixed-marg"])
def test_each_chain_of_coupled_step_has_single_chain_law(kind, gen):
    sizes = [3, 3, 3]
    m = random_dbm(sizes, seed=20)
    bits, probs = exact.joint_table(m)
    kx = torch.multinomial(probs, N, replacement=True, generator=gen)
    ky = torch.multinomial(probs, N, replacement=True, generator=gen)
    x = tuple(t.float() for t in bits[kx].split(sizes, -1))
    y = tuple(t.float() for t in bits[ky].split(sizes, -1))
    if kind == "mh":
        (sx, sy), _ = couplings.coupled_mh_step(samplers.MH(m), samplers.mh_init(m, x), samplers.mh_init(m, y), gen)
        x2, y2 = sx.xs, sy.xs
    elif kind.startswith("mixed"):               # two sweeps (maximal), then MH; marg: on x_even
        marg = kind == "mixed-marg"
        k = samplers.GibbsMH(m, marginalize=marg, sweeps=2)
        (sx, sy), info = couplings.coupled_gibbs_mh_step(k, k.init(x), k.init(y), gen)
        assert not info.residual_capped.any()
        if marg:                                 # the chains hold x_even; the law is its marginal
            x2, y2, probs = _even(sx.xs), _even(sy.xs), _even_marginal(m, bits, probs)
            chi2_gof(x2, probs)
            chi2_gof(y2, probs)
            return
        x2, y2 = sx.xs, sy.xs
    else:
        (x2, y2), info = couplings.coupled_gibbs_step(samplers.Gibbs(m), x, y, gen, coupling=kind.split("-")[1])
        assert not info.residual_capped.any()
    chi2_gof(joint_index(x2), probs)
    chi2_gof(joint_index(y2), probs)


def _even(xs):
    """Index of x_even (the even layers' bits) among the 2^(even units) states."""
    return exact.state_index(torch.cat([x for l, x in enumerate(xs) if l % 2 == 0], -1))


def _even_marginal(m, bits, probs):
    """P(x_even) from the joint table (summing out the odd layers)."""
    n_even = sum(n for l, n in enumerate(m.layer_sizes) if l % 2 == 0)
    return torch.zeros(2 ** n_even, dtype=probs.dtype).index_add_(0, _even(bits.split(m.layer_sizes, -1)), probs)


@pytest.mark.parametrize("kind", ["mh", "maximal", "crn", "mixed"])
def test_met_chains_stay_met(kind, gen):
    m = random_dbm([5, 4, 3], seed=21)
    x = m.random_state(2000, gen)
    if kind == "mixed":
        k = samplers.GibbsMH(m, sweeps=2)
        s = k.init(x)
        for _ in range(5):
            (a, b), _ = couplings.coupled_gibbs_mh_step(k, s, s, gen)
            assert couplings.states_equal(a.xs, b.xs).all()
            s = a
    elif kind == "mh":
        s = samplers.mh_init(m, x)
        for _ in range(5):
            (a, b), _ = couplings.coupled_mh_step(samplers.MH(m), s, s, gen)
            assert torch.equal(couplings.states_equal(a.xs, b.xs), torch.ones(2000, dtype=torch.bool))
            s = a
    else:
        for _ in range(5):
            (a, b), _ = couplings.coupled_gibbs_step(samplers.Gibbs(m), x, x, gen, coupling=kind)
            assert couplings.states_equal(a, b).all()
            x = a


def test_coupled_mh_meets_only_when_both_accept(gen):
    m = random_dbm([4, 3, 3], seed=22)
    x, y = samplers.mh_init(m, m.random_state(5000, gen)), samplers.mh_init(m, m.random_state(5000, gen))
    prop, log_u = samplers.MH(m).propose(x.xs, gen)
    e = m.energy(prop).detach()
    x2, y2, ax, ay = couplings.coupled_mh_update(x, y, prop, e, log_u)
    met = couplings.states_equal(x2.xs, y2.xs)
    assert torch.equal(met, (ax & ay) | couplings.states_equal(x.xs, y.xs) |
                       (ax & couplings.states_equal(prop, y.xs)) | (ay & couplings.states_equal(prop, x.xs)))


def test_driver_caps_are_counted(gen):
    m = random_dbm([4, 3, 3], seed=23, w_scale=2.0)
    x0 = samplers.mh_init(m, m.random_state(500, gen))
    y0 = samplers.mh_init(m, m.random_state(500, gen))
    res = coupled.run_coupled(
        x0, y0, step=lambda s, idx: samplers.mh_step(m, s, gen),
        coupled_step=lambda a, b, idx: couplings.coupled_mh_step(samplers.MH(m), a, b, gen),
        met=lambda a, b: couplings.states_equal(a.xs, b.xs), max_steps=2)
    assert res.capped.any() and (res.tau[res.capped] == 2).all()
    assert (res.tau >= 1).all() and res.tau.max() <= 2
    assert res.chain.shape[0] == int((res.tau - 1).sum()) == res.plus.xs[0].shape[0]
