"""MCMC kernels for a DBM (spec §1-2): block Gibbs sweeps at temperature T, the T = 0 local-mode
search, and Metropolis-Hastings with the uniform independence proposal.

Every kernel is split into drawing noise (``draw_*``) and a deterministic ``*_update`` that applies
pre-drawn noise, so that a common-random-numbers coupling is ``update(x, u), update(y, u)``.
Kernels run under ``no_grad``, return new tensors, and never loop over samples.

Sweep order (fixed for every chain): the even block {v, h2, ...} given the odd block, then the
odd block {h1, h3, ...} given the even block. Ending on the odd block leaves the odd logits of the
final state cached, so its energy costs no further matrix product (model eq. (1)).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from .model import DBM

__all__ = ["Clamp", "draw_uniforms", "block_update", "gibbs_update", "gibbs_step", "LocalModeInfo",
           "local_mode", "MHState", "mh_init", "draw_proposal", "mh_update", "mh_step", "energy_fn",
           "free_layers", "sample_bits"]

Clamp = None | bool | Tensor  # None: all free; True: all of v fixed; (B, n_0) bool mask: True = fixed


def energy_fn(model: DBM, marginalize: bool):
    """The function an MH chain targets: E(x), or F(x_even) with odd layers summed out."""
    return model.free_energy if marginalize else model.energy


def free_layers(model: DBM, clamp: Clamp, marginalize: bool = False) -> list[int]:
    """Layers with at least one free unit (v excluded when fully clamped, odd layers excluded
    when they are summed out)."""
    layers = [l for l in range(len(model.layer_sizes)) if not (l == 0 and clamp is True)]
    return [l for l in layers if not (marginalize and l % 2 == 1)]


def sample_bits(a: Tensor, u: Tensor | None, T: float) -> Tensor:
    """Bernoulli(sigmoid(a / T)) as (u < p); T = 0 is the threshold (a >= 0). Shape of ``a``."""
    if T == 0:
        return (a >= 0).to(a.dtype)
    return (u < torch.sigmoid(a / T)).to(a.dtype)


def _clamped(l: int, new: Tensor, old: Tensor, clamp: Clamp) -> Tensor:
    if l != 0 or clamp is None:
        return new
    if clamp is True:
        return old
    return torch.where(clamp, old, new)


def draw_uniforms(model: DBM, batch: int, generator: torch.Generator) -> tuple[Tensor, ...]:
    """Uniforms for one sweep: a (B, n_l) tensor per layer."""
    w = model.weights[0]
    return tuple(torch.rand(batch, n, generator=generator, dtype=w.dtype, device=w.device)
                 for n in model.layer_sizes)


@torch.no_grad()
def block_update(model: DBM, xs: Sequence[Tensor], parity: int, u: Sequence[Tensor] | None,
                 T: float = 1.0, clamp: Clamp = None, v_part: Tensor | None = None
                 ) -> tuple[tuple[Tensor, ...], dict[int, Tensor]]:
    """Resample the even (0) or odd (1) block given the other one.

    Returns the new state and the logits {l: (B, n_l)} used for the block. ``v_part`` is the
    cached b_1 + W_1 c_0 term of layer 1 when v is fully clamped (it does not change).
    """
    xs = list(xs)
    logits = {}
    for l in model.layers(parity):
        if l == 0 and clamp is True:
            continue
        if l == 1 and v_part is not None:
            a = v_part if model.depth == 1 else v_part + model.centred(xs, 2) @ model.weights[1]
        else:
            a = model.logits(xs, l)
        logits[l] = a
        xs[l] = _clamped(l, sample_bits(a, None if u is None else u[l], T), xs[l], clamp)
    return tuple(xs), logits


@torch.no_grad()
def gibbs_update(model: DBM, xs: Sequence[Tensor], u: Sequence[Tensor] | None, T: float = 1.0,
                 clamp: Clamp = None) -> tuple[tuple[Tensor, ...], dict[int, Tensor]]:
    """One block Gibbs sweep (even block, then odd block) with pre-drawn uniforms ``u``.

    Returns (new state, odd-block logits of the new state). Deterministic given ``u``;
    T = 0 ignores ``u`` and thresholds (the local-search move of spec §2).
    """
    xs, _ = block_update(model, xs, 0, u, T, clamp)
    return block_update(model, xs, 1, u, T, clamp)


def gibbs_step(model: DBM, xs: Sequence[Tensor], generator: torch.Generator, T: float = 1.0,
               clamp: Clamp = None) -> tuple[Tensor, ...]:
    """One block Gibbs sweep at temperature T, drawing its own uniforms."""
    u = draw_uniforms(model, xs[0].shape[0], generator) if T > 0 else None
    return gibbs_update(model, xs, u, T, clamp)[0]


class LocalModeInfo(NamedTuple):
    """sweeps: (B,) long, T = 0 sweeps run including the one that changed nothing;
    capped: (B,) bool, the search stopped at ``max_sweeps`` before reaching a fixed point."""
    sweeps: Tensor
    capped: Tensor


@torch.no_grad()
def local_mode(model: DBM, xs: Sequence[Tensor], clamp: Clamp = None, max_sweeps: int = 1000
               ) -> tuple[tuple[Tensor, ...], LocalModeInfo]:
    """Local-mode search (spec §2, UCD-MH-LMI step 1): T = 0 block sweeps until a sweep changes
    nothing. Each block update is the exact arg-min of E over that block, so E never increases.

    Only chains still changing are swept (their rows are compacted once per sweep). From the
    second sweep on, the odd block is a function of the previous even block, so an unchanged even
    block means a fixed point and the odd update is skipped for those chains.
    """
    batch = xs[0].shape[0]
    out = [x.clone() for x in xs]
    sweeps = torch.full((batch,), max_sweeps, dtype=torch.long, device=xs[0].device)
    capped = torch.ones(batch, dtype=torch.bool, device=xs[0].device)
    idx = torch.arange(batch, device=xs[0].device)
    cur, cm = list(xs), clamp
    v_part = None
    if clamp is True and model.depth >= 1:
        v_part = model.biases[1] + model.centred(xs, 0) @ model.weights[0].T
    for s in range(1, max_sweeps + 1):
        before = list(cur)
        cur, _ = block_update(model, cur, 0, None, 0.0, cm, v_part)
        if s == 1:
            cur, _ = block_update(model, cur, 1, None, 0.0, cm, v_part)
            layers = range(len(cur))
        else:
            layers = model.layers(0)
        changed = torch.zeros(cur[0].shape[0], dtype=torch.bool, device=cur[0].device)
        for l in layers:
            changed |= (cur[l] != before[l]).any(-1)
        done = ~changed
        if bool(done.any()):
            for l in range(len(out)):
                out[l].index_copy_(0, idx[done], cur[l][done])
            sweeps[idx[done]] = s
            capped[idx[done]] = False
            idx, cur = idx[changed], [x[changed] for x in cur]
            cm = cm[changed] if isinstance(cm, Tensor) else cm
            v_part = v_part[changed] if v_part is not None else None
        if idx.numel() == 0:
            break
        if s > 1:
            cur, _ = block_update(model, cur, 1, None, 0.0, cm, v_part)
    if idx.numel():
        for l in range(len(out)):
            out[l].index_copy_(0, idx, cur[l])
    return tuple(out), LocalModeInfo(sweeps, capped)


class MHState(NamedTuple):
    """xs: the state, a (B, n_l) tensor per layer; energy: (B,) its energy under the target."""
    xs: tuple
    energy: Tensor


@torch.no_grad()
def mh_init(model: DBM, xs: Sequence[Tensor], marginalize: bool = False,
            odd_logits: dict[int, Tensor] | None = None) -> MHState:
    """Wrap a state for MH; with ``marginalize`` the odd layers are zeroed (they are summed out)."""
    xs = tuple(torch.zeros_like(x) if (marginalize and l % 2) else x for l, x in enumerate(xs))
    return MHState(xs, energy_fn(model, marginalize)(xs, odd_logits))


def draw_proposal(model: DBM, xs: Sequence[Tensor], generator: torch.Generator, clamp: Clamp = None,
                  marginalize: bool = False) -> tuple[tuple[Tensor, ...], Tensor]:
    """The uniform independence proposal x' over the free units, and log-uniforms (B,) for the
    acceptance test. Fixed units (clamped v, summed-out odd layers) are copied from ``xs``."""
    batch = xs[0].shape[0]
    new = list(xs)
    for l in free_layers(model, clamp, marginalize):
        bits = torch.randint(0, 2, xs[l].shape, generator=generator, device=xs[l].device).to(xs[l].dtype)
        new[l] = _clamped(l, bits, xs[l], clamp)
    log_u = torch.log(torch.rand(batch, generator=generator, dtype=xs[0].dtype, device=xs[0].device))
    return tuple(new), log_u


@torch.no_grad()
def mh_update(state: MHState, proposal: Sequence[Tensor], proposal_energy: Tensor, log_u: Tensor
              ) -> tuple[MHState, Tensor]:
    """Accept x' where log u < E(x) - E(x'). Returns the new state and the acceptance mask (B,)."""
    accept = log_u < state.energy - proposal_energy
    a = accept.unsqueeze(-1)
    xs = tuple(torch.where(a, p, x) for p, x in zip(proposal, state.xs))
    return MHState(xs, torch.where(accept, proposal_energy, state.energy)), accept


def mh_step(model: DBM, state: MHState, generator: torch.Generator, clamp: Clamp = None,
            marginalize: bool = False) -> tuple[MHState, Tensor]:
    """One MH step with the uniform independence proposal (spec §2, UCD-MH-LMI step 2)."""
    prop, log_u = draw_proposal(model, state.xs, generator, clamp, marginalize)
    with torch.no_grad():
        e_prop = energy_fn(model, marginalize)(prop)
    return mh_update(state, prop, e_prop, log_u)
