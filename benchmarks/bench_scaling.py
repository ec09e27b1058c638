"""How the cost of one UCD-MH-LMI training update grows with the width d of a DBM d-d-d (L = 2
hidden layers), at batch 100 and 1000: the update's time, its local-search sweeps T (both
phases) and its executed matrix-product FLOPs (so the matrix-product peak of the same run is
the limit line). ``python -m benchmarks.plot_scaling`` fits the exponents and draws
results/bench_scaling.png from results/bench.csv.

The data are uniform random bits (no data set has every width); the model is the fresh
orthogonal initialisation, SGD lr 1e-2, and updates 3.. are timed as in ``bench_estimators``.
"""
import pytest
import torch

import dbm
from benchmarks.bench_estimators import count_flops, update_fn
from benchmarks.conftest import BATCHES, DEVICES, data, make_model, record

WIDTHS = [100, 200, 500, 1000, 2000]


def random_batches(width, batch, device):
    seed = 0
    while True:
        seed += 1
        yield data((width,), batch, device, seed=seed)


@pytest.mark.benchmark(group="scaling")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("width", WIDTHS)
def test_update_scaling(benchmark, peak_gflops, device, batch, width):
    shape = (width, width, width)
    model = make_model(shape, device)
    est = dbm.estimator("ucd-mh-lmi")
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    gen = torch.Generator(device=device).manual_seed(0)
    update = update_fn(model, est, opt, sched, random_batches(width, batch, device), gen, device)
    for _ in range(2):
        update()
    rounds = 10 if width * batch <= 500_000 else 4
    benchmark.pedantic(update, rounds=rounds, warmup_rounds=0)
    flops, info = count_flops(update)
    s = info.summary()
    record(benchmark, peak_gflops, device, f"{width}x3", shape, batch, flops, step="scaling_update_ucd-mh-lmi",
           width=width, pos_sweeps_mean=s["pos_sweeps_mean"], neg_sweeps_mean=s["neg_sweeps_mean"],
           neg_p_tau1=s["neg_p_tau1"])
