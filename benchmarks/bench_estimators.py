"""The estimator's loss + backward, and a full training update (the authors' protocol: binary
MNIST when available, DBM 784-784-784, SGD lr 1e-2 / sqrt(1 + 1e-3 t), fresh orthogonal init;
rounds are consecutive updates 5.., so the model trains while it is timed)."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import dbm
from benchmarks.conftest import BATCHES, DEVICES, SHAPES, data, make_model, record, shared_data_dir, sync

VARIANTS = {"cold": {}, "warm": {"warm_start": True}}


def batches(batch, device):
    """Binary MNIST batches drawn with replacement (random bits if the data set is absent)."""
    d = shared_data_dir()
    g = torch.Generator().manual_seed(0)
    if d is None:
        while True:
            yield data(SHAPES["binary-784x3"], batch, device, seed=int(torch.randint(1 << 30, (1,), generator=g)))
    from dbm.data import load_images
    x = dbm.encode_binary(load_images("mnist", "train", d)).to(device)
    while True:
        yield x[torch.randint(0, x.shape[0], (batch,), generator=g).to(device)]


def update_fn(model, est, opt, sched, it, gen, device):
    state = est.init_state()

    def update():
        nonlocal state
        loss, state, info = est.loss(model, next(it), state, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        sync(device)
        return info
    return update


def authors_update(shape, batch, device, est):
    """(model, update): a fresh model of ``shape`` and one training update of ``est`` with the
    authors' optimiser (SGD lr 1e-2 / sqrt(1 + 1e-3 t)) on binary MNIST batches of ``batch``."""
    model = make_model(shape, device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: (1 + 1e-3 * t) ** -0.5)
    gen = torch.Generator(device=device).manual_seed(0)
    return model, update_fn(model, est, opt, sched, batches(batch, device), gen, device)


def count_flops(fn):
    with FlopCounterMode(display=False) as counter:
        info = fn()
    return counter.get_total_flops(), info


@pytest.mark.benchmark(group="update")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_update(benchmark, peak_gflops, device, batch, variant):
    shape = SHAPES["binary-784x3"]
    _, update = authors_update(shape, batch, device, dbm.estimator("ucd-mh-lmi", **VARIANTS[variant]))
    for _ in range(4):                              # updates 1-4 untimed, as the reference protocol
        update()
    benchmark.pedantic(update, rounds=26, warmup_rounds=0)    # updates 5-30 timed
    flops, info = count_flops(update)               # update 31: dense matrix-product FLOPs
    s = info.summary()
    record(benchmark, peak_gflops, device, "binary-784x3", shape, batch, flops,
           step=f"train_update_ucd-mh-lmi_{variant}", estimator="ucd-mh-lmi", variant=variant,
           pos_sweeps_mean=s["pos_sweeps_mean"], neg_sweeps_mean=s["neg_sweeps_mean"],
           neg_p_tau1=s["neg_p_tau1"])


@pytest.mark.benchmark(group="estimator-loss")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name,opts", [("ucd-mh-lmi", {}), ("ucd-mh-lmi", {"marginalize": True}),
                                       ("pcd", {"k": 1}), ("ucd-gibbs", {"max_steps": 20})])
def test_estimator_loss_backward(benchmark, peak_gflops, device, batch, name, opts):
    shape = SHAPES["binary-784x3"]
    model = make_model(shape, device)
    est = dbm.estimator(name, **opts)
    gen = torch.Generator(device=device).manual_seed(0)
    v = next(batches(batch, device))

    def run():
        loss, _, info = est.loss(model, v, None, gen)
        loss.backward()
        sync(device)
        return info
    flops, _ = count_flops(run)
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    tag = name + ("-marg" if opts.get("marginalize") else "")
    record(benchmark, peak_gflops, device, "binary-784x3", shape, batch, flops,
           step=f"loss_backward_{tag}", estimator=name)


@pytest.mark.benchmark(group="update-late")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_update_late(benchmark, peak_gflops, device, variant):
    """Updates 301-326 at batch 100: later in training, when one update moves the modes little
    and the warm-started local search needs fewer sweeps (early on it does not help)."""
    shape, batch = SHAPES["binary-784x3"], 100
    _, update = authors_update(shape, batch, device, dbm.estimator("ucd-mh-lmi", **VARIANTS[variant]))
    for _ in range(300):
        update()
    benchmark.pedantic(update, rounds=26, warmup_rounds=0)
    flops, info = count_flops(update)
    s = info.summary()
    record(benchmark, peak_gflops, device, "binary-784x3", shape, batch, flops,
           step=f"train_update_late_ucd-mh-lmi_{variant}", estimator="ucd-mh-lmi", variant=variant,
           pos_sweeps_mean=s["pos_sweeps_mean"], neg_sweeps_mean=s["neg_sweeps_mean"],
           neg_p_tau1=s["neg_p_tau1"])
