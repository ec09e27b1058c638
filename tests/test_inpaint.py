"""Inpainting: observed pixels stay fixed, local-search completions are clamped fixed points, and
Gibbs completions follow the exact conditional law p(v_missing | v_observed) (chi-square)."""
import pytest
import torch

from dbm import exact, inpaint, samplers
from stat_helpers import chi2_gof, random_dbm


def test_masks():
    assert inpaint.make_mask("left", 4)[0].view(4, 4)[:, 2:].sum() == 0
    assert inpaint.make_mask("center", 8)[0].sum() == 64 - 16
    g = torch.Generator().manual_seed(0)
    r = inpaint.make_mask("random", 28, rate=0.3, generator=g, batch=100)
    assert abs((~r).float().mean().item() - 0.3) < 0.01
    with pytest.raises(ValueError, match="unknown mask"):
        inpaint.make_mask("diagonal")


def test_local_search_completion_is_clamped_fixed_point(gen):
    m = random_dbm([16, 10, 8], seed=50)
    v = (torch.rand(20, 16, generator=gen) < 0.5).float()
    obs = inpaint.make_mask("top", 4, batch=20)
    done, info = inpaint.inpaint_local_search(m, v, obs, gen)
    assert torch.equal(done[obs], v[obs]) and (info.sweeps >= 1).all() and not info.capped.any()
    err = inpaint.missing_error(done, v, obs)
    assert err.shape == (20,) and ((err >= 0) & (err <= 1)).all()


def test_gibbs_completion_follows_exact_conditional(gen):
    sizes = [6, 3, 3]
    m = random_dbm(sizes, seed=51, w_scale=0.7)
    v = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    obs = torch.tensor([[True, True, True, False, False, False]])
    samples = inpaint.inpaint_gibbs(m, v, obs, gen, n_samples=100_000, sweeps=30)[:, 0, 3:]
    bits, probs = exact.joint_table(m)
    keep = (bits[:, :3] == v[0, :3].double()).all(-1)
    cond = torch.zeros(8, dtype=torch.float64).index_add_(0, exact.state_index(bits[keep][:, 3:6]), probs[keep])
    chi2_gof(exact.state_index(samples), cond / cond.sum())


def test_local_search_cap_is_reported_per_image(gen):
    """Issue 33: a search stopped by ``max_sweeps`` says so (its own flag, not inferred)."""
    m = random_dbm([16, 10, 8], seed=51, w_scale=3.0)
    v = (torch.rand(40, 16, generator=gen) < 0.5).float()
    obs = inpaint.make_mask("random", 4, rate=0.5, generator=gen, batch=40)
    _, info = inpaint.inpaint_local_search(m, v, obs, gen, max_sweeps=1)
    assert info.capped.any() and (info.sweeps[info.capped] == 1).all()
