"""MCMC initialisations of the ML learning loop (spec: uniform, gaussian, data, persistent).

``init_chains(kind, n, shape, generator, data)`` draws fresh starting points (B, *shape):
``uniform`` on [-1, 1], ``gaussian`` N(0, I), ``data`` random training examples (CD-like).
``PersistentBank`` is the ``persistent`` initialisation: a bank of chains started from uniform
noise, of which each update takes a random batch and writes the Langevin result back in place of
the old states; with ``rejuvenate`` = rho each drawn chain restarts from noise with probability rho.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["INITS", "init_chains", "PersistentBank"]

INITS = ("uniform", "gaussian", "data", "persistent")


def init_chains(kind: str, n: int, shape: tuple[int, ...], generator: torch.Generator,
                data: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """n fresh starting states (n, *shape) on the generator's device."""
    dev = generator.device
    if kind == "uniform":
        return torch.rand((n, *shape), generator=generator, device=dev, dtype=dtype) * 2 - 1
    if kind == "gaussian":
        return torch.randn((n, *shape), generator=generator, device=dev, dtype=dtype)
    if kind == "data":
        if data is None or data.shape[0] == 0:
            raise ValueError("init 'data' needs a non-empty data tensor")
        idx = torch.randint(0, data.shape[0], (n,), generator=generator, device=dev)
        return data[idx.to(data.device)].to(dev, dtype)
    if kind == "persistent":
        raise ValueError("init 'persistent' keeps a bank of chains: use PersistentBank")
    raise ValueError(f"unknown initialisation {kind!r}; choose from {INITS}")


class PersistentBank:
    """``size`` persistent chains (size, *shape) started from ``start`` noise."""

    def __init__(self, size: int, shape: tuple[int, ...], generator: torch.Generator, rejuvenate: float = 0.0,
                 start: str = "uniform", dtype: torch.dtype = torch.float32):
        if size < 1 or not 0.0 <= rejuvenate <= 1.0:
            raise ValueError(f"need size >= 1 and 0 <= rejuvenate <= 1, got {size}, {rejuvenate}")
        self.shape, self.rejuvenate, self.start, self.dtype = tuple(shape), float(rejuvenate), start, dtype
        self.x = init_chains(start, size, self.shape, generator, dtype=dtype)

    def draw(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Indices (batch,) of distinct chains and their states (batch, *shape) (rejuvenated ones
        replaced by fresh noise)."""
        idx = torch.randperm(self.x.shape[0], generator=generator, device=generator.device)[:batch]
        x = self.x[idx]
        if self.rejuvenate > 0:
            fresh = torch.rand(idx.shape[0], generator=generator, device=generator.device) < self.rejuvenate
            noise = init_chains(self.start, idx.shape[0], self.shape, generator, dtype=self.dtype)
            x = torch.where(fresh.reshape(-1, *([1] * len(self.shape))), noise, x)
        return idx, x

    def update(self, idx: Tensor, x: Tensor) -> None:
        self.x[idx] = x.detach().to(self.x.dtype)

    def state_dict(self) -> dict:
        return {"x": self.x.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["x"].shape[1:]) != self.shape:
            raise ValueError(f"bank of shape {tuple(state['x'].shape)} does not fit chains {self.shape}")
        self.x = state["x"].to(self.x.device, self.x.dtype)
