"""Building torch.nn modules without touching the global RNG.

torch.nn layers draw their initial weights from the global generator while they are constructed.
``seeded(build, generator)`` constructs under a forked global RNG (restored afterwards) and then
re-initialises every conv / linear layer from ``generator`` (Kaiming-uniform weights, zero biases;
normalisation layers to weight 1, bias 0), so the result depends on ``generator`` alone.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

__all__ = ["seeded"]

M = TypeVar("M", bound=nn.Module)


def seeded(build: Callable[[], M], generator: torch.Generator, nonlinearity: str = "relu") -> M:
    with torch.random.fork_rng(devices=[]):
        module = build()
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity=nonlinearity, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module
