"""Annealed importance sampling for DBMs (Salakhutdinov & Murray 2008; Salakhutdinov & Hinton 2009).

Path: p_beta(x) proportional to exp(-beta E(x)), beta from 0 (uniform; log Z_0 = sum_l n_l log 2)
to 1. p_beta is the DBM with parameters beta * theta, so its odd layers sum out in closed form:
F_beta(x_even) = -beta sum_even b.c - sum_odd [softplus(beta a_l) - beta mu_l.a_l]. With M runs,

    log w = sum_k [ F_{beta_{k-1}}(x_k) - F_{beta_k}(x_k) ],   x_k ~ T_{beta_{k-1}}(x_{k-1}),
    log Z_hat = log Z_0 + log mean exp(log w),

where T_beta is a block Gibbs sweep at temperature 1 / beta (odd block given even, then even
given odd), which leaves p_beta(x_even) invariant. Z_hat is unbiased (log Z_hat is biased low);
its standard error comes from the spread of the weights.

Reverse AIS (Burda, Grosse & Salakhutdinov 2015) runs the same path backwards from states of the
model (beta = 1) to the uniform distribution: log w = sum_k [ F_{beta_k}(x) - F_{beta_{k-1}}(x) ]
with x moved by T_{beta_{k-1}} after each term, and E[w] = Z_0 / Z_1 when the start is an exact
sample. Then log Z_rev = log Z_0 - log mean exp(log w) over-estimates log Z in expectation (Jensen),
so forward and reverse bracket log Z; with approximate starts (chains from the data or from local
modes) the upper side holds only as far as the starts are samples, which is why both starts are
reported and the bracket's width is the uncertainty a comparison must beat (``ais_bracket``).
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..model import DBM
from ..meanfield import mean_field
from ..samplers import Gibbs, draw_uniforms
from ..validate import check_generator

__all__ = ["AISResult", "ais_log_partition", "reverse_ais_log_partition", "ais_schedule", "mean_field",
           "log_likelihood_bound"]


class AISResult(NamedTuple):
    """log_z: the estimate; log_z_se: standard error of log Z_hat (delta method, = se(w) / mean w);
    log_w: (M,) final log weights; betas: number of intermediate temperatures."""
    log_z: float
    log_z_se: float
    log_w: Tensor
    betas: int


def _free_energy_beta(model: DBM, xs, beta: float) -> Tensor:
    odd = model.block_logits(xs, 1)
    f = 0.0
    for l in model.layers(0):
        f = f - beta * (model.centred(xs, l) @ model.biases[l])
    for l, a in odd.items():
        f = f - torch.nn.functional.softplus(beta * a).sum(-1)
        if model.centered:
            f = f + beta * (a @ model.offsets[l])
    return f


def ais_schedule(k: int, dtype=torch.float64) -> Tensor:
    """``k`` temperatures from 0 to 1, linear in three pieces, denser near 1 (Salakhutdinov &
    Murray): a tenth in [0, 0.5), four tenths in [0.5, 0.9), the rest in [0.9, 1]."""
    return torch.cat([torch.linspace(0, 0.5, k // 10 + 1, dtype=dtype)[:-1],
                      torch.linspace(0.5, 0.9, 4 * k // 10 + 1, dtype=dtype)[:-1],
                      torch.linspace(0.9, 1.0, k - k // 10 - 4 * k // 10, dtype=dtype)])


def _sweep(m: DBM, xs, beta: float, generator: torch.Generator):
    """T_beta: odd | even, then even | odd (leaves p_beta(x_even) invariant)."""
    u, kernel = draw_uniforms(m, xs[0].shape[0], generator), Gibbs(m, 1.0 / beta)
    xs, _ = kernel.block(xs, 1, u)
    xs, _ = kernel.block(xs, 0, u)
    return xs


def _result(model: DBM, log_w: Tensor, betas: int, sign: float) -> AISResult:
    runs = log_w.shape[0]
    log_z0 = math.log(2.0) * sum(model.layer_sizes)
    lme = torch.logsumexp(log_w, 0) - math.log(runs)
    w = torch.exp(log_w - log_w.max())
    rel_se = float(w.std() / w.mean()) / math.sqrt(runs)
    return AISResult(float(log_z0 + sign * lme), rel_se, log_w.cpu(), betas)


@torch.no_grad()
def ais_log_partition(model: DBM, generator: torch.Generator, runs: int = 100,
                      betas: int | Tensor = 10_000) -> AISResult:
    """Estimate log Z with ``runs`` AIS chains over ``betas`` temperatures (an int: ``ais_schedule``)."""
    dev, dt = model.weights[0].device, torch.float64
    check_generator(generator, dev)
    m = copy.deepcopy(model).double()
    betas = (ais_schedule(betas) if isinstance(betas, int) else betas).tolist()
    xs = m.random_state(runs, generator)
    log_w = torch.zeros(runs, dtype=dt, device=dev)
    prev = betas[0]
    for beta in betas[1:]:
        log_w += _free_energy_beta(m, xs, prev) - _free_energy_beta(m, xs, beta)
        if beta > 0:
            xs = _sweep(m, xs, beta, generator)
        prev = beta
    return _result(model, log_w, len(betas), 1.0)


@torch.no_grad()
def reverse_ais_log_partition(model: DBM, start, generator: torch.Generator,
                              betas: int | Tensor = 10_000) -> AISResult:
    """Reverse AIS from the states ``start`` (a full state of ``runs`` chains, ideally samples
    of the model: e.g. long Gibbs chains from the data or from local modes): an estimate of log Z
    that is high in expectation when the starts are exact samples (module docstring)."""
    dev, dt = model.weights[0].device, torch.float64
    check_generator(generator, dev)
    m = copy.deepcopy(model).double()
    betas = (ais_schedule(betas) if isinstance(betas, int) else betas).tolist()
    xs = tuple(x.to(dev, dt) for x in start)
    log_w = torch.zeros(xs[0].shape[0], dtype=dt, device=dev)
    for k in range(len(betas) - 1, 0, -1):
        log_w += _free_energy_beta(m, xs, betas[k]) - _free_energy_beta(m, xs, betas[k - 1])
        if betas[k - 1] > 0:
            xs = _sweep(m, xs, betas[k - 1], generator)
    return _result(model, log_w, len(betas), -1.0)


@torch.no_grad()
def log_likelihood_bound(model: DBM, v: Tensor, log_z: float, iters: int = 30) -> Tensor:
    """Variational lower bound on log p(v_b), (B,): -E(v, mu) + H(q) - log Z (E is multilinear,
    so E_q[E] = E(v, mu)). For an RBM (L = 1) it is exact: -F(v) - log Z."""
    if model.depth == 1:
        return -model.free_energy((v, torch.zeros(v.shape[0], model.layer_sizes[1], dtype=v.dtype,
                                                  device=v.device))) - log_z
    mus = mean_field(model, v, iters)
    ent = 0.0
    for mu in mus[1:]:
        p = mu.double()
        ent = ent - (torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)).sum(-1)
    return -model.energy(mus).double() + ent - log_z
