"""WGAN-GP / WGAN baselines: shapes, the gradient penalty, exact resume, CLI."""
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import ROOT, synthetic_mnist
from dbm.baselines.train_gan import GANConfig, GANTrainer, load_generator, sample
from dbm.baselines.wgan import build, gradient_penalty
from dbm.errors import ConfigError
from dbm.provenance import file_sha256 as _sha256


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_reference_shapes(shape):
    G, D = build(shape, 8, torch.Generator().manual_seed(0))
    x = G(torch.randn(4, 128, generator=torch.Generator().manual_seed(1)))
    assert x.shape == (4, *shape) and (x >= 0).all() and (x <= 1).all()
    assert D(x).shape == (4,)


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = <a, x>: |grad| = |a| everywhere, so the penalty is (|a| - 1)^2 exactly."""
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 1, bias=False))
    with torch.no_grad():
        D[1].weight.fill_(0.1)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(5, 1, 28, 28, generator=g), torch.rand(5, 1, 28, 28, generator=g)
    gp = gradient_penalty(D, real, fake, torch.rand(5, generator=g))
    assert gp.item() == pytest.approx((0.1 * 28 - 1) ** 2, rel=1e-5)


@pytest.mark.parametrize("kind", ["wgan-gp", "wgan"])
def test_resume_reaches_the_same_networks(tmp_path, kind):
    data = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    cfg = dict(kind=kind, width=4, batch_size=8, n_critic=2, log_every=1, ckpt_every=3)
    full = GANTrainer(GANConfig(steps=6, out_dir=str(tmp_path / "full"), **cfg), data)
    full.run(progress=False)
    GANTrainer(GANConfig(steps=3, out_dir=str(tmp_path / "part"), **cfg), data).run(progress=False)
    resumed = GANTrainer(GANConfig(steps=6, out_dir=str(tmp_path / "part"), **cfg), data)
    assert resumed.resume() and resumed.step == 3
    resumed.run(progress=False)
    for a, b in zip([*full.G.parameters(), *full.D.parameters()], [*resumed.G.parameters(), *resumed.D.parameters()]):
        assert torch.equal(a, b)
    if kind == "wgan":
        assert all(p.abs().max() <= 0.01 + 1e-7 for p in resumed.D.parameters())
    G = load_generator(tmp_path / "part" / "model.safetensors")
    x = sample(G, 5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28) and set(x.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="n_critic"):
        GANTrainer(GANConfig(steps=6, out_dir=str(tmp_path / "part"), **dict(cfg, n_critic=3)), data).resume()


def test_cli_train_gan_on_synthetic_idx(tmp_path):
    data = synthetic_mnist(tmp_path / "data", n_train=100, n_test=20)
    out = tmp_path / "gan"
    cmd = [sys.executable, "-m", "dbm", "train-gan", "--data-dir", str(data), "--steps", "2", "--width", "4",
           "--batch-size", "8", "--n-critic", "1", "--out-dir", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "model.safetensors").exists() and (out / "metrics.csv").exists()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--resume" in r.stderr


def _fake_monitor(values):
    """A monitor that returns values[i] at the i-th evaluation (by step, so resume replays it)."""
    return lambda t: values[t.step // t.cfg.fd_every - 1]


def test_plateau_rule_stops_on_a_flat_trace_and_resume_keeps_the_stop(tmp_path):
    """FD falls for 4 evaluations then is constant: with the window at least 5 points the rule
    fires at the first step where the last 20 % is flat (and not before ``min_steps``)."""
    data = (torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    values = [100.0, 50.0, 25.0, 12.0] + [10.0, 11.0, 9.5, 10.5] * 20
    cfg = GANConfig(kind="wgan", width=4, batch_size=4, n_critic=1, steps=400, log_every=50, ckpt_every=7,
                    fd_every=2, stop_on_plateau=True, min_steps=10, out_dir=str(tmp_path / "g"))
    t = GANTrainer(cfg, data, monitor=_fake_monitor(values))
    df = t.run(progress=False)
    s = t.summary()
    assert s["stop_reason"] == "plateau" and s["steps_trained"] < 400 and s["steps_trained"] >= 10
    steps, fds = zip(*t.fd_trace)
    from dbm.metrics.convergence import tail_drift
    d = tail_drift(steps, fds, 0.2)
    assert d.flat and d.n >= 5
    # the rule had not fired one evaluation earlier
    e = tail_drift(steps[:-1], fds[:-1], 0.2)
    assert not (e.flat and e.n >= 5 and steps[-2] >= 10)
    assert set(df[df.metric == "classifier_fd"].step) == set(steps)
    again = GANTrainer(cfg, data, monitor=_fake_monitor(values))
    assert again.resume() and again.summary()["stop_reason"] == "plateau" and again.fd_trace == t.fd_trace
    again.run(progress=False)
    assert again.step == t.step                      # nothing more trained


def test_plateau_rule_reports_a_cap_and_needs_a_trace(tmp_path):
    data = (torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    falling = [100.0 / (i + 1) for i in range(50)]
    cfg = GANConfig(kind="wgan", width=4, batch_size=4, n_critic=1, steps=20, log_every=50, ckpt_every=7,
                    fd_every=2, stop_on_plateau=True, out_dir=str(tmp_path / "g"))
    t = GANTrainer(cfg, data, monitor=_fake_monitor(falling))
    t.run(progress=False)
    assert t.summary()["stop_reason"] == "cap" and t.step == 20 and len(t.fd_trace) == 10
    with pytest.raises(ValueError, match="fd_every"):
        GANConfig(stop_on_plateau=True)


def test_wall_time_adds_up_over_a_resume(tmp_path):
    data = (torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    cfg = dict(kind="wgan", width=4, batch_size=4, n_critic=1, log_every=1, ckpt_every=2)
    a = GANTrainer(GANConfig(steps=4, out_dir=str(tmp_path / "g"), **cfg), data)
    a.run(progress=False)
    first = a.wall_time()
    b = GANTrainer(GANConfig(steps=8, out_dir=str(tmp_path / "g"), **cfg), data)
    b.resume()
    saved = b.wall_time()
    assert 0 < saved <= first                   # as saved at step 4 (the save itself not counted)
    df = b.run(progress=False)
    w = df[df.metric == "wall_time_s"].set_index("step").value
    assert w[5] > saved and w.is_monotonic_increasing   # the clock goes on from the saved time


def test_cli_train_gan_logs_the_classifier_fd_trace(tmp_path):
    """The command line's default monitor: the suite classifier (trained into --classifier-dir on
    first use) and the test split's statistics."""
    import pandas as pd
    data = synthetic_mnist(tmp_path / "data", n_train=100, n_test=20)
    out = tmp_path / "gan"
    cmd = [sys.executable, "-m", "dbm", "train-gan", "--data-dir", str(data), "--steps", "2", "--width", "4",
           "--batch-size", "8", "--n-critic", "1", "--fd-every", "1", "--fd-n", "30",
           "--classifier-dir", str(tmp_path / "clf"), "--out-dir", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = pd.read_csv(out / "metrics.csv")
    fd = m[m.metric == "classifier_fd"]
    assert sorted(fd.step) == [1, 2] and (fd.value > 0).all()
    assert list((tmp_path / "clf" / "classifier").glob("*.safetensors"))   # the classifier, a result-cache cell


def _as_if_trained_on_cuda(out, legacy: bool = False):
    """Rewrite the newest checkpoint's state as a CUDA run's: a 16-byte Philox generator state,
    the device recorded (or, ``legacy``, only inferable from the state's size) and a GPU's name."""
    ckpt = sorted((out / "checkpoints").glob("step-*"))[-1] / "state.pt"
    state = torch.load(ckpt, weights_only=True)
    state["gen"] = torch.zeros(16, dtype=torch.uint8)
    state["trained_on"] = "some GPU"
    if legacy:
        state.pop("gen_device")
    else:
        state["gen_device"] = "cuda"
    torch.save(state, ckpt)
    manifest = json.loads((ckpt.parent / "manifest.json").read_text())
    manifest["files"]["state.pt"] = {"bytes": ckpt.stat().st_size, "sha256": _sha256(ckpt)}
    (ckpt.parent / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("legacy", [False, True])
def test_a_finished_cuda_run_loads_on_the_cpu_and_an_unfinished_one_is_refused(tmp_path, legacy):
    """fig26's GAN cells may be trained on a GPU: a finished one (here the cap) is read on the CPU
    for evaluation and keeps its ``trained_on``; an unfinished one cannot resume exactly there."""
    data = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    cfg = dict(kind="wgan-gp", width=4, batch_size=8, n_critic=1, log_every=1, ckpt_every=2)
    t = GANTrainer(GANConfig(steps=2, out_dir=str(tmp_path / "done"), **cfg), data)
    t.run(progress=False)
    assert t.summary()["trained_on"] == t.trained_on and "cpus" in t.trained_on
    _as_if_trained_on_cuda(tmp_path / "done", legacy)
    back = GANTrainer(GANConfig(steps=2, out_dir=str(tmp_path / "done"), **cfg), data)
    assert back.resume() and back.step == 2
    assert back.summary()["trained_on"] == "some GPU" and back.summary()["stop_reason"] == "fixed"
    for a, b in zip(t.G.parameters(), back.G.parameters()):
        assert torch.equal(a, b)
    back.run(progress=False)                      # finished: nothing drawn from the unrestored stream
    assert back.step == 2

    GANTrainer(GANConfig(steps=2, out_dir=str(tmp_path / "part"), **cfg), data).run(progress=False)
    _as_if_trained_on_cuda(tmp_path / "part", legacy)
    with pytest.raises(ConfigError, match="trained on cuda and is unfinished"):
        GANTrainer(GANConfig(steps=4, out_dir=str(tmp_path / "part"), **cfg), data).resume()


def test_gan_devices_pairs_two_traces_of_one_cell(tmp_path):
    """reproduce.fig26_gan_devices: the same cell key in two work folders -> paired traces; two
    runs of the same seed give identical traces, so the mean log ratio is exactly 0."""
    from reproduce.fig26_gan_devices import main
    data = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    cfg = dict(kind="wgan", width=4, batch_size=8, n_critic=1, log_every=1, ckpt_every=2, steps=4, fd_every=1)
    for side in ("a", "b"):
        out = tmp_path / side / "k1"
        GANTrainer(GANConfig(out_dir=str(out), **cfg), data, monitor=lambda t: 10.0 + t.step).run(progress=False)
        (tmp_path / side / "k1.json").write_text(json.dumps({"inputs": {"dataset": "mnist", "kind": "wgan", "seed": 0}}))
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "res")]) == 0
    side = json.loads((tmp_path / "res" / "fig26_gan_devices.json").read_text())["summary"]
    assert len(side) == 1 and side[0]["shared_steps"] == 4 and side[0]["mean_log_ratio"] == 0.0
    rows = pd.read_csv(tmp_path / "res" / "fig26_gan_devices.csv")
    assert (rows.method == "wgan").all() and len(rows) == 8
    with pytest.raises(SystemExit, match="no GAN cell key"):
        main([str(tmp_path / "a"), str(tmp_path / "res"), "--out", str(tmp_path / "res2")])
