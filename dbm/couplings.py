"""Couplings of two copies of a DBM kernel (spec §2), for the lag-1 unbiased estimator.

- ``coupled_mh_update`` / ``coupled_mh_step``: the faithful MH coupling of UCD-MH-LMI. Both chains
  see the same proposal x' and the same acceptance uniform, so E(x') is computed once; two
  different states meet only when both accept.
- ``maximal_bernoulli``: the maximal coupling of two product-Bernoulli laws P, Q (Thorisson's
  algorithm: draw X ~ P, keep Y = X with probability min(1, q(X)/p(X)), else rejection-sample Y
  from the residual). Meets with probability 1 - TV(P, Q).
- ``crn_bernoulli``: the coordinate-wise maximal coupling (one uniform per unit for both laws);
  meets with probability prod_i (1 - |p_i - q_i|).
- ``coupled_gibbs_step``: a block Gibbs sweep whose blocks are drawn from one of the two
  Bernoulli couplings (UCD-Gibbs, Qiu et al. 2020). Both couplings are faithful: equal chains stay
  equal.
- ``coupled_gibbs_mh_step``: the mixed kernel ``dbm.samplers.GibbsMH`` (Gibbs sweeps, then one MH
  step), coupled by composing the two couplings above; a composition of faithful couplings is
  faithful, and each chain's marginal step is the mixed kernel's.

A coupled step has the kernels' shape: it takes the bound single-chain kernel (``dbm.samplers.MH``
or ``Gibbs``), the pair, the generator and the chains' ``rows``, and returns ((x, y), info).
"""
from __future__ import annotations

import dataclasses

from typing import NamedTuple, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from .samplers import MH, Gibbs, GibbsMH, MHState, _clamped, draw_uniforms, mh_update, sample_bits

__all__ = ["Coupled", "coupled_mh_update", "coupled_mh_step", "CoupledMHInfo", "MaximalInfo", "maximal_bernoulli",
           "crn_bernoulli", "coupled_gibbs_step", "CoupledGibbsInfo", "coupled_gibbs_mh_step",
           "CoupledGibbsMHInfo", "states_equal"]


def states_equal(x: Sequence[Tensor], y: Sequence[Tensor]) -> Tensor:
    """(B,) bool: every layer of chain b is equal in x and y."""
    eq = torch.ones(x[0].shape[0], dtype=torch.bool, device=x[0].device)
    for a, b in zip(x, y):
        eq &= (a == b).all(-1)
    return eq


@torch.no_grad()
def coupled_mh_update(x: MHState, y: MHState, proposal, proposal_energy: Tensor, log_u: Tensor
                      ) -> tuple[MHState, MHState, Tensor, Tensor]:
    """Apply one common proposal and uniform to both chains: (x, y, accepted_x, accepted_y)."""
    x, ax = mh_update(x, proposal, proposal_energy, log_u)
    y, ay = mh_update(y, proposal, proposal_energy, log_u)
    return x, y, ax.accepted, ay.accepted


class CoupledMHInfo(NamedTuple):
    """accepted_x, accepted_y: (b,) bool, each chain accepted the common proposal."""
    accepted_x: Tensor
    accepted_y: Tensor


def coupled_mh_step(kernel: MH, x: MHState, y: MHState, generator: torch.Generator,
                    rows: Tensor | None = None) -> tuple[tuple[MHState, MHState], CoupledMHInfo]:
    """The faithful common-random-numbers MH coupling of ``kernel``. Clamped units must agree in
    x and y; the proposal's energy is computed once for both."""
    prop, log_u = kernel.propose(x.xs, generator, rows)
    x, y, ax, ay = coupled_mh_update(x, y, prop, kernel.energy(prop, rows), log_u)
    return (x, y), CoupledMHInfo(ax, ay)


def _log_prob(bits: Tensor, a: Tensor, free: Tensor | None) -> Tensor:
    """log prod_i Bernoulli(bits_i; sigmoid(a_i)) over the free units, (B,)."""
    lp = bits * a - F.softplus(a)
    return (lp if free is None else lp * free).sum(-1)


class MaximalInfo(NamedTuple):
    """met: (B,) bool, Y = X from the first stage; tries: (B,) long, residual draws used;
    capped: (B,) bool, the residual sampler stopped at its cap (Y is then biased; counted)."""
    met: Tensor
    tries: Tensor
    capped: Tensor


@torch.no_grad()
def maximal_bernoulli(a_p: Tensor, a_q: Tensor, generator: torch.Generator,
                      free: Tensor | None = None, max_tries: int = 10_000
                      ) -> tuple[Tensor, Tensor, MaximalInfo]:
    """Draw (X, Y) from the maximal coupling of prod Bern(sigmoid(a_p)) and prod Bern(sigmoid(a_q)).

    Parameters
    ----------
    a_p, a_q : (B, n) logits of the two product laws.
    free : (B, n) bool or None. Units that are not free are excluded from both laws (the caller
        overwrites them); by default every unit is free.
    max_tries : cap on residual rejection draws per row; rows that hit it are reported.
    """
    fm = None if free is None else free.to(a_p.dtype)
    x = (torch.rand(a_p.shape, generator=generator, dtype=a_p.dtype, device=a_p.device)
         < torch.sigmoid(a_p)).to(a_p.dtype)
    log_w = torch.log(torch.rand(a_p.shape[0], generator=generator, dtype=a_p.dtype, device=a_p.device))
    met = log_w + _log_prob(x, a_p, fm) <= _log_prob(x, a_q, fm)
    y = x.clone()
    tries = torch.zeros(a_p.shape[0], dtype=torch.long, device=a_p.device)
    idx = (~met).nonzero().squeeze(-1)
    for _ in range(max_tries):
        if idx.numel() == 0:
            break
        ap, aq = a_p[idx], a_q[idx]
        f = None if fm is None else fm[idx]
        ys = (torch.rand(aq.shape, generator=generator, dtype=aq.dtype, device=aq.device)
              < torch.sigmoid(aq)).to(aq.dtype)
        lw = torch.log(torch.rand(idx.shape[0], generator=generator, dtype=aq.dtype, device=aq.device))
        ok = lw + _log_prob(ys, aq, f) > _log_prob(ys, ap, f)
        tries[idx] += 1
        y[idx] = ys            # the last draw stays for rows that hit the cap
        idx = idx[~ok]
    capped = torch.zeros_like(met)
    capped[idx] = True
    return x, y, MaximalInfo(met, tries, capped)


@torch.no_grad()
def crn_bernoulli(a_p: Tensor, a_q: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinate-wise maximal coupling: X_i = [u_i < p_i], Y_i = [u_i < q_i], common u (B, n)."""
    return sample_bits(a_p, u, 1.0), sample_bits(a_q, u, 1.0)


class CoupledGibbsInfo(NamedTuple):
    """residual_capped: (b,) bool, the maximal coupling's residual sampler hit ``max_tries`` in a
    block of this sweep (Y is then drawn from the wrong law: counted, never silent)."""
    residual_capped: Tensor


@torch.no_grad()
def coupled_gibbs_step(kernel: Gibbs, x: Sequence[Tensor], y: Sequence[Tensor],
                       generator: torch.Generator, rows: Tensor | None = None,
                       coupling: str = "maximal", max_tries: int = 10_000, order: tuple = (0, 1)
                       ) -> tuple[tuple[tuple, tuple], CoupledGibbsInfo]:
    """One coupled block Gibbs sweep of ``kernel`` (T = 1; the blocks in ``order``: by default
    the even block, then the odd block, as ``Gibbs.step``).

    coupling: "maximal" draws each block (all its layers jointly) from the maximal coupling of
    the two chains' block conditionals; "crn" uses common uniforms (coordinate-wise maximal).
    """
    if coupling not in ("maximal", "crn"):
        raise ValueError(f"unknown Gibbs coupling {coupling!r}; use 'maximal' or 'crn'")
    if kernel.T != 1.0:
        raise ValueError(f"coupled Gibbs sweeps run at T = 1, the kernel has T = {kernel.T}")
    model, (clamp, _) = kernel.model, kernel.at(rows)
    x, y = list(x), list(y)
    capped = torch.zeros(x[0].shape[0], dtype=torch.bool, device=x[0].device)
    u = draw_uniforms(model, x[0].shape[0], generator) if coupling == "crn" else None
    for parity in order:
        layers = [l for l in model.layers(parity) if not (l == 0 and clamp is True)]
        if not layers:
            continue
        ax = [model.logits(x, l) for l in layers]
        ay = [model.logits(y, l) for l in layers]
        if coupling == "crn":
            for l, a, b in zip(layers, ax, ay):
                nx, ny = crn_bernoulli(a, b, u[l])
                x[l], y[l] = _clamped(l, nx, x[l], clamp), _clamped(l, ny, y[l], clamp)
            continue
        free = None
        if isinstance(clamp, Tensor) and layers[0] == 0:
            free = torch.cat([~clamp] + [torch.ones_like(a, dtype=torch.bool) for a in ax[1:]], -1)
        bx, by, info = maximal_bernoulli(torch.cat(ax, -1), torch.cat(ay, -1), generator, free,
                                         max_tries)
        capped |= info.capped
        for l, px, py in zip(layers, bx.split([a.shape[1] for a in ax], -1),
                             by.split([a.shape[1] for a in ay], -1)):
            x[l], y[l] = _clamped(l, px, x[l], clamp), _clamped(l, py, y[l], clamp)
    return (tuple(x), tuple(y)), CoupledGibbsInfo(capped)


class CoupledGibbsMHInfo(NamedTuple):
    """accepted_x, accepted_y: (b,) bool, each chain accepted the MH step's common proposal;
    residual_capped: (b,) long, sweeps in which the maximal coupling hit its cap (counted)."""
    accepted_x: Tensor
    accepted_y: Tensor
    residual_capped: Tensor


def coupled_gibbs_mh_step(kernel: GibbsMH, x: MHState, y: MHState, generator: torch.Generator,
                          rows: Tensor | None = None, coupling: str = "maximal", max_tries: int = 10_000
                          ) -> tuple[tuple[MHState, MHState], CoupledGibbsMHInfo]:
    """One coupled step of the mixed kernel: ``kernel.sweeps`` coupled Gibbs sweeps
    (``coupled_gibbs_step`` with ``coupling``), then the common-proposal MH coupling."""
    xs, ys = x.xs, y.xs
    capped = torch.zeros(xs[0].shape[0], dtype=torch.long, device=xs[0].device)
    for _ in range(kernel.sweeps):
        (xs, ys), info = coupled_gibbs_step(kernel.gibbs, xs, ys, generator, rows, coupling, max_tries,
                                            kernel.order)
        capped += info.residual_capped.long()
    (x, y), mh = coupled_mh_step(kernel, kernel.settle(xs, rows), kernel.settle(ys, rows), generator, rows)
    return (x, y), CoupledGibbsMHInfo(mh.accepted_x, mh.accepted_y, capped)


@dataclasses.dataclass(frozen=True)
class Coupled:
    """A coupling of ``kernel`` with its parameters bound once (as blackjax binds a kernel's):
    ``step(x, y, generator, rows=None) -> ((x, y), info)``. The coupling follows the kernel:
    ``MH`` -> ``coupled_mh_step``; ``Gibbs`` -> ``coupled_gibbs_step``; ``GibbsMH`` ->
    ``coupled_gibbs_mh_step``. ``coupling`` ("maximal" or "crn") and ``max_tries`` (the maximal
    coupling's cap on residual draws) apply to the Gibbs sweeps; ``order`` to ``Gibbs`` alone."""
    kernel: object
    coupling: str = "maximal"
    max_tries: int = 10_000
    order: tuple = (0, 1)

    def __post_init__(self):
        if self.coupling not in ("maximal", "crn"):
            raise ValueError(f"unknown Gibbs coupling {self.coupling!r}; use 'maximal' or 'crn'")
        if not isinstance(self.kernel, (MH, Gibbs)):
            raise TypeError(f"no coupling for a {type(self.kernel).__name__}; use MH, Gibbs or GibbsMH")

    def step(self, x, y, generator: torch.Generator, rows: Tensor | None = None):
        k = self.kernel
        if isinstance(k, GibbsMH):
            return coupled_gibbs_mh_step(k, x, y, generator, rows, self.coupling, self.max_tries)
        if isinstance(k, MH):
            return coupled_mh_step(k, x, y, generator, rows)
        return coupled_gibbs_step(k, x, y, generator, rows, self.coupling, self.max_tries, self.order)
