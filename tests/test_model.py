"""Closed-form checks of the model, the encodings and input validation."""
import pytest
import torch

import dbm
from dbm import exact
from stat_helpers import random_dbm


def hand_dbm():
    m = dbm.DBM([2, 2, 1], init="zeros")
    with torch.no_grad():
        m.weights[0].copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0]]))
        m.weights[1].copy_(torch.tensor([[2.0, -1.0]]))
        m.biases[0].copy_(torch.tensor([0.1, -0.2]))
        m.biases[1].copy_(torch.tensor([0.3, 0.0]))
        m.biases[2].copy_(torch.tensor([-0.5]))
    return m


def test_energy_of_hand_written_dbm():
    m = hand_dbm()
    xs = (torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0]]))
    # -(b.x) = -(0.1 + 0.3 - 0.5); h1^T W1 v = 1 + 0.5; h2^T W2 h1 = 2 - 1
    assert m.energy(xs).item() == pytest.approx(0.1 - 1.5 - 1.0)
    assert m.logits(xs, 0)[0].tolist() == pytest.approx([0.1 + 1.5, -0.2 - 1.0])
    assert m.logits(xs, 1)[0].tolist() == pytest.approx([0.3 + 1.0 + 2.0, 0.0 + 0.5 - 1.0])
    assert m.logits(xs, 2)[0].tolist() == pytest.approx([-0.5 + 1.0])


@pytest.mark.parametrize("sizes", [[3, 3, 3], [4, 3], [2, 3, 2, 2]])
def test_conditionals_are_ratios_of_joint_probabilities(sizes):
    m = random_dbm(sizes, seed=1).double()
    bits, probs = exact.joint_table(m)
    xs = bits.split(sizes, -1)
    k = torch.arange(bits.shape[0])
    offset = 0
    for l, n in enumerate(sizes):
        p1 = torch.sigmoid(m.logits(xs, l)).detach()                       # (2^N, n_l)
        for i in range(n):
            bit = 1 << (offset + i)
            on, off = k | bit, k & ~bit
            ratio = probs[on] / (probs[on] + probs[off])
            torch.testing.assert_close(p1[:, i], ratio, rtol=1e-9, atol=1e-12)
        offset += n


@pytest.mark.parametrize("sizes", [[3, 3, 3], [2, 2, 2, 2], [3, 2]])
def test_free_energy_sums_out_odd_layers(sizes):
    m = random_dbm(sizes, seed=2).double()
    bits, _ = exact.joint_table(m)
    xs = bits.split(sizes, -1)
    e = m.energy(xs).detach()
    even_key = torch.cat([xs[l] for l in m.layers(0)], -1)
    f = m.free_energy(xs).detach()
    for key in torch.unique(even_key, dim=0):
        rows = (even_key == key).all(-1)
        brute = -torch.logsumexp(-e[rows], 0)
        torch.testing.assert_close(f[rows], brute.expand(int(rows.sum())), rtol=1e-10, atol=1e-10)


def test_offsets_change_parameterisation_not_distribution():
    m = random_dbm([3, 3, 2], seed=3).double()
    _, before = exact.joint_table(m)
    mus = [torch.full((n,), 0.5, dtype=torch.float64) for n in m.layer_sizes]
    m.set_offsets(mus)
    assert m.centered
    _, after = exact.joint_table(m)
    torch.testing.assert_close(before, after, rtol=1e-10, atol=1e-12)
    # the centred energy is the definition with c = x - mu
    g = torch.Generator().manual_seed(0)
    xs = m.random_state(5, g)
    c = [x - mu for x, mu in zip(xs, mus)]
    e = -sum(c[l] @ m.biases[l] for l in range(3)) - sum(
        ((c[l] @ m.weights[l - 1]) * c[l - 1]).sum(-1) for l in (1, 2))
    torch.testing.assert_close(m.energy(xs), e)


def test_orthogonal_init_and_sizes():
    m = dbm.DBM([784, 784, 784], generator=torch.Generator().manual_seed(0))
    assert m.num_parameters() == 1_231_664
    w = m.weights[0].detach().double()
    torch.testing.assert_close(w @ w.T, torch.eye(784, dtype=torch.float64), atol=1e-5, rtol=0)
    assert all(float(b.detach().abs().sum()) == 0 for b in m.biases)
    assert m.weights[1].shape == (784, 784) and dbm.DBM([6, 4, 2]).weights[1].shape == (2, 4)


def test_encodings_round_trip_every_pixel_value():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    bits = dbm.encode_8bit(pixels)
    assert bits.shape == (1, 256 * 8) and set(bits.unique().tolist()) == {0.0, 1.0}
    assert bits[0, 8 * 5:8 * 6].tolist() == [1, 0, 1, 0, 0, 0, 0, 0]          # 5, LSB first
    back = dbm.decode_8bit(bits, (16, 16))
    assert torch.equal(torch.round(back * 255).to(torch.uint8), pixels)
    assert torch.equal(dbm.encode_8bit(pixels.float() / 255), bits)
    b = dbm.encode_binary(pixels)
    assert torch.equal(b[0], (torch.arange(256) > 127.5).float())
    g = torch.Generator().manual_seed(0)
    s = dbm.encode_binary(torch.full((1, 20000), 64, dtype=torch.uint8), generator=g)
    assert abs(s.mean().item() - 64 / 255) < 5 * (0.25 / 20000) ** 0.5


def test_bad_input_raises_clear_errors(gen):
    m = dbm.DBM([4, 3, 2])
    est = dbm.estimator("ucd-mh-lmi")
    with pytest.raises(ValueError, match="shape"):
        est.loss(m, torch.zeros(5, 3), None, gen)
    with pytest.raises(ValueError, match="binary"):
        est.loss(m, torch.full((5, 4), 0.5), None, gen)
    with pytest.raises(TypeError, match="Generator"):
        est.loss(m, torch.zeros(5, 4), None, 0)
    with pytest.raises(ValueError, match="generator is on"):
        dbm.validate.check_generator(gen, torch.device("meta"))
    with pytest.raises(ValueError, match="layer_sizes"):
        dbm.DBM([4])
    with pytest.raises(ValueError, match="layer 1"):
        m.energy((torch.zeros(2, 4), torch.zeros(2, 2), torch.zeros(2, 2)))
    with torch.no_grad():
        m.weights[1][0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        est.loss(m, torch.zeros(5, 4), None, gen)
    with pytest.raises(ValueError, match="unknown estimator"):
        dbm.estimator("cd-100")
    with pytest.raises(ValueError, match="lie in"):
        dbm.encode_8bit(torch.full((1, 3), 1.5))


def test_check_finite_names_the_bad_parameter_and_accepts_huge_finite_entries():
    """A NaN or inf is named; finite entries whose float32 sum overflows are not a false alarm."""
    import pytest
    m = dbm.DBM([5, 4, 3], generator=torch.Generator().manual_seed(0))
    m.check_finite()
    with torch.no_grad():
        m.weights[1][0, :2] = 3e38                         # the row's float32 sum is inf
    m.check_finite()
    for bad in (float("nan"), float("inf")):
        with torch.no_grad():
            m.biases[2][1] = bad
        with pytest.raises(ValueError, match="biases.2 has NaN or infinite"):
            m.check_finite()


def test_panel_transpose_equals_the_transpose():
    from dbm.model import transpose
    for shape in ((784, 784), (1000, 300), (100, 784), (257, 3)):
        w = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        assert torch.equal(transpose(w), w.T.contiguous()) and transpose(w).is_contiguous()


@pytest.mark.parametrize("sizes,clamp", [([5, 4, 3], False), ([5, 4, 3], True), ([6, 5], True), ([4, 3, 3, 2], False)])
def test_energy_from_the_even_logits_equals_the_energy(sizes, clamp, gen):
    """DBM.energy_from_even: eq. (1) summed over the even block's logits (v's terms from the
    visible-term cache when v is clamped) gives E(x), centred models included."""
    for centered in (False, True):
        m = dbm.DBM(sizes, init="gaussian", sigma=0.7, generator=torch.Generator().manual_seed(3))
        if centered:
            m.set_offsets([torch.rand(n, generator=gen) for n in sizes])
        xs = m.random_state(50, gen)
        even = {l: m.logits(xs, l) for l in m.layers(0) if not (l == 0 and clamp)}
        vp = m.visible_term(xs[0]) if clamp else None
        assert torch.allclose(m.energy_from_even(xs, even, vp), m.energy(xs), atol=1e-4)
