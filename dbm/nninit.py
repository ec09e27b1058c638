"""Building torch.nn modules without touching the global RNG.

torch.nn layers draw their initial weights from the global generator while they are constructed.
``seeded(build, generator)`` constructs under a forked global RNG (restored afterwards) and then
re-initialises every conv / linear layer from ``generator``, so the result depends on ``generator``
alone. Two schemes: ``"kaiming"`` (Kaiming-uniform weights for ``nonlinearity``, zero biases) and
``"torch-default"`` (what ``nn.Linear`` / ``nn.Conv2d`` draw themselves: Kaiming-uniform with
a = sqrt(5), biases uniform in +-1/sqrt(fan_in)). Normalisation layers get weight 1, bias 0.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import math

import torch
from torch import nn

__all__ = ["seeded"]

M = TypeVar("M", bound=nn.Module)


def seeded(build: Callable[[], M], generator: torch.Generator, nonlinearity: str = "relu",
           init: str = "kaiming") -> M:
    if init not in ("kaiming", "torch-default"):
        raise ValueError(f"init must be 'kaiming' or 'torch-default', got {init!r}")
    with torch.random.fork_rng(devices=[]):
        module = build()
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init == "kaiming":
                nn.init.kaiming_uniform_(m.weight, nonlinearity=nonlinearity, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    bound = 1 / math.sqrt(m.weight[0].numel())
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module
