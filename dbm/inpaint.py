"""Inpainting (slide 27): fix the observed pixels of v, fill in the missing ones.

- ``inpaint_local_search``: the paper's completion, a local mode of E with the observed units
  clamped (T = 0 sweeps from a uniform start of the missing and hidden units), each chain's block
  order drawn as released (``order="random"``, ``dbm.samplers.ORDERS``).
- ``inpaint_gibbs``: samples from p(v_missing | v_observed) by clamped block Gibbs sweeps started at
  that local mode (``n_samples`` independent chains per image).
Masks are bool tensors over the visible units, True where a pixel is **observed**.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .model import DBM
from .samplers import Gibbs, LocalModeInfo, local_mode
from .validate import check_generator, check_visible

__all__ = ["MASKS", "make_mask", "inpaint_local_search", "inpaint_gibbs", "missing_error"]

MASKS = ("left", "right", "top", "bottom", "center", "random")


def make_mask(kind: str, side: int = 28, rate: float = 0.5, generator: torch.Generator | None = None,
              batch: int = 1) -> Tensor:
    """An observed-pixel mask (batch, side * side): "left" observes the left half (the right half
    is missing), likewise "right", "top", "bottom"; "center" hides the central square of half the
    side; "random" hides each pixel with probability ``rate`` (needs a generator)."""
    m = torch.ones(side, side, dtype=torch.bool)
    h = side // 2
    if kind == "left":
        m[:, h:] = False
    elif kind == "right":
        m[:, :h] = False
    elif kind == "top":
        m[h:, :] = False
    elif kind == "bottom":
        m[:h, :] = False
    elif kind == "center":
        q = side // 4
        m[q:q + h, q:q + h] = False
    elif kind == "random":
        if generator is None:
            raise ValueError("a random mask needs a generator")
        return torch.rand(batch, side * side, generator=generator) >= rate
    else:
        raise ValueError(f"unknown mask {kind!r}; choose from {MASKS}")
    return m.flatten().expand(batch, side * side).clone()


def _start(model: DBM, v: Tensor, observed: Tensor, generator: torch.Generator):
    v = check_visible(model, v)
    check_generator(generator, v.device)
    observed = observed.to(v.device).expand_as(v)
    xs = model.random_state(v.shape[0], generator)
    return (torch.where(observed, v, xs[0]),) + tuple(xs[1:]), observed


@torch.no_grad()
def inpaint_local_search(model: DBM, v: Tensor, observed: Tensor, generator: torch.Generator,
                         max_sweeps: int = 1000, order: str = "random") -> tuple[Tensor, LocalModeInfo]:
    """Completed images (B, n_0) and the search's LocalModeInfo: its sweeps per image (B,) and
    which images' searches hit ``max_sweeps`` (``capped``, (B,) bool: those completions are not
    local modes)."""
    xs, observed = _start(model, v, observed, generator)
    mode, info = local_mode(model, xs, clamp=observed, max_sweeps=max_sweeps, order=order, generator=generator)
    return mode[0], info


@torch.no_grad()
def inpaint_gibbs(model: DBM, v: Tensor, observed: Tensor, generator: torch.Generator,
                  n_samples: int = 10, sweeps: int = 100, order: str = "random") -> Tensor:
    """Completions (n_samples, B, n_0) by clamped Gibbs sweeps (even block first) from the clamped
    local mode (searched in ``order``)."""
    batch = v.shape[0]
    vv, obs = v.repeat(n_samples, 1), observed.expand_as(v).repeat(n_samples, 1)
    xs, obs = _start(model, vv, obs, generator)
    xs, _ = local_mode(model, xs, clamp=obs, order=order, generator=generator)
    kernel = Gibbs(model, 1.0, obs)
    for _ in range(sweeps):
        xs, _ = kernel.step(xs, generator)
    return xs[0].reshape(n_samples, batch, -1)


def missing_error(completed: Tensor, truth: Tensor, observed: Tensor) -> Tensor:
    """Mean absolute error over the missing pixels, per image (B,)."""
    missing = (~observed.expand_as(truth)).to(truth.dtype)
    return ((completed - truth).abs() * missing).sum(-1) / missing.sum(-1).clamp_min(1)


