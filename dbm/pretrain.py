"""Greedy layer-wise pretraining (Salakhutdinov & Hinton 2009), the "with pretraining" baseline.

A stack of RBMs is trained bottom-up with CD-1. To make the stack a good start for the DBM, the
bottom RBM uses doubled bottom-up input (p(h1 | v) = sigmoid(2 W_1 v + c)) and the top RBM doubled
top-down input (p(h_{L-1} | h_L) = sigmoid(2 W_L^T h_L + c)); their weights then become W_l of
the DBM, which is fine-tuned with PCD and a mean-field positive phase
(``estimator("pcd", positive="mean-field")``). Batched, explicit generator.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .model import DBM

__all__ = ["train_rbm_layer", "pretrain_layerwise"]


@torch.no_grad()
def train_rbm_layer(data: Tensor, n_hidden: int, updates: int, batch_size: int, lr: float,
                    generator: torch.Generator, up_factor: float = 1.0, down_factor: float = 1.0,
                    init: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """CD-1 for an RBM with p(h | x) = sigmoid(up * W x + c), p(x | h) = sigmoid(down * W^T h + b).

    data: (N, n) binary. Returns W (n_hidden, n), b (n,), c (n_hidden,).
    """
    n = data.shape[1]
    dt, dev = data.dtype, data.device
    w = init.clone() if init is not None else 0.01 * torch.randn(n_hidden, n, generator=generator,
                                                                 dtype=dt, device=dev)
    b = torch.zeros(n, dtype=dt, device=dev)
    c = torch.zeros(n_hidden, dtype=dt, device=dev)
    for _ in range(updates):
        x = data[torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=dev)]
        ph = torch.sigmoid(up_factor * x @ w.T + c)
        h = (torch.rand(ph.shape, generator=generator, dtype=dt, device=dev) < ph).to(dt)
        px = torch.sigmoid(down_factor * h @ w + b)
        x1 = (torch.rand(px.shape, generator=generator, dtype=dt, device=dev) < px).to(dt)
        ph1 = torch.sigmoid(up_factor * x1 @ w.T + c)
        w += lr * (ph.T @ x - ph1.T @ x1) / batch_size
        b += lr * (x - x1).mean(0)
        c += lr * (ph - ph1).mean(0)
    return w, b, c


@torch.no_grad()
def pretrain_layerwise(model: DBM, data: Tensor, updates: int, batch_size: int, lr: float,
                       generator: torch.Generator) -> DBM:
    """Initialise ``model`` in place from a stack of RBMs trained on ``data`` (N, n_0)."""
    L = model.depth
    x = data
    hidden_biases = []
    for l in range(1, L + 1):
        up = 2.0 if (l == 1 and L > 1) else 1.0
        down = 2.0 if (l == L and L > 1) else 1.0
        w, b, c = train_rbm_layer(x, model.layer_sizes[l], updates, batch_size, lr, generator,
                                  up, down, init=model.weights[l - 1].detach() * 0.1)
        model.weights[l - 1].copy_(w)
        if l == 1:
            model.biases[0].copy_(b)
        else:
            hidden_biases[-1] = (hidden_biases[-1] + b) / 2      # layer l-1 seen from both RBMs
        hidden_biases.append(c)
        p = torch.sigmoid(up * x @ w.T + c)
        x = (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(p.dtype)
    for l, c in enumerate(hidden_biases, start=1):
        model.biases[l].copy_(c)
    return model
