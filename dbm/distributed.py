"""Data-parallel training: ``torchrun --nproc-per-node N -m dbm.distributed [train flags]``.

Each process draws its own batch of ``batch_size / N`` rows and its own chains (generators
seeded by rank); DistributedDataParallel averages the surrogate's gradients, which is the mean
of the per-rank estimates, i.e. an estimate over the global batch. gloo on CPU, NCCL on GPU;
rank 0 alone logs and writes checkpoints.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist

from .config import add_config_args, config_from_args
from .train import TrainConfig, Trainer


def wrap(trainer: Trainer) -> Trainer:
    """Route the trainer's loss through DistributedDataParallel (gradients averaged over ranks)."""
    from torch.nn.parallel import DistributedDataParallel
    trainer.forward = DistributedDataParallel(trainer.forward)
    return trainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="torchrun ... -m dbm.distributed", description=__doc__)
    add_config_args(p, TrainConfig)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    cfg = config_from_args(args, TrainConfig)
    backend = "nccl" if cfg.device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if cfg.device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        cfg = type(cfg)(**{**cfg.__dict__, "device": f"cuda:{local}"})
    if cfg.batch_size % world:
        raise SystemExit(f"batch_size {cfg.batch_size} is not divisible by {world} processes")
    trainer = Trainer(cfg, rank=rank, world=world)
    wrap(trainer)
    if args.resume:
        trainer.resume()
    trainer.run(progress=rank == 0)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    from .cli import run_main
    sys.exit(run_main(main))
