"""Samples of a DBM and their statistics.

Sample kinds (names used in every table and figure of the suite):

- ``mode``: the visible part of a local mode (T = 0 fixed point) from a uniform start: what the
  authors' ``sample()`` shows; deterministic given the start and the block order, not a draw from
  the model. The order is the released one by default (``order="random"``: drawn per chain for
  the search, afresh for the sweep after it; ``dbm.samplers.ORDERS``).
- ``mode+1``: one T = 1 block-Gibbs sweep after that mode (the authors' "random" sample).
- ``gibbs-<t>-noise`` / ``gibbs-<t>-mode``: the visible layer after t block-Gibbs sweeps at
  T = 1 from a uniform start / from the local mode: MCMC samples, which approach the model's
  distribution as t grows (``gibbs_chains``).

``sample_stats`` measures a set of binary images against a test set: diversity (mean pairwise
Hamming distance per pixel), ink (mean pixel value) and the distance to the nearest test image
(Hamming per pixel).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..model import DBM
from ..samplers import Gibbs, LocalModeInfo, draw_order, draw_uniforms, gibbs_update, local_mode
from ..validate import check_generator

__all__ = ["sample_stats", "gibbs_chains", "modes", "sample_images", "save_sample_grids"]


@torch.no_grad()
def sample_stats(v: Tensor, test: Tensor, chunk: int = 1024) -> dict[str, float]:
    """Statistics of samples ``v`` (n, n_0), n >= 2, binary, against ``test`` (N, n_0):
    ``diversity`` (mean pairwise Hamming distance / pixels), ``ink`` (mean pixel; ``test_ink``
    the test set's) and ``nn_distance`` (mean over samples of the Hamming distance to the
    nearest test image / pixels)."""
    if v.ndim != 2 or test.ndim != 2 or v.shape[1] != test.shape[1] or v.shape[0] < 2:
        raise ValueError(f"samples (n >= 2, n_0) and test (N, n_0) must share n_0; got {tuple(v.shape)} and "
                         f"{tuple(test.shape)}")
    v, test = v.double().cpu(), test.double().cpu()
    n, d = v.shape
    pair = torch.cdist(v, v, p=1).sum() / (n * (n - 1))
    nearest = torch.cat([torch.cdist(v[i:i + chunk], test, p=1).min(1).values for i in range(0, n, chunk)])
    return {"diversity": float(pair / d), "ink": float(v.mean()), "test_ink": float(test.mean()),
            "nn_distance": float(nearest.mean() / d)}


def sample_images(model: DBM, n: int, generator: torch.Generator) -> dict[str, Tensor]:
    """The authors' samples: the visible part of a local mode from a uniform start ("mode") and
    of one T = 1 sweep after it ("random"). Neither is a long-run MCMC sample (``gibbs_chains``
    draws those)."""
    mode, swept, _ = modes(model, n, generator)
    return {"mode": mode[0], "random": swept[0]}


def save_sample_grids(model: DBM, n: int, image_shape: tuple, generator: torch.Generator, template: str) -> list:
    """``sample_images`` of n chains as PNG grids (8 a row) at ``template.format(kind=kind)``;
    returns the paths."""
    from torchvision.utils import save_image
    paths = []
    for kind, v in sample_images(model, n, generator).items():
        path = template.format(kind=kind)
        save_image(v.reshape(n, *image_shape).cpu(), path, nrow=8)
        paths.append(path)
    return paths


@torch.no_grad()
def modes(model: DBM, n: int, generator: torch.Generator, order: str = "random", max_sweeps: int = 1000
          ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], LocalModeInfo]:
    """(local modes from ``n`` uniform starts, the states one T = 1 sweep after them, the search's
    LocalModeInfo: its sweeps and which chains hit ``max_sweeps``): the released ``sample()`` with
    ``order="random"`` (the default); "even-first" is the suite's fixed order before the
    faithful-order issue, draw for draw."""
    check_generator(generator, model.weights[0].device)
    mode, info = local_mode(model, model.random_state(n, generator), max_sweeps=max_sweeps, order=order,
                            generator=generator)
    odd_first = draw_order(order, n, generator, model.weights[0].device)
    swept, _ = gibbs_update(model, mode, draw_uniforms(model, n, generator), odd_first=odd_first)
    return mode, swept, info


@torch.no_grad()
def gibbs_chains(model: DBM, start, sweeps: tuple[int, ...], generator: torch.Generator
                 ) -> tuple[dict[int, Tensor], tuple[Tensor, ...]]:
    """Run block-Gibbs chains at T = 1 (free v) from ``start`` (a full state, e.g. a uniform
    ``model.random_state`` or a local mode) -> ({t: visible layer after t sweeps} for each t in
    ``sweeps``, the full state after the last); the largest t sets the length, t = 0 is the start."""
    check_generator(generator, model.weights[0].device)
    if not sweeps or min(sweeps) < 0:
        raise ValueError(f"sweeps must be non-negative counts, got {sweeps!r}")
    xs, want, out = tuple(start), set(sweeps), {}
    n, kernel = xs[0].shape[0], Gibbs(model, 1.0)
    for t in range(max(sweeps) + 1):
        if t in want:
            out[t] = xs[0].clone()
        if t < max(sweeps):
            xs, _ = kernel.update(xs, draw_uniforms(model, n, generator))
    return out, xs
