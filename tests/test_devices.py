"""The device path: kernels, estimators, AIS and the three trainers on every device the machine
has (CUDA runs where one is present; on a CPU-only machine those cases are skipped with the
reason). Statistical checks use the declared TEST_FAILURE_RATE, as everywhere."""
import pytest
import torch

import dbm
from dbm import exact, samplers
from stat_helpers import random_dbm, z_scores, z_threshold


def on(model, device):
    return model.to(device)


def test_local_mode_is_the_dense_fixed_point(device):
    m = on(dbm.DBM([100, 80, 60], generator=torch.Generator().manual_seed(3)), device)
    g = torch.Generator(device=device).manual_seed(0)
    xs = m.random_state(300, g)
    a, ia = samplers.local_mode(m, xs)
    b, ib = samplers.local_mode(m, xs, method="dense")
    same = torch.stack([(x == y).all(-1) for x, y in zip(a, b)]).all(0)
    assert same.float().mean() >= 0.99 and not ia.capped.any()
    for parity in (0, 1):
        again, _ = samplers.Gibbs(m, 0.0).block(a, parity, None)
        assert all(torch.equal(p, q) for p, q in zip(again, a))


@pytest.mark.parametrize("name,opts", [("ucd-mh-lmi", {}), ("ucd-gibbs", {"max_steps": 10_000})])
def test_unbiased_on_device(device, name, opts):
    m = on(random_dbm([3, 3, 3], seed=100), device)
    gv = torch.Generator().manual_seed(100)
    v = torch.randint(0, 2, (2, 3), generator=gv).float().repeat(10_000, 1).to(device)
    est = dbm.estimator(name, **opts)
    g, _, info = est.chain_estimates(m, v, None, torch.Generator(device=device).manual_seed(100))
    assert int(info.pos.capped.sum() + info.neg.capped.sum()) == 0
    z = z_scores(g.cpu(), exact.exact_gradient(m.cpu(), v[:2].cpu()))
    assert z.abs().max() < z_threshold(z.numel())


def test_every_estimator_gives_a_finite_loss_and_gradient(device):
    m = on(dbm.DBM([20, 15, 10], generator=torch.Generator().manual_seed(1)), device)
    g = torch.Generator(device=device).manual_seed(0)
    v = (torch.rand(32, 20, generator=g, device=device) < 0.3).float()
    for name in dbm.ESTIMATORS:
        loss, _, _ = dbm.estimator(name).loss(m, v, None, g)
        m.zero_grad()
        loss.backward()
        assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all()
                                            for p in m.parameters())


def test_ais_on_device_matches_exact(device):
    from dbm.metrics.ais import ais_log_partition
    m = on(random_dbm([4, 3, 3], seed=5), device)
    r = ais_log_partition(m, torch.Generator(device=device).manual_seed(0), runs=200, betas=500)
    truth = float(exact.log_partition(m.cpu()).detach())
    assert abs(r.log_z - truth) < 6 * r.log_z_se + 1e-3


def test_trainers_run_on_device(device, tmp_path):
    from dbm.ebm.train import EBMConfig, EBMTrainer
    from dbm.train import TrainConfig, Trainer
    x = (torch.rand(200, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    cfg = TrainConfig(hidden=(8, 6), batch_size=20, updates=4, log_every=2, eval_every=2, ckpt_every=2,
                      out_dir=str(tmp_path / "dbm"), lr=0.05, device=device)
    df = Trainer(cfg, data=x, eval_data=x[:50]).run(progress=False)
    assert len(df) and df.value.notna().all()
    ecfg = EBMConfig(dataset="gmm", net="toy", n_f=4, optimizer="sgd", lr=0.1, eps=0.125, steps=5,
                     init="persistent", bank_size=100, batch_size=20, updates=4, ckpt_every=2,
                     out_dir=str(tmp_path / "ebm"), device=device)
    t = EBMTrainer(ecfg)
    t.run(progress=False)
    assert next(t.net.parameters()).device.type == torch.device(device).type


def test_trainers_resume_on_device(device, tmp_path):
    """Each trainer stops at its checkpoint and resumes on the same device (the checkpoint reader
    maps tensors to the device; generator states must go back as CPU tensors: on CUDA the DBM
    trainer's resume failed with "RNG state must be a torch.ByteTensor" until 2026-11-25)."""
    from dbm.baselines.train_gan import GANConfig, GANTrainer
    from dbm.ebm.train import EBMConfig, EBMTrainer
    from dbm.train import TrainConfig, Trainer
    x = (torch.rand(200, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    imgs = (torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    makers = {
        "pcd": lambda n: Trainer(TrainConfig(hidden=(8, 6), batch_size=20, updates=n, estimator="pcd", log_every=2,
                                             eval_every=2, ckpt_every=2, out_dir=str(tmp_path / "pcd"), lr=0.05,
                                             device=device), data=x, eval_data=x[:50]),
        "ucd-mh-lmi": lambda n: Trainer(TrainConfig(hidden=(8, 6), batch_size=20, updates=n, log_every=2,
                                                    eval_every=2, ckpt_every=2, out_dir=str(tmp_path / "ucd"),
                                                    lr=0.05, device=device), data=x, eval_data=x[:50]),
        "ebm": lambda n: EBMTrainer(EBMConfig(dataset="gmm", net="toy", n_f=4, optimizer="sgd", lr=0.1, eps=0.125,
                                              steps=5, init="persistent", bank_size=100, batch_size=20, updates=n,
                                              ckpt_every=2, out_dir=str(tmp_path / "ebm"), device=device)),
        "gan": lambda n: GANTrainer(GANConfig(kind="wgan-gp", width=4, batch_size=8, n_critic=1, steps=n, log_every=1,
                                              ckpt_every=2, out_dir=str(tmp_path / "gan"), device=device), imgs),
    }
    for name, make in makers.items():
        make(2).run(progress=False)
        t = make(4)
        assert t.resume() and t.step == 2, name
        t.run(progress=False)
        assert t.step == 4, name
