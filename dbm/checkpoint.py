"""Run-folder checkpoints shared by the trainers (DBM, EBM, GAN): weights as safetensors with the
config as metadata, the rest of the state as ``state.pt``, tidy metrics appended to
``metrics.csv``; every file is written to a temporary name and renamed."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from .results import atomic_write_text

__all__ = ["save_checkpoint", "append_metrics", "trim_metrics"]


def save_checkpoint(out: Path, weights_name: str, tensors: dict, meta: dict, state: dict) -> None:
    """``out/<weights_name>`` (safetensors, string metadata) and ``out/state.pt``, atomically."""
    from safetensors.torch import save_file
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out / f".tmp-{weights_name}"), metadata=meta)
    os.replace(out / f".tmp-{weights_name}", out / weights_name)
    torch.save(state, out / ".tmp-state.pt")
    os.replace(out / ".tmp-state.pt", out / "state.pt")


def append_metrics(out: Path, rows: list[dict]) -> list:
    """Append tidy rows (step, metric, value) to ``out/metrics.csv``; returns an empty list."""
    if rows:
        path = out / "metrics.csv"
        pd.DataFrame(rows).to_csv(path, mode="a", header=not path.exists(), index=False)
    return []


def trim_metrics(out: Path, step: int) -> None:
    """Drop the rows logged after the checkpoint at ``step`` (a killed run logged past it)."""
    path = out / "metrics.csv"
    if path.exists():
        df = pd.read_csv(path)
        if (df.step > step).any():
            atomic_write_text(path, df[df.step <= step].to_csv(index=False))
