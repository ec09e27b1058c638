"""2-D targets with exact densities and density errors on a grid (spec "What a reproduction suite
should check").

- ``gmm``: ``groups`` equal-weight isotropic Gaussians (sd ``sd``) with means on the circle of
  radius ``radius``.
- ``rings``: the authors' rings, ``groups`` concentric rings with radii r_k = radius * k
  (k = 1..groups) and equal weights (released configs: 4 rings, radius 1, sd 0.15); a point is
  r (cos a, sin a) with a uniform and r ~ N(r_k, sd^2), so
  p(x) = sum_k w_k [phi((|x| - r_k)/sd) + phi((-|x| - r_k)/sd)] / (2 pi sd |x|).
- ``rings-nested``: the project's earlier variant, radii radius * k / groups and weights
  proportional to the radius (same density formula).

Grid metrics compare cell probabilities on an n x n grid of cell centres over [-lim, lim]^2
(both sides renormalised on the grid): total variation 0.5 sum |p - q| and KL(p_true || q).
A model's cell probabilities are softmax(-U) on the grid; samples are turned into cell
probabilities by a Gaussian kernel density estimate.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

TOY_KINDS = ("gmm", "rings", "rings-nested")

__all__ = ["Toy2D", "TOY_KINDS", "grid", "cell_probs_from_log_density", "cell_probs_from_energy", "cell_probs_from_samples", "tv", "kl"]


@dataclasses.dataclass(frozen=True)
class Toy2D:
    kind: str = "gmm"            # or "rings", "rings-nested"
    groups: int = 8
    radius: float = 1.0
    sd: float = 0.15

    def __post_init__(self):
        if self.kind not in TOY_KINDS or self.groups < 1 or self.sd <= 0:
            raise ValueError(f"need kind in {TOY_KINDS}, groups >= 1, sd > 0; got {self}")

    def extent(self) -> float:
        """Half-width of a square that holds the target: the outermost mean's distance from the
        origin plus 4 sd (the authors' plotting range)."""
        return self.radius * (self.groups if self.kind == "rings" else 1) + 4 * self.sd

    def _centres(self) -> tuple[Tensor, Tensor]:
        k = torch.arange(self.groups, dtype=torch.float64)
        if self.kind == "gmm":
            a = 2 * math.pi * k / self.groups
            return self.radius * torch.stack([a.cos(), a.sin()], 1), torch.full((self.groups,), 1 / self.groups,
                                                                                 dtype=torch.float64)
        if self.kind == "rings":
            return self.radius * (k + 1), torch.full((self.groups,), 1 / self.groups, dtype=torch.float64)
        r = self.radius * (k + 1) / self.groups
        return r, r / r.sum()

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n points (n, 2), float32, on the generator's device."""
        dev = generator.device
        c, w = self._centres()
        comp = torch.multinomial(w.float().to(dev), n, replacement=True, generator=generator)
        z = torch.randn(n, 2, generator=generator, device=dev, dtype=torch.float64)
        if self.kind == "gmm":
            x = c.to(dev)[comp] + self.sd * z
        else:
            a = 2 * math.pi * torch.rand(n, generator=generator, device=dev, dtype=torch.float64)
            r = c.to(dev)[comp] + self.sd * z[:, 0]
            x = r.unsqueeze(1) * torch.stack([a.cos(), a.sin()], 1)
        return x.float()

    def log_density(self, x: Tensor) -> Tensor:
        """Exact log p(x) (n,), float64, for points x (n, 2)."""
        x = x.double().cpu()
        c, w = self._centres()
        if self.kind == "gmm":
            d2 = torch.cdist(x, c).pow(2)                                             # (n, G)
            lp = -d2 / (2 * self.sd ** 2) - math.log(2 * math.pi * self.sd ** 2)
        else:
            rho = x.norm(dim=1, keepdim=True).clamp_min(1e-12)                        # (n, 1)
            lphi = lambda t: -0.5 * t ** 2 - 0.5 * math.log(2 * math.pi)             # noqa: E731
            lp = torch.logaddexp(lphi((rho - c) / self.sd), lphi((-rho - c) / self.sd)) \
                - torch.log(2 * math.pi * self.sd * rho)
        return torch.logsumexp(lp + w.log(), dim=1)


def grid(lim: float, n: int) -> tuple[Tensor, float]:
    """Cell centres (n*n, 2), float32, of an n x n grid over [-lim, lim]^2, and the cell area."""
    h = 2 * lim / n
    t = -lim + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    gx, gy = torch.meshgrid(t, t, indexing="xy")
    return torch.stack([gx.flatten(), gy.flatten()], 1).float(), h * h


def cell_probs_from_log_density(logp: Tensor) -> Tensor:
    return torch.softmax(logp.double().flatten(), 0)


def cell_probs_from_energy(energy, points: Tensor, batch: int = 4096) -> Tensor:
    """softmax(-U) over the grid points (N, 2) -> (N,) float64."""
    with torch.no_grad():
        u = torch.cat([energy(points[i:i + batch]).double().cpu() for i in range(0, points.shape[0], batch)])
    if not bool(torch.isfinite(u).all()):
        raise ValueError("the energy is not finite on the whole grid")
    return cell_probs_from_log_density(-u)


def cell_probs_from_samples(samples: Tensor, points: Tensor, bandwidth: float, chunk: int = 0) -> Tensor:
    """Gaussian-kernel density estimate of samples (S, 2) at the grid points (N, 2) -> (N,) float64,
    renormalised on the grid."""
    s = samples.double().cpu()
    s = s[torch.isfinite(s).all(1)]
    if s.shape[0] == 0:
        raise ValueError("no finite samples")
    p = points.double().cpu()
    chunk = chunk or max(1, (1 << 24) // p.shape[0])          # about 128 MiB of distances per chunk
    out = torch.zeros(p.shape[0], dtype=torch.float64)
    for i in range(0, s.shape[0], chunk):
        out += torch.exp(-torch.cdist(p, s[i:i + chunk]).pow(2) / (2 * bandwidth ** 2)).sum(1)
    if out.sum() <= 0:
        raise ValueError("every sample lies far outside the grid")
    return out / out.sum()


def tv(p: Tensor, q: Tensor) -> float:
    """Total variation 0.5 sum |p - q| of two cell-probability vectors."""
    return float(0.5 * (p - q).abs().sum())


def kl(p: Tensor, q: Tensor) -> float:
    """KL(p || q) in nats over cells where p > 0 (q floored at 1e-300)."""
    m = p > 0
    return float((p[m] * (p[m].log() - q[m].clamp_min(1e-300).log())).sum())
