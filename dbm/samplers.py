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

import warnings

import torch
from torch import Tensor

from .model import DBM

__all__ = ["Clamp", "draw_uniforms", "block_update", "gibbs_update", "gibbs_step", "LocalModeInfo",
           "local_mode", "MHState", "mh_init", "draw_proposal", "mh_update", "mh_step", "energy_fn",
           "proposal_energy",
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


def random_bits(shape: tuple[int, int], generator: torch.Generator, dtype=torch.float32,
                device=None) -> Tensor:
    """Uniform {0, 1} entries of the given (B, n) shape, 64 per random draw (unpacked int64)."""
    b, n = shape
    words = torch.randint(-(1 << 63), (1 << 63) - 1, (b, (n + 63) // 64), generator=generator,
                          dtype=torch.int64, device=device)
    shifts = torch.arange(64, device=device, dtype=torch.int64)
    bits = (words.unsqueeze(-1) >> shifts) & 1                                  # (b, words, 64)
    return bits.reshape(b, -1)[:, :n].to(dtype)


def draw_uniforms(model: DBM, batch: int, generator: torch.Generator) -> tuple[Tensor, ...]:
    """Uniforms for one sweep: a (B, n_l) tensor per layer."""
    w = model.weights[0]
    return tuple(torch.rand(batch, n, generator=generator, dtype=w.dtype, device=w.device)
                 for n in model.layer_sizes)


@torch.no_grad()
def block_update(model: DBM, xs: Sequence[Tensor], parity: int, u: Sequence[Tensor] | None,
                 T: float = 1.0, clamp: Clamp = None, v_part: Tensor | None = None,
                 logits: dict[int, Tensor] | None = None) -> tuple[tuple[Tensor, ...], dict[int, Tensor]]:
    """Resample the even (0) or odd (1) block given the other one.

    Returns the new state and the logits {l: (B, n_l)} used for the block. ``v_part`` is the
    cached b_1 + W_1 c_0 term of layer 1 when v is fully clamped (it does not change);
    ``logits`` are the block's logits when the caller already has them.
    """
    xs = list(xs)
    given, logits = logits or {}, {}
    for l in model.layers(parity):
        if l == 0 and clamp is True:
            continue
        if l in given:
            logits[l] = a = given[l]
            xs[l] = _clamped(l, sample_bits(a, None if u is None else u[l], T), xs[l], clamp)
            continue
        a = logits[l] = model.logits(xs, l, v_part)
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


def local_mode(model: DBM, xs: Sequence[Tensor], clamp: Clamp = None, max_sweeps: int = 1000,
               method: str = "incremental", return_logits: bool = False):
    """Local-mode search (spec §2, UCD-MH-LMI step 1): T = 0 block sweeps until a sweep changes
    nothing. Each block update is the exact arg-min of E over that block, so E never increases.

    method : "incremental" (default) keeps every layer's logits and updates them with the
        changes of the neighbouring layers (sparse products once few units flip); a chain leaves
        only after its logits are recomputed exactly and confirm a fixed point. "dense" recomputes
        the logits every sweep (the reference). Both return exact fixed points.
    return_logits : also return the exact logits {l: (B, n_l)} of the free even layers at the
        mode (given its odd block), which the next block update can reuse (incremental only).

    Returns (mode, LocalModeInfo) or (mode, LocalModeInfo, even_logits).
    """
    if method == "dense":
        if return_logits:
            raise ValueError("return_logits needs method='incremental'")
        return _local_mode_dense(model, xs, clamp, max_sweeps)
    if method == "incremental":
        out = _local_mode_incremental(model, xs, clamp, max_sweeps)
        return out if return_logits else out[:2]
    raise ValueError(f"unknown local-search method {method!r}; use 'incremental' or 'dense'")


@torch.no_grad()
def _local_mode_dense(model, xs, clamp, max_sweeps):
    """Only chains still changing are swept (their rows are compacted once per sweep). From the
    second sweep on, the odd block is a function of the previous even block, so an unchanged even
    block means a fixed point and the odd update is skipped for those chains."""
    batch = xs[0].shape[0]
    out = [x.clone() for x in xs]
    sweeps = torch.full((batch,), max_sweeps, dtype=torch.long, device=xs[0].device)
    capped = torch.ones(batch, dtype=torch.bool, device=xs[0].device)
    idx = torch.arange(batch, device=xs[0].device)
    cur, cm = list(xs), clamp
    v_part = None
    if clamp is True and model.depth >= 1:
        v_part = model.visible_term(xs[0])
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


SPARSE_MAX_DENSITY = 0.08   # below this fraction of flipped units a CSR product beats a dense one (CPU)


def _delta_product(delta: Tensor, w: Tensor, nnz: int | None = None) -> Tensor:
    """delta @ w for a {-1, 0, 1} matrix delta (b, n): sparse (CSR) when few entries are set."""
    if delta.device.type == "cpu" and delta.numel():
        nnz = int(torch.count_nonzero(delta)) if nnz is None else nnz
        if nnz == 0:
            return delta.new_zeros(delta.shape[0], w.shape[1])
        if nnz < SPARSE_MAX_DENSITY * delta.numel():
            with warnings.catch_warnings():      # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                return torch.sparse.mm(delta.to_sparse_csr(), w)
    return delta @ w


@torch.no_grad()
def _local_mode_incremental(model, xs, clamp, max_sweeps):
    """Incremental local search: logits a_l are kept per active chain and updated by
    Delta_{l-1} W_l^T + Delta_{l+1} W_{l+1} after each block update. Rounding may make kept
    logits drift, so a chain that stops changing is re-checked with exactly recomputed logits;
    it leaves only if the state is a fixed point of both exact block updates."""
    batch, dev = xs[0].shape[0], xs[0].device
    n_layers = len(xs)
    free = [l for l in range(n_layers) if not (l == 0 and clamp is True)]
    wt = [None] + [w.detach().T.contiguous() for w in model.weights]        # wt[l] = W_l^T
    wd = [None] + [w.detach() for w in model.weights]
    out = [x.clone() for x in xs]
    sweeps = torch.full((batch,), max_sweeps, dtype=torch.long, device=dev)
    capped = torch.ones(batch, dtype=torch.bool, device=dev)
    idx = torch.arange(batch, device=dev)
    cur, cm = list(xs), clamp
    vp = model.visible_term(xs[0]).detach() if (clamp is True and n_layers > 1) else None
    even = [l for l in free if l % 2 == 0]
    odd = [l for l in free if l % 2 == 1]
    out_logits = {l: torch.empty(batch, model.layer_sizes[l], dtype=xs[0].dtype, device=dev) for l in even}

    def exact(state, layers, rows=None):
        v_part = None if vp is None else (vp if rows is None else vp[rows])
        return {l: model.logits(state, l, v_part).detach() for l in layers}

    def update(parity, a, cur, cm, moved):
        """Threshold the block's layers; return the changes {l: (delta (b, n_l), nnz)} and mark
        in ``moved`` (b,) the chains with a flip."""
        deltas = {}
        for l in model.layers(parity):
            if l not in a:
                continue
            new = _clamped(l, (a[l] >= 0).to(cur[l].dtype), cur[l], cm)
            d = new - cur[l]
            flips = d != 0
            rows = flips.any(-1)
            moved |= rows
            deltas[l] = (d, int(rows.sum()) and int(flips.sum()))
            cur[l] = new
        return deltas

    def propagate(a, deltas):
        for l, (d, nnz) in deltas.items():
            if nnz == 0:
                continue
            if l + 1 < n_layers and (l + 1) in a:
                a[l + 1] += _delta_product(d, wt[l + 1], nnz)
            if l - 1 >= 0 and (l - 1) in a:
                a[l - 1] += _delta_product(d, wd[l], nnz)

    alive = torch.arange(batch, device=dev)             # rows of vp for the active chains
    a = exact(cur, even)
    for s in range(1, max_sweeps + 1):
        still = torch.zeros(cur[0].shape[0], dtype=torch.bool, device=dev)
        d_even = update(0, a, cur, cm, still)
        if s == 1:
            a.update(exact(cur, odd))
            propagate(a, update(1, a, cur, cm, still))
        cand = ~still
        if bool(cand.any()) and s == 1:                      # logits computed exactly this sweep
            done_rows = cand.nonzero().squeeze(-1)
        elif bool(cand.any()):                               # confirm with exact logits
            sub = [x[cand] for x in cur]
            ex = exact(sub, free, alive[cand])
            ok = torch.ones(sub[0].shape[0], dtype=torch.bool, device=dev)
            for l in free:
                agree = (ex[l] >= 0).to(sub[l].dtype) == sub[l]
                if l == 0 and isinstance(cm, Tensor):
                    agree |= cm[cand]
                ok &= agree.all(-1)
            done_rows = cand.nonzero().squeeze(-1)[ok]
            for l in free:                                  # failed checks continue from exact logits
                a[l][cand] = ex[l]
        if bool(cand.any()):
            if done_rows.numel():
                for l in range(n_layers):
                    out[l].index_copy_(0, idx[done_rows], cur[l][done_rows])
                for l in even:
                    out_logits[l].index_copy_(0, idx[done_rows], a[l][done_rows])
                sweeps[idx[done_rows]] = s
                capped[idx[done_rows]] = False
                keep = torch.ones_like(still)
                keep[done_rows] = False
                k = keep.nonzero().squeeze(-1)
                idx, alive, cur = idx[k], alive[k], [x.index_select(0, k) for x in cur]
                a = {l: t.index_select(0, k) for l, t in a.items()}
                d_even = {l: (d.index_select(0, k), nnz) for l, (d, nnz) in d_even.items()}
                cm = cm.index_select(0, k) if isinstance(cm, Tensor) else cm
        if idx.numel() == 0:
            break
        if s > 1:
            propagate(a, d_even)
            propagate(a, update(1, a, cur, cm, torch.zeros_like(idx, dtype=torch.bool)))
    if idx.numel():                                          # capped chains
        ex = exact(cur, even, alive)
        for l in range(n_layers):
            out[l].index_copy_(0, idx, cur[l])
        for l in even:
            out_logits[l].index_copy_(0, idx, ex[l])
    return tuple(out), LocalModeInfo(sweeps, capped), out_logits


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
        bits = random_bits(tuple(xs[l].shape), generator, xs[l].dtype, xs[l].device)
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


@torch.no_grad()
def proposal_energy(model: DBM, prop: Sequence[Tensor], marginalize: bool = False,
                    v_part: Tensor | None = None) -> Tensor:
    """E(x') or F(x'_even), (B,); ``v_part`` is the cached visible term of a clamped v."""
    return energy_fn(model, marginalize)(prop, model.block_logits(prop, 1, v_part))


def mh_step(model: DBM, state: MHState, generator: torch.Generator, clamp: Clamp = None,
            marginalize: bool = False, v_part: Tensor | None = None) -> tuple[MHState, Tensor]:
    """One MH step with the uniform independence proposal (spec §2, UCD-MH-LMI step 2)."""
    prop, log_u = draw_proposal(model, state.xs, generator, clamp, marginalize)
    return mh_update(state, prop, proposal_energy(model, prop, marginalize, v_part), log_u)
