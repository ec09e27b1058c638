"""Sufficient statistics and the surrogate loss (spec §2).

E is linear in the parameters: E(x) = -<theta, phi(x)> with phi_{W_l}(x) = c_l c_{l-1}^T and
phi_{b_l}(x) = c_l (c_l = x_l - mu_l). An estimator's gradient of mean_b(-log p(v_b)) is therefore

    g = (1/B) [ sum_i w_i^- phi(x_i^-) - sum_i w_i^+ phi(x_i^+) ],

over weighted positive-phase and negative-phase states. ``surrogate_loss`` returns the scalar
-<theta, S^+ - S^->/B, whose autograd gradient is exactly g; for unmarginalised estimators its
value is the mean energy difference between the phases. With ``marginalize`` the odd layers are
replaced by their conditional means sigmoid(a_l) given the even block (Rao-Blackwellisation:
phi is linear in each odd layer, so this is E[phi(x) | x_even] = -grad F(x_even)).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .model import DBM

__all__ = ["centred_layers", "statistics", "per_state_statistics", "surrogate_loss", "SurrogateLoss"]


@torch.no_grad()
def centred_layers(model: DBM, xs: Sequence[Tensor], marginalize: bool) -> list[Tensor]:
    """c_l per layer, (M, n_l); odd layers are sigmoid(a_l) - mu_l when ``marginalize``."""
    cs = []
    for l in range(len(xs)):
        if marginalize and l % 2 == 1:
            x = torch.sigmoid(model.logits(xs, l))
            cs.append(x - model.offsets[l] if model.centered else x)
        else:
            cs.append(model.centred(xs, l))
    return cs


@torch.no_grad()
def statistics(model: DBM, xs: Sequence[Tensor], weight: Tensor | None = None,
               marginalize: bool = False) -> list[Tensor]:
    """S = sum_i w_i phi(x_i), one tensor per parameter in ``model.parameters()`` order
    (W_1..W_L of shape (n_l, n_{l-1}), then b_0..b_L of shape (n_l,))."""
    cs = centred_layers(model, xs, marginalize)
    wcs = cs if weight is None else [weight.unsqueeze(-1) * c for c in cs]
    s_w = [wcs[l].T @ cs[l - 1] for l in range(1, len(cs))]
    s_b = [wc.sum(0) for wc in wcs]
    return s_w + s_b


@torch.no_grad()
def per_state_statistics(model: DBM, xs: Sequence[Tensor], marginalize: bool = False) -> Tensor:
    """phi(x_i) flattened in parameter order, (M, P). For small models (tests, exact studies)."""
    cs = centred_layers(model, xs, marginalize)
    parts = [torch.einsum("mi,mj->mij", cs[l], cs[l - 1]).flatten(1) for l in range(1, len(cs))]
    return torch.cat(parts + cs, dim=1)


def surrogate_loss(model: DBM, s_pos: list[Tensor], s_neg: list[Tensor], batch: int) -> Tensor:
    """-(1/B) <theta, S^+ - S^->: gradient = (1/B) sum (grad E(x^+) - grad E(x^-))."""
    loss = 0.0
    for p, sp, sn in zip(model.parameters(), s_pos, s_neg):
        loss = loss - torch.dot(p.reshape(-1), (sp - sn).reshape(-1))
    return loss / batch


class SurrogateLoss(nn.Module):
    """``surrogate_loss`` as a module owning the model, so that DistributedDataParallel can wrap
    it (``DistributedDataParallel(SurrogateLoss(model))``) and average the gradients over processes.
    ``forward(s_pos, s_neg, batch)`` -> 0-d loss."""

    def __init__(self, model: DBM):
        super().__init__()
        self.model = model

    def forward(self, s_pos: list[Tensor], s_neg: list[Tensor], batch: int) -> Tensor:
        return surrogate_loss(self.model, s_pos, s_neg, batch)
