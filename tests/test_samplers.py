"""Kernels leave the exact law invariant (chi-square, TEST_FAILURE_RATE each); local search."""
import pytest
import torch

import dbm
from dbm import exact, samplers
from stat_helpers import chi2_gof, joint_index, random_dbm

N = 200_000


def table_sample(bits, probs, sizes, n, gen, keep=None):
    """Exact draws from the joint table, optionally conditioned on rows ``keep``."""
    p = probs if keep is None else probs * keep
    k = torch.multinomial(p / p.sum(), n, replacement=True, generator=gen)
    return tuple(x.float() for x in bits[k].split(sizes, -1)), p / p.sum()


@pytest.mark.parametrize("sizes,T", [([3, 3, 3], 1.0), ([4, 3], 1.0), ([2, 2, 2, 2], 1.0), ([3, 3, 3], 2.0)])
def test_gibbs_sweep_leaves_law_invariant(sizes, T, gen):
    m = random_dbm(sizes, seed=10)
    target = random_dbm(sizes, seed=10)
    with torch.no_grad():
        for p in target.parameters():
            p.div_(T)                                     # exp(-E/T) is the model with theta/T
    bits, probs = exact.joint_table(target)
    xs, _ = table_sample(bits, probs, sizes, N, gen)
    out, _ = samplers.gibbs_step(m, xs, gen, T=T)
    chi2_gof(joint_index(out), probs)


def test_clamped_gibbs_sweep_leaves_posterior_invariant(gen):
    sizes = [3, 3, 3]
    m = random_dbm(sizes, seed=11)
    bits, probs = exact.joint_table(m)
    for vbits in ([1, 0, 1], [0, 0, 0]):
        keep = (bits[:, :3] == torch.tensor(vbits, dtype=bits.dtype)).all(-1).double()
        xs, post = table_sample(bits, probs, sizes, N, gen, keep)
        out, _ = samplers.gibbs_step(m, xs, gen, clamp=True)
        assert torch.equal(out[0], xs[0])
        chi2_gof(joint_index(out), post)


def test_partially_clamped_gibbs_sweep(gen):
    sizes = [4, 3, 2]
    m = random_dbm(sizes, seed=12)
    bits, probs = exact.joint_table(m)
    mask = torch.tensor([True, False, True, False])
    keep = ((bits[:, 0] == 1) & (bits[:, 2] == 0)).double()
    xs, cond = table_sample(bits, probs, sizes, N, gen, keep)
    out, _ = samplers.gibbs_step(m, xs, gen, clamp=mask.expand(N, 4))
    assert torch.equal(out[0][:, mask], xs[0][:, mask])
    chi2_gof(joint_index(out), cond)


@pytest.mark.parametrize("clamp", [None, True])
def test_mh_step_leaves_law_invariant(clamp, gen):
    sizes = [3, 3, 3]
    m = random_dbm(sizes, seed=13)
    bits, probs = exact.joint_table(m)
    keep = None if clamp is None else (bits[:, :3] == torch.tensor([1.0, 1, 0], dtype=bits.dtype)).all(-1).double()
    xs, target = table_sample(bits, probs, sizes, N, gen, keep)
    state = samplers.mh_init(m, xs)
    for _ in range(2):
        state, info = samplers.mh_step(m, state, gen, clamp=clamp)
    assert 0.05 < info.accepted.float().mean() < 0.95
    torch.testing.assert_close(state.energy, m.energy(state.xs).detach())
    chi2_gof(joint_index(state.xs), target)


def test_marginalised_mh_targets_even_block_marginal(gen):
    sizes = [3, 3, 3]
    m = random_dbm(sizes, seed=14)
    bits, probs = exact.joint_table(m)
    xs, _ = table_sample(bits, probs, sizes, N, gen)
    state = samplers.mh_init(m, xs, marginalize=True)
    assert float(state.xs[1].abs().sum()) == 0
    for _ in range(2):
        state, _ = samplers.mh_step(m, state, gen, marginalize=True)
    # the marginal of (v, h2): sum the joint table over h1
    even = torch.cat([bits[:, :3], bits[:, 6:]], -1)
    marg = torch.zeros(64, dtype=torch.float64).index_add_(0, exact.state_index(even), probs)
    chi2_gof(exact.state_index(torch.cat([state.xs[0], state.xs[2]], -1)), marg)


@pytest.mark.parametrize("method", ["incremental", "dense"])
@pytest.mark.parametrize("sizes,clamp", [([20, 30, 25], None), ([20, 30, 25], True), ([15, 10], None),
                                         ([10, 12, 8, 6], None), ([20, 30, 25], "mask")])
def test_local_mode_is_fixed_point_and_lowers_energy(sizes, clamp, method, gen):
    m = dbm.DBM(sizes, init="gaussian", sigma=0.5, generator=torch.Generator().manual_seed(5))
    xs = m.random_state(300, gen)
    if clamp == "mask":
        clamp = torch.rand(300, sizes[0], generator=gen) < 0.5
    mode, info = samplers.local_mode(m, xs, clamp=clamp, method=method)
    assert not info.capped.any() and (info.sweeps >= 1).all()
    e0, e1 = m.energy(xs).detach(), m.energy(mode).detach()
    assert (e1 <= e0 + 1e-4).all()
    for parity in (0, 1):
        again, _ = samplers.Gibbs(m, 0.0, clamp).block(mode, parity, None)
        for a, b in zip(again, mode):
            assert torch.equal(a, b)
    if clamp is not None:
        assert torch.equal(mode[0][clamp if isinstance(clamp, torch.Tensor) else ...],
                           xs[0][clamp if isinstance(clamp, torch.Tensor) else ...])


def test_local_mode_cap_is_counted(gen):
    m = dbm.DBM([50, 50, 50], init="gaussian", sigma=1.0, generator=torch.Generator().manual_seed(6))
    xs = m.random_state(64, gen)
    _, info = samplers.local_mode(m, xs, max_sweeps=1)
    assert info.capped.all() and (info.sweeps == 1).all()
    full, info2 = samplers.local_mode(m, xs)
    assert not info2.capped.any() and int(info2.sweeps.max()) > 1
    # restarting from a mode takes exactly one sweep
    _, info3 = samplers.local_mode(m, full)
    assert (info3.sweeps == 1).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("sizes,clamp", [([784, 784, 784], None), ([784, 784, 784], True), ([300, 200, 100, 50], None)])
def test_incremental_local_mode_equals_dense_reference(sizes, clamp, dtype, gen):
    """On MNIST-sized models: the same fixed points in the same number of sweeps.

    The kept logits differ from recomputed ones by rounding only. A chain's path can differ from
    the dense reference's only where a logit lies within that rounding of 0, so that the two
    thresholds disagree (the dense product rounds too: neither path is the exact one). In float64
    (relative rounding ~1e-16 on logits of order 10) such a near-tie has probability ~1e-13 per
    unit and sweep, ~1e-5 over the test's 600 x 1568 units x ~15 sweeps, so every chain must agree.
    In float32 they are rare but real (measured: 1 chain in 1000, on an Intel Xeon's BLAS, whose
    sums round differently from the AMD EPYC's): at least 99 % of the chains must agree (more than
    2 of 200 has probability ~1e-3 at that rate). Every returned state is an exact fixed point."""
    m = dbm.DBM(sizes, generator=torch.Generator().manual_seed(7), dtype=dtype)
    xs = m.random_state(200, gen)
    a, ia = samplers.local_mode(m, xs, clamp=clamp, method="incremental")
    b, ib = samplers.local_mode(m, xs, clamp=clamp, method="dense")
    same = torch.stack([(x == y).all(-1) for x, y in zip(a, b)]).all(0) & (ia.sweeps == ib.sweeps)
    assert bool(same.all()) if dtype == torch.float64 else same.float().mean() >= 0.99
    for parity in (0, 1):
        again, _ = samplers.Gibbs(m, 0.0, clamp).block(a, parity, None)
        assert all(torch.equal(p, q) for p, q in zip(again, a))


@pytest.mark.parametrize("clamp", [None, True, "mask"])
def test_numpy_and_torch_flip_scans_give_the_same_search(gen, monkeypatch, clamp):
    """The CPU's NumPy scan of the flips (in place) and the torch path that devices run reach the
    same modes, sweep counts and even logits (bit for bit), clamps included: the device path is
    exercised on a CPU-only machine too."""
    m = dbm.DBM([120, 80, 60], generator=torch.Generator().manual_seed(11))
    xs = m.random_state(150, gen)
    if clamp == "mask":
        clamp = torch.rand(150, 120, generator=gen) < 0.4
    kept = [x.clone() for x in xs]
    runs = []
    for scan in (True, False):
        monkeypatch.setattr(samplers, "NUMPY_SCAN", scan)
        runs.append(samplers.local_mode(m, xs, clamp=clamp))
    assert all(torch.equal(x, k) for x, k in zip(xs, kept))          # the start is not changed in place
    (a, ia), (b, ib) = runs
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(ia.sweeps, ib.sweeps) and torch.equal(ia.capped, ib.capped)
    assert ia.logits.keys() == ib.logits.keys() and all(torch.equal(ia.logits[l], ib.logits[l]) for l in ia.logits)
    assert int(ia.sweeps.max()) > 2                                    # incremental sweeps were run
    column_major = tuple(x.T.contiguous().T for x in xs)              # same values, not contiguous
    c, ic = samplers.local_mode(m, column_major, clamp=clamp)
    assert all(torch.equal(x, y) for x, y in zip(a, c)) and torch.equal(ia.sweeps, ic.sweeps)


def test_random_bits_are_uniform_and_independent(gen):
    """Groups of 4 adjacent bits (also across the 64-bit word boundary) are uniform on 16 cells."""
    b = samplers.random_bits((50_000, 70), gen)
    assert set(b.unique().tolist()) == {0.0, 1.0}
    for start in (0, 30, 62, 66):
        chi2_gof(exact.state_index(b[:, start:start + 4]), torch.full((16,), 1 / 16, dtype=torch.float64))


def test_threshold_and_sample_bits_equal_the_comparisons(gen):
    """The float-arithmetic forms give exactly (a >= 0) and (u < sigmoid(a / T)), ties included."""
    a = torch.randn(200, 50, generator=gen) * 3
    a[0, :4] = torch.tensor([0.0, -0.0, 1e-45, -1e-45])
    assert torch.equal(samplers.threshold(a), (a >= 0).float())
    u = torch.rand(200, 50, generator=gen)
    u[1] = torch.sigmoid(a[1])                                  # u == p: not below p
    for T in (1.0, 0.5):
        assert torch.equal(samplers.sample_bits(a, u, T), (u < torch.sigmoid(a / T)).float())


def test_local_mode_recovers_from_drifting_kept_logits(gen, monkeypatch):
    """Kept logits that drift (noise injected into every incremental product) fail the batched
    exact check; those chains resume from exact logits and still end at exact fixed points."""
    m = dbm.DBM([60, 50, 40], init="gaussian", sigma=0.3, generator=torch.Generator().manual_seed(8))
    xs = m.random_state(200, gen)
    product = samplers._delta_product
    noise = torch.Generator().manual_seed(9)

    def drifting(delta, w):
        out = product(delta, w)
        return out + 0.05 * torch.randn(out.shape, generator=noise)
    monkeypatch.setattr(samplers, "_delta_product", drifting)
    mode, info = samplers.local_mode(m, xs)
    assert not info.capped.any()
    for parity in (0, 1):
        again, _ = samplers.Gibbs(m, 0.0).block(mode, parity, None)
        assert all(torch.equal(p, q) for p, q in zip(again, mode))
    logits = {**m.block_logits(mode, 0), **m.block_logits(mode, 1)}
    for l, a in info.logits.items():                            # the returned logits are exact
        assert torch.allclose(a, logits[l].detach(), atol=1e-5)
