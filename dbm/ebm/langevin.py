"""Langevin and Metropolis-adjusted Langevin (MALA) kernels for an energy U (spec, Algorithm 1).

A kernel is a pure step over ``LangevinState``; noise is drawn apart from the update, so
``langevin_update(energy, state, z, eps)`` is deterministic given z ~ N(0, I):

    x' = x - (eps^2 / 2) grad_x U(x) + eps z.

MALA proposes x' the same way and accepts with probability
min(1, exp(U(x) - U(x') + log q(x | x') - log q(x' | x))), q(b | a) = N(b; a - (eps^2/2) grad U(a), eps^2 I);
it leaves exp(-U) exactly invariant. ``Langevin(energy, eps, mala)`` binds the kernel's
parameters once (as blackjax's kernels do): ``init(x)`` and ``step(state, generator)`` draw the
noise and call the pure update. ``run_langevin`` is the one driver loop; it records per step
the mean energy, the mean norm of grad_x U at the chains (r_t of the paper is its mean over the
path) and the acceptance rate.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ..errors import DivergenceError
from ..validate import check_generator

__all__ = ["LangevinState", "LangevinInfo", "Langevin", "energy_and_grad", "init_state", "langevin_update",
           "mala_update", "run_langevin", "DivergedChainsError"]

Energy = Callable[[Tensor], Tensor]


class DivergedChainsError(DivergenceError):
    """Langevin chains reached non-finite states (step size eps too large for the energy)."""


class LangevinState(NamedTuple):
    """x: (B, *shape) states; energy: (B,) U(x); grad: (B, *shape) grad_x U(x)."""
    x: Tensor
    energy: Tensor
    grad: Tensor


class LangevinInfo(NamedTuple):
    """Per chain, each (B,): energy U after the step; grad_norm ||grad_x U|| at the start of the
    step; accept: whether the move was taken (always True without the MH correction)."""
    energy: Tensor
    grad_norm: Tensor
    accept: Tensor


def energy_and_grad(energy: Energy, x: Tensor) -> tuple[Tensor, Tensor]:
    """U(x) (B,) and grad_x U(x) (B, *shape), both detached (parameter gradients are not kept)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = energy(x)
        if u.shape != (x.shape[0],):
            raise ValueError(f"the energy must map (B, ...) to (B,), got {tuple(u.shape)} for {tuple(x.shape)}")
        (g,) = torch.autograd.grad(u.sum(), x)
    return u.detach(), g.detach()


def init_state(energy: Energy, x: Tensor) -> LangevinState:
    u, g = energy_and_grad(energy, x)
    return LangevinState(x.detach(), u, g)


def _norm(g: Tensor) -> Tensor:
    return g.flatten(1).norm(dim=1)


def langevin_update(energy: Energy, state: LangevinState, z: Tensor, eps: float
                    ) -> tuple[LangevinState, LangevinInfo]:
    """One unadjusted Langevin step with the pre-drawn noise z (B, *shape)."""
    x = state.x - (eps ** 2 / 2) * state.grad + eps * z
    u, g = energy_and_grad(energy, x)
    return LangevinState(x, u, g), LangevinInfo(u, _norm(state.grad), torch.ones_like(u, dtype=torch.bool))


def mala_update(energy: Energy, state: LangevinState, z: Tensor, log_u: Tensor, eps: float
                ) -> tuple[LangevinState, LangevinInfo]:
    """One MALA step with pre-drawn z (B, *shape) and log-uniforms log_u (B,). A proposal with a
    non-finite energy is rejected."""
    x, ux, gx = state
    y = x - (eps ** 2 / 2) * gx + eps * z
    uy, gy = energy_and_grad(energy, y)
    log_q_fwd = -0.5 * z.flatten(1).pow(2).sum(1)                                     # log q(y | x) + c
    log_q_bwd = -(x - y + (eps ** 2 / 2) * gy).flatten(1).pow(2).sum(1) / (2 * eps ** 2)  # log q(x | y) + c
    log_alpha = ux - uy + log_q_bwd - log_q_fwd
    acc = (log_u < log_alpha) & torch.isfinite(uy)                                    # NaN -> reject
    shape = (-1,) + (1,) * (x.ndim - 1)
    keep = acc.reshape(shape)
    new = LangevinState(torch.where(keep, y, x), torch.where(acc, uy, ux), torch.where(keep, gy, gx))
    return new, LangevinInfo(new.energy, _norm(gx), acc)


@dataclasses.dataclass(frozen=True)
class Langevin:
    """The Langevin kernel of ``energy`` with step size ``eps`` (MALA with ``mala``), bound once."""
    energy: Energy
    eps: float
    mala: bool = False

    def __post_init__(self):
        if not self.eps > 0:
            raise ValueError(f"need eps > 0, got {self.eps}")

    def init(self, x: Tensor) -> LangevinState:
        return init_state(self.energy, x)

    def step(self, state: LangevinState, generator: torch.Generator) -> tuple[LangevinState, LangevinInfo]:
        """One step with noise z ~ N(0, I) (and, for MALA, log-uniforms) drawn from ``generator``."""
        x = state.x
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if not self.mala:
            return langevin_update(self.energy, state, z, self.eps)
        log_u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype).log()
        return mala_update(self.energy, state, z, log_u, self.eps)


def run_langevin(energy: Energy, x0: Tensor, n_steps: int, eps: float, generator: torch.Generator,
                 mala: bool = False, record_every: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    """``n_steps`` steps from x0 (B, *shape); returns the final states and per-step records
    (each (n_steps // record_every,), float64 on CPU): ``step``, ``energy`` (mean U),
    ``grad_norm`` (mean ||grad_x U|| at the start of the step) and ``accept`` (acceptance rate).
    ``record_every`` thins the energy/accept records; ``grad_norm`` is averaged over each block
    so that its mean is r_t over the whole path. Raises ``DivergedChainsError`` on non-finite states."""
    if n_steps < 0 or eps <= 0:
        raise ValueError(f"need n_steps >= 0 and eps > 0, got {n_steps}, {eps}")
    check_generator(generator, x0.device)      # by device type: a "cuda" generator drives "cuda:0" chains
    kernel = Langevin(energy, eps, mala)
    state = kernel.init(x0)
    rec = {k: [] for k in ("step", "energy", "grad_norm", "accept")}
    g_acc = torch.zeros((), dtype=torch.float64, device=x0.device)
    for t in range(1, n_steps + 1):
        state, info = kernel.step(state, generator)
        g_acc = g_acc + info.grad_norm.double().mean()
        if t % record_every == 0:
            rec["step"].append(torch.tensor(float(t), dtype=torch.float64, device=x0.device))
            rec["energy"].append(info.energy.double().mean())
            rec["grad_norm"].append(g_acc / record_every)
            rec["accept"].append(info.accept.double().mean())
            g_acc = torch.zeros((), dtype=torch.float64, device=x0.device)
    if not bool(torch.isfinite(state.x).all()):
        raise DivergedChainsError(f"Langevin chains reached non-finite states within {n_steps} steps "
                                  f"(eps = {eps}); use a smaller eps or MALA")
    out = {k: (torch.stack(v).cpu() if v else torch.zeros(0, dtype=torch.float64)) for k, v in rec.items()}
    return state.x, out
