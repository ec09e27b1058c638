"""Data-parallel training over two CPU processes (gloo) agrees across ranks and with the
single-process average of the same per-rank estimates."""
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dbm import distributed
from dbm.train import TrainConfig, Trainer
from test_train import toy_data

CFG = dict(hidden=(8, 6), batch_size=40, updates=3, log_every=1, eval_every=0, ckpt_every=100,
           estimator="ucd-mh-lmi")


def worker(rank, world, port, out_dir, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    t = distributed.wrap(Trainer(TrainConfig(**CFG, out_dir=out_dir), data=toy_data(), rank=rank, world=world))
    t.update()
    grads = [p.grad.clone() for p in t.model.parameters()]
    t.run(progress=False)
    results[rank] = (grads, [p.detach().clone() for p in t.model.parameters()])
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_agree(tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(2, free_port(), str(tmp_path / "ddp"), results), nprocs=2, join=True)
        results = dict(results)
    (g0, p0), (g1, p1) = results[0], results[1]
    for a, b in zip(g0 + p0, g1 + p1):
        assert torch.equal(a, b)                               # ranks agree bit for bit
    # single process: the same per-rank batches and chains, gradients averaged by hand
    refs = [Trainer(TrainConfig(**CFG, out_dir=str(tmp_path / f"ref{r}")), data=toy_data(), rank=r, world=2)
            for r in range(2)]
    for t in refs:
        loss, _, _ = t.est.loss(t.model, t.batch(), t.est_state, t.chain_gen)
        loss.backward()
    for k, g in enumerate(g0):
        mean = (list(refs[0].model.parameters())[k].grad + list(refs[1].model.parameters())[k].grad) / 2
        torch.testing.assert_close(g, mean, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "ddp" / "model.safetensors").exists() and not (tmp_path / "ref0").exists()
