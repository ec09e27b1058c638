"""Input checks shared by the library: bad input raises a clear error, never a wrong answer."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["check_generator", "check_state", "check_visible", "is_binary"]

from .limits import MAX_BATCH, MAX_COUNT, MAX_WIDTH      # noqa: F401  (re-exported: their old home)


def is_binary(x: Tensor) -> bool:
    """Whether every entry of ``x`` is 0 or 1."""
    return bool(((x == 0) | (x == 1)).all())


def check_generator(generator, device: torch.device) -> None:
    """Require a ``torch.Generator`` on the same device type as the tensors it drives."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"expected a torch.Generator, got {type(generator).__name__}; "
                        "dbm never draws from the global RNG")
    if torch.device(generator.device).type != torch.device(device).type:
        raise ValueError(f"generator is on {generator.device} but the tensors are on {device}; "
                         f"create it with torch.Generator(device='{torch.device(device).type}')")


def check_visible(model, v) -> Tensor:
    """Check a visible batch: a floating tensor of shape (B, n_0) with values in {0, 1}."""
    if not isinstance(v, Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    n0 = model.layer_sizes[0]
    if v.dim() != 2 or v.shape[1] != n0:
        raise ValueError(f"v must have shape (B, {n0}), got {tuple(v.shape)}")
    if v.shape[0] == 0:
        raise ValueError("v is an empty batch")
    if not v.is_floating_point():
        v = v.to(model.weights[0].dtype)
    if v.device != model.weights[0].device:
        raise ValueError(f"v is on {v.device} but the model is on {model.weights[0].device}")
    if not is_binary(v):
        raise ValueError("v must be binary (every entry 0 or 1); encode images with "
                         "dbm.encode_binary or dbm.encode_8bit first")
    return v.to(model.weights[0].dtype)


def check_state(model, xs: Sequence[Tensor]) -> None:
    """Check that ``xs`` has one (B, n_l) tensor per layer with a common batch size."""
    sizes = model.layer_sizes
    if len(xs) != len(sizes):
        raise ValueError(f"a state needs {len(sizes)} layers (v, h1..h{len(sizes) - 1}), got {len(xs)}")
    batch = xs[0].shape[0] if xs[0].dim() == 2 else None
    for l, (x, n) in enumerate(zip(xs, sizes)):
        if x.dim() != 2 or x.shape[1] != n or x.shape[0] != batch:
            raise ValueError(f"layer {l} must have shape ({batch}, {n}), got {tuple(x.shape)}")
