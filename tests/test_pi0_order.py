"""pi0's block order (the faithful-order issue): the sampled pi0 of each order against its exact
law (chi-square, TEST_FAILURE_RATE each), the power to tell the orders apart, the incremental
search against the dense reference with per-chain orders, and the even-first ablations against
the estimators of before the change."""
import pytest
import torch

import dbm
from dbm import exact, presets, samplers
from dbm.estimators import UCDMHLMI
from dbm.metrics.samples import modes
from conftest import search_case
from stat_helpers import chi2_gof, joint_index, random_dbm

N = 200_000
SIZES = [3, 3, 3]


def full_table(model, order, v=None):
    """pi0's exact probabilities over every joint state (zero where v differs from ``v``)."""
    bits, probs = exact.pi0_table(model, order, v)
    out = torch.zeros(1 << sum(model.layer_sizes), dtype=torch.float64)
    out[exact.state_index(bits)] = probs
    return out


def sample_pi0(model, order, gen, v=None):
    """N draws of X0 from UCD-MH-LMI's pi0 (positive phase when ``v`` (n_0,) is given)."""
    est = UCDMHLMI(order=order)
    n0 = model.layer_sizes[0]
    batch_v = torch.zeros(N, n0) if v is None else v.expand(N, n0).clone()
    xs, sweep, _, _, _ = est._pi0(model, batch_v, None if v is None else True, gen, "neg" if v is None else "pos", 1,
                                  est.init_state())
    return xs, sweep


@pytest.mark.parametrize("clamped", [False, True])
@pytest.mark.parametrize("order", ["even-first", "odd-first", "random"])
def test_pi0_matches_its_exact_law(order, clamped, gen):
    """The estimator's X0 (local search in the search's order, one T = 1 sweep in its own) has the
    law enumerated by ``exact.pi0_table``; the odd logits (even first) or the energies (per-chain
    orders) it hands on to the MH chain are exact for every chain."""
    m = random_dbm(SIZES, seed=21, w_scale=2.0)
    v = torch.tensor([1.0, 0.0, 1.0]) if clamped else None
    xs, sweep = sample_pi0(m, order, gen, v)
    if clamped:
        assert torch.equal(xs[0], v.expand_as(xs[0]))
    chi2_gof(joint_index(xs), full_table(m, order, v))
    for l, a in (sweep.odd_logits or {}).items():
        assert torch.allclose(a, m.logits(xs, l).detach(), atol=1e-5)
    if order != "even-first":
        assert torch.allclose(sweep.energy, m.energy(xs).detach(), atol=1e-4)


@pytest.mark.parametrize("order", ["even-first", "random"])
def test_sample_kinds_follow_the_order(order, gen):
    """``modes`` (the 'mode' and 'mode+1' kinds, the released sample()): mode+1 has pi0's law."""
    m = random_dbm(SIZES, seed=22, w_scale=2.0)
    mode, swept, _ = modes(m, N, gen, order)
    chi2_gof(joint_index(swept), full_table(m, order))
    for parity in (0, 1):                                  # every mode is a fixed point
        again, _ = samplers.Gibbs(m, 0.0).block(mode, parity, None)
        assert all(torch.equal(p, q) for p, q in zip(again, mode))


def test_the_orders_pi0_differ(gen):
    """Power: on this model the orders' laws are far apart (total variation > 0.05), and the
    even-first pi0 fails the chi-square test against the released (random-order) law."""
    m = random_dbm(SIZES, seed=21, w_scale=2.0)
    even, rand = full_table(m, "even-first"), full_table(m, "random")
    assert 0.5 * float((even - rand).abs().sum()) > 0.05
    xs, _ = sample_pi0(m, "even-first", gen)
    with pytest.raises(AssertionError, match="chi-square"):
        chi2_gof(joint_index(xs), rand)


def test_random_order_is_a_fair_coin_per_chain(gen):
    """draw_order('random'): about half the chains odd first (z-test, |z| < 4: rate ~6e-5)."""
    of = samplers.draw_order("random", 100_000, gen)
    assert of.dtype == torch.bool and abs(float(of.double().mean()) - 0.5) / (0.25 / 1e5) ** 0.5 < 4
    assert samplers.draw_order("even-first", 10, gen) is None
    assert bool(samplers.draw_order("odd-first", 10, gen).all())
    with pytest.raises(ValueError, match="order must be one of"):
        samplers.draw_order("sideways", 10, gen)
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        samplers.draw_order("random", 10, None)


@pytest.mark.parametrize("order", ["odd-first", "random"])
@pytest.mark.parametrize("sizes,clamp", [([784, 784, 784], None), ([784, 784, 784], True), ([300, 200, 100, 50], None),
                                         ([120, 80, 60], "mask")])
def test_incremental_search_equals_dense_reference_per_chain_order(sizes, clamp, order, gen):
    """With per-chain orders the incremental search reaches the dense reference's fixed points in
    the same sweep counts (float64: a near-tie has probability ~1e-5 over the test; see
    test_samplers.test_incremental_local_mode_equals_dense_reference), including the chains
    whose own last sweep straddles the shared schedule."""
    m, xs, clamp, of, kernel = search_case(sizes, clamp, order, gen)
    a, ia = kernel.local_mode(xs, odd_first=of)
    b, ib = kernel.local_mode(xs, method="dense", odd_first=of)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(ia.sweeps, ib.sweeps) and not ia.capped.any()
    logits = {**m.block_logits(a, 0), **m.block_logits(a, 1)}
    for l, t in ia.logits.items():                           # the logits handed on are exact, both blocks
        assert torch.allclose(t, logits[l].detach(), atol=1e-8)
    assert set(ia.logits) == {l for l in range(len(sizes)) if not (l == 0 and clamp is True)}


@pytest.mark.parametrize("clamp", [None, True, "mask"])
def test_numpy_and_torch_scans_agree_per_chain_order(gen, monkeypatch, clamp):
    """The device (torch) path of the search gives the NumPy path's modes and counts bit for bit
    with per-chain orders too."""
    m = dbm.DBM([120, 80, 60], generator=torch.Generator().manual_seed(11))
    xs = m.random_state(150, gen)
    if clamp == "mask":
        clamp = torch.rand(150, 120, generator=gen) < 0.4
    of = samplers.draw_order("random", 150, gen)
    runs = []
    for scan in (True, False):
        monkeypatch.setattr(samplers, "NUMPY_SCAN", scan)
        runs.append(samplers._Kernel(m, clamp, xs[0]).local_mode(xs, odd_first=of))
    (a, ia), (b, ib) = runs
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and torch.equal(ia.sweeps, ib.sweeps)


@pytest.mark.parametrize("clamp", [None, True, "mask"])
def test_sweep_from_a_mode_equals_the_per_group_sweep(gen, clamp):
    """``Gibbs.update`` handed a mode's logits of both blocks (first halves drawn on the whole
    batch, second halves per group) makes the per-group sweep's states bit for bit, with the same
    energies and odd logits (float64: the two compute the first half's logits on other rows)."""
    sizes = [120, 80, 60, 40]
    m = dbm.DBM(sizes, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    xs = m.random_state(150, gen)
    if clamp == "mask":
        clamp = torch.rand(150, sizes[0], generator=gen) < 0.4
    kernel = samplers.Gibbs(m, 1.0, clamp, xs[0])
    mode, lm = kernel.local_mode(xs, odd_first=samplers.draw_order("random", 150, gen))
    of = samplers.draw_order("random", 150, gen)
    u = samplers.draw_uniforms(m, 150, gen)
    a, ia = kernel.update(mode, u, logits=lm.logits, odd_first=of)
    b, ib = kernel.update(mode, u, odd_first=of)
    assert bool(of.any()) and not bool(of.all())
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.allclose(ia.energy, ib.energy, rtol=0, atol=1e-9)
    assert set(ia.odd_logits) == {1, 3}
    for l, t in ia.odd_logits.items():
        assert torch.allclose(t, ib.odd_logits[l], rtol=0, atol=1e-9)
        assert torch.allclose(t, m.logits(a, l).detach(), rtol=0, atol=1e-9)


def test_search_cap_with_per_chain_orders(gen):
    """A search stopped by its cap is counted as capped, whatever the chain's order."""
    m = dbm.DBM([50, 50, 50], init="gaussian", sigma=1.0, generator=torch.Generator().manual_seed(6))
    xs = m.random_state(64, gen)
    _, info = samplers.local_mode(m, xs, max_sweeps=1, order="random", generator=gen)
    assert info.capped.all() and (info.sweeps == 1).all()


# Parameters after 10 updates (sum and sum of squares of each tensor, float64, the checksum
# below) of the estimators as they were at 5d63874, before the faithful-order issue: the
# even-first ablations must reproduce them (the model is tiny and float64, so no CPU's BLAS
# rounding comes near a threshold; tolerance 1e-9 relative).
BEFORE = {
    "ucd-mh-lmi": [-9.977987116724, 9.946584488081, -0.269216927568, 7.751296614656, -1.26875, 0.261015625,
                   -0.60625, 0.1099609375, -0.30625, 0.0991796875],
    "official-single-chain": [-4.956112116724, 8.380789739137, 4.415158072432, 7.331043066144, -0.871875,
                              0.110185546875, 0.059375, 0.009189453125, 0.025, 0.00841796875],
    "ucd-mh-lmi-marg": [-3.79989600529, 8.60034557136, 1.862249575228, 7.145340714174, -0.45625, 0.2769140625,
                        -0.224281631359, 0.022957779334, -0.2125, 0.10322265625],
}


def checksum(preset: str) -> list[float]:
    m = dbm.DBM([12, 9, 7], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    est = presets.build(preset)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(2)
    data = (torch.rand(64, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) < 0.3).double()
    state = est.init_state()
    for t in range(10):
        loss, state, _ = est.loss(m, data[(16 * t) % 64:(16 * t) % 64 + 16], state, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [float(f) for p in m.parameters() for f in (p.detach().sum(), (p.detach() ** 2).sum())]


@pytest.mark.parametrize("old", sorted(BEFORE))
def test_even_first_ablations_reproduce_the_estimators_of_before(old):
    """``<name>-even-first`` trains exactly as ``<name>`` did before pi0's order was drawn, and
    ``<name>`` itself now trains differently (the checksum can tell them apart)."""
    assert checksum(f"{old}-even-first") == pytest.approx(BEFORE[old], rel=1e-9, abs=1e-12)
    assert checksum(old) != pytest.approx(BEFORE[old], rel=1e-6)
