"""One kernel step each: Gibbs sweep, local-mode search (from noise / warm), coupled MH and
coupled Gibbs steps."""
import pytest
import torch

from dbm import couplings, samplers
from benchmarks.conftest import BATCHES, DEVICES, SHAPES, make_model, record, sync


def sweep_flops(shape, batch):
    """A sweep uses every W_l twice (even update, odd update): 2 * 2 * B * n_l * n_{l-1}."""
    return 4 * batch * sum(a * b for a, b in zip(shape[:-1], shape[1:]))


@pytest.mark.benchmark(group="gibbs-sweep")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_gibbs_sweep(benchmark, peak_gflops, device, batch, shape_name):
    shape = SHAPES[shape_name]
    m = make_model(shape, device)
    g = torch.Generator(device=device).manual_seed(0)
    xs = m.random_state(batch, g)
    u = samplers.draw_uniforms(m, batch, g)

    def run():
        out = samplers.gibbs_update(m, xs, u)
        sync(device)
        return out
    benchmark.pedantic(run, rounds=10, warmup_rounds=2)
    record(benchmark, peak_gflops, device, shape_name, shape, batch, sweep_flops(shape, batch),
           step="gibbs_sweep")


@pytest.mark.benchmark(group="local-mode")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("start", ["noise", "warm"])
def test_local_mode(benchmark, peak_gflops, device, batch, start):
    shape = SHAPES["binary-784x3"]
    m = make_model(shape, device)
    g = torch.Generator(device=device).manual_seed(0)
    xs = m.random_state(batch, g)
    if start == "warm":                        # a mode perturbed by one T = 1 sweep
        xs, _ = samplers.gibbs_step(m, samplers.local_mode(m, xs)[0], g)
    _, info = samplers.local_mode(m, xs)

    def run():
        out = samplers.local_mode(m, xs)
        sync(device)
        return out
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    # work done: chain-sweeps actually run (chains stop when converged)
    chain_sweeps = float(info.sweeps.sum())
    flops = sweep_flops(shape, 1) * chain_sweeps
    # dense-equivalent: the incremental search does less (sparse updates), so "gflops" here is
    # the rate of a dense search doing the same sweeps, not the achieved matmul rate
    record(benchmark, peak_gflops, device, "binary-784x3", shape, batch, flops, step=f"local_mode_{start}",
           flops_kind="dense-equivalent",
           mean_sweeps=float(info.sweeps.float().mean()), max_sweeps=int(info.sweeps.max()))


@pytest.mark.benchmark(group="coupled-mh")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
def test_coupled_mh_step(benchmark, peak_gflops, device, batch):
    shape = SHAPES["binary-784x3"]
    m = make_model(shape, device)
    g = torch.Generator(device=device).manual_seed(0)
    x, y = samplers.mh_init(m, m.random_state(batch, g)), samplers.mh_init(m, m.random_state(batch, g))
    mh = samplers.MH(m)

    def run():
        out = couplings.coupled_mh_step(mh, x, y, g)
        sync(device)
        return out
    benchmark.pedantic(run, rounds=10, warmup_rounds=2)
    record(benchmark, peak_gflops, device, "binary-784x3", shape, batch, sweep_flops(shape, batch) / 2,
           step="coupled_mh_step")


@pytest.mark.benchmark(group="coupled-gibbs")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("coupling", ["maximal", "crn"])
def test_coupled_gibbs_step(benchmark, peak_gflops, device, batch, coupling):
    shape = SHAPES["binary-784x3"]
    m = make_model(shape, device)
    g = torch.Generator(device=device).manual_seed(0)
    x, y = m.random_state(batch, g), m.random_state(batch, g)
    gibbs = samplers.Gibbs(m)

    def run():
        out = couplings.coupled_gibbs_step(gibbs, x, y, g, coupling=coupling)
        sync(device)
        return out
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    record(benchmark, peak_gflops, device, "binary-784x3", shape, batch, 2 * sweep_flops(shape, batch),
           step=f"coupled_gibbs_{coupling}")


@pytest.mark.benchmark(group="local-mode-order")
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("start", ["noise", "warm"])
@pytest.mark.parametrize("order", ["even-first", "random"])
def test_local_mode_order(benchmark, peak_gflops, batch, start, order):
    """The search of pi0 in either block order on the same model from the same starts (CPU): the
    cost of per-chain orders alone, apart from the model a faithful run trains (issue 30)."""
    shape, device = SHAPES["binary-784x3"], "cpu"
    m = make_model(shape, device)
    g = torch.Generator().manual_seed(0)
    xs = m.random_state(batch, g)
    if start == "warm":
        xs, _ = samplers.gibbs_step(m, samplers.local_mode(m, xs)[0], g)
    of = samplers.draw_order(order, batch, g)
    kernel = samplers.Gibbs(m)
    _, info = kernel.local_mode(xs, odd_first=of)

    def run():
        return kernel.local_mode(xs, odd_first=of)
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    chain_sweeps = float(info.sweeps.sum())
    record(benchmark, peak_gflops, device, "binary-784x3", shape, batch, sweep_flops(shape, 1) * chain_sweeps,
           step=f"local_mode_{start}_{order}", flops_kind="dense-equivalent",
           mean_sweeps=float(info.sweeps.float().mean()), max_sweeps=int(info.sweeps.max()))
