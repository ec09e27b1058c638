"""Mean-field inference of q(h | v) = prod_l Bernoulli(mu_l) for a DBM: the one implementation
used by CD's mean-field positive phase, the trainer's held-out reconstruction error and the AIS
likelihood bound.

Update order (fixed): from mu_l = 0.5 for every hidden layer, each iteration updates the odd
layers {h1, h3, ...} given the even ones, then the even hidden layers {h2, ...} given the odd
ones (mu_l <- sigmoid(a_l(mu))); v is clamped. h1 thus sees the data in the first half-step.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .model import DBM

__all__ = ["mean_field"]


@torch.no_grad()
def mean_field(model: DBM, v: Tensor, iters: int) -> list[Tensor]:
    """Mean-field posterior means after ``iters`` iterations: [v, mu_1, ..., mu_L], (B, n_l) each."""
    mus = [v] + [torch.full((v.shape[0], n), 0.5, dtype=v.dtype, device=v.device)
                 for n in model.layer_sizes[1:]]
    for _ in range(iters):
        for parity in (1, 0):
            for l in model.layers(parity):
                if l > 0:
                    mus[l] = torch.sigmoid(model.logits(mus, l))
    return mus
