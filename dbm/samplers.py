"""MCMC kernels for a DBM (spec §1-2): block Gibbs sweeps at temperature T, the T = 0 local-mode
search, and Metropolis-Hastings with the uniform independence proposal.

Every kernel has one shape, ``step(state, generator, rows=None) -> (state, info)``, with its
configuration (clamp, T, marginalize) bound once when the kernel is built (``Gibbs``, ``MH``),
and caches private to it. ``rows`` (long (b,)) says which of the B chains the kernel was built
for are in ``state`` (the coupled driver shrinks to the chains still running), so per-chain
configuration such as a clamp mask follows them. Each step splits into drawing noise and a
deterministic ``update`` that applies it, so a common-random-numbers coupling is
``update(x, u), update(y, u)`` (``dbm.couplings``). Kernels run under ``no_grad``, return new
tensors, and never loop over samples. The free functions ``gibbs_step``, ``mh_step`` and
``local_mode`` build the kernel for one call.

Sweep order (fixed for every chain): the even block {v, h2, ...} given the odd block, then the
odd block {h1, h3, ...} given the even block. Ending on the odd block leaves the odd logits of the
final state at hand (``SweepInfo.odd_logits``), so its energy costs no further matrix product
(model eq. (1)).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import warnings

import torch
from torch import Tensor

from .model import DBM, random_bits

__all__ = ["Clamp", "draw_uniforms", "sample_bits", "random_bits", "free_layers", "energy_fn",
           "SweepInfo", "Gibbs", "gibbs_step", "gibbs_update", "LocalModeInfo", "local_mode",
           "MHState", "MHInfo", "MH", "mh_init", "mh_step"]

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


class SweepInfo(NamedTuple):
    """odd_logits: {l: (B, n_l)} the odd block's logits used by the sweep's last half; they are the
    odd logits of the new state given its even block, so its energy needs no further product."""
    odd_logits: dict


class _Kernel:
    """Configuration shared by the kernels: the model, the clamp of v, and (when all of v is
    clamped and given as ``v``) the private cache of layer 1's visible term b_1 + W_1 c_0."""

    def __init__(self, model: DBM, clamp: Clamp = None, v: Tensor | None = None, like: "_Kernel | None" = None):
        self.model, self.clamp = model, clamp
        if like is not None:                          # same model and clamped v: share the cache
            self._v_part = like._v_part
        else:
            self._v_part = (model.visible_term(v).detach()
                            if clamp is True and v is not None and model.depth >= 1 else None)

    def at(self, rows: Tensor | None) -> tuple[Clamp, Tensor | None]:
        """(clamp, visible-term cache) of the chains ``rows`` (all chains when None)."""
        if rows is None:
            return self.clamp, self._v_part
        clamp = self.clamp[rows] if isinstance(self.clamp, Tensor) else self.clamp
        return clamp, None if self._v_part is None else self._v_part[rows]


class Gibbs(_Kernel):
    """Block Gibbs sweeps at temperature ``T`` (T = 0: the deterministic threshold move of the
    local search) with v clamped as ``clamp`` says: None (free), True (all of v fixed; pass the
    clamped ``v`` (B, n_0) to cache its visible term) or a (B, n_0) bool mask (True = fixed)."""

    def __init__(self, model: DBM, T: float = 1.0, clamp: Clamp = None, v: Tensor | None = None):
        super().__init__(model, clamp, v)
        self.T = float(T)

    @torch.no_grad()
    def block(self, xs: Sequence[Tensor], parity: int, u: Sequence[Tensor] | None,
              rows: Tensor | None = None, logits: dict[int, Tensor] | None = None
              ) -> tuple[tuple[Tensor, ...], dict[int, Tensor]]:
        """Resample the even (0) or odd (1) block given the other one with uniforms ``u`` (a (B, n_l)
        tensor per layer; None when T = 0). Returns the new state and the block's logits
        {l: (B, n_l)}; ``logits`` are the block's logits when the caller already has them
        (``LocalModeInfo.logits``)."""
        model, (clamp, v_part) = self.model, self.at(rows)
        xs, given, used = list(xs), logits or {}, {}
        for l in model.layers(parity):
            if l == 0 and clamp is True:
                continue
            a = used[l] = given[l] if l in given else model.logits(xs, l, v_part)
            xs[l] = _clamped(l, sample_bits(a, None if u is None else u[l], self.T), xs[l], clamp)
        return tuple(xs), used

    def update(self, xs: Sequence[Tensor], u: Sequence[Tensor] | None, rows: Tensor | None = None,
               even_logits: dict[int, Tensor] | None = None) -> tuple[tuple[Tensor, ...], SweepInfo]:
        """One sweep (even block, then odd block) with pre-drawn uniforms; deterministic given ``u``."""
        xs, _ = self.block(xs, 0, u, rows, even_logits)
        xs, odd = self.block(xs, 1, u, rows)
        return xs, SweepInfo(odd)

    def step(self, xs: Sequence[Tensor], generator: torch.Generator, rows: Tensor | None = None
             ) -> tuple[tuple[Tensor, ...], SweepInfo]:
        """One sweep drawing its own uniforms (none at T = 0)."""
        u = draw_uniforms(self.model, xs[0].shape[0], generator) if self.T > 0 else None
        return self.update(xs, u, rows)


def gibbs_update(model: DBM, xs: Sequence[Tensor], u: Sequence[Tensor] | None, T: float = 1.0,
                 clamp: Clamp = None) -> tuple[tuple[Tensor, ...], SweepInfo]:
    """One block Gibbs sweep with pre-drawn uniforms ``u``: ``Gibbs(model, T, clamp).update``."""
    return Gibbs(model, T, clamp).update(xs, u)


def gibbs_step(model: DBM, xs: Sequence[Tensor], generator: torch.Generator, T: float = 1.0,
               clamp: Clamp = None) -> tuple[tuple[Tensor, ...], SweepInfo]:
    """One block Gibbs sweep at temperature T: ``Gibbs(model, T, clamp).step``."""
    return Gibbs(model, T, clamp).step(xs, generator)


class LocalModeInfo(NamedTuple):
    """sweeps: (B,) long, T = 0 sweeps run including the one that changed nothing;
    capped: (B,) bool, the search stopped at ``max_sweeps`` before reaching a fixed point;
    logits: {l: (B, n_l)} the exact logits of the free even layers at the mode given its odd
    block, which the next sweep can reuse (``Gibbs.update(even_logits=...)``); None for "dense"."""
    sweeps: Tensor
    capped: Tensor
    logits: dict | None = None


def local_mode(model: DBM, xs: Sequence[Tensor], clamp: Clamp = None, max_sweeps: int = 1000,
               method: str = "incremental") -> tuple[tuple[Tensor, ...], LocalModeInfo]:
    """Local-mode search (spec §2, UCD-MH-LMI step 1): T = 0 block sweeps until a sweep changes
    nothing. Each block update is the exact arg-min of E over that block, so E never increases.

    method : "incremental" (default) keeps every layer's logits and updates them with the
        changes of the neighbouring layers (sparse products once few units flip); a chain leaves
        only after its logits are recomputed exactly and confirm a fixed point. "dense" recomputes
        the logits every sweep (the reference). Both return exact fixed points.

    Returns (mode, LocalModeInfo).
    """
    if method == "dense":
        return _local_mode_dense(model, xs, clamp, max_sweeps)
    if method == "incremental":
        mode, sweeps, capped, logits = _local_mode_incremental(model, xs, clamp, max_sweeps)
        return mode, LocalModeInfo(sweeps, capped, logits)
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
    cur = list(xs)
    kernel = Gibbs(model, 0.0, clamp, xs[0])
    rows = None                                   # the original chains still searching
    for s in range(1, max_sweeps + 1):
        before = list(cur)
        cur, _ = kernel.block(cur, 0, None, rows)
        if s == 1:
            cur, _ = kernel.block(cur, 1, None, rows)
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
            rows = idx
        if idx.numel() == 0:
            break
        if s > 1:
            cur, _ = kernel.block(cur, 1, None, rows)
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
    return tuple(out), sweeps, capped, out_logits


class MHState(NamedTuple):
    """xs: the state, a (B, n_l) tensor per layer; energy: (B,) its energy under the target."""
    xs: tuple
    energy: Tensor


class MHInfo(NamedTuple):
    """accepted: (B,) bool, the proposal was accepted."""
    accepted: Tensor


@torch.no_grad()
def mh_update(state: MHState, proposal: Sequence[Tensor], proposal_energy: Tensor, log_u: Tensor
              ) -> tuple[MHState, MHInfo]:
    """Accept x' where log u < E(x) - E(x'): the deterministic half of an MH step."""
    accept = log_u < state.energy - proposal_energy
    a = accept.unsqueeze(-1)
    xs = tuple(torch.where(a, p, x) for p, x in zip(proposal, state.xs))
    return MHState(xs, torch.where(accept, proposal_energy, state.energy)), MHInfo(accept)


class MH(_Kernel):
    """Metropolis-Hastings with the uniform independence proposal over the free units (spec §2,
    UCD-MH-LMI step 2), targeting E(x), or F(x_even) with the odd layers summed out when
    ``marginalize``. ``clamp`` and ``v`` as for ``Gibbs``; ``like``: a kernel bound to the same
    clamped v (its first rows), whose visible-term cache is reused instead of recomputed."""

    def __init__(self, model: DBM, clamp: Clamp = None, marginalize: bool = False, v: Tensor | None = None,
                 like: _Kernel | None = None):
        super().__init__(model, clamp, v, like)
        self.marginalize = bool(marginalize)
        self.energy_fn = energy_fn(model, self.marginalize)

    @torch.no_grad()
    def init(self, xs: Sequence[Tensor], odd_logits: dict[int, Tensor] | None = None) -> MHState:
        """Wrap a state; with ``marginalize`` the odd layers are zeroed (they are summed out).
        ``odd_logits``: the state's odd logits when at hand (``SweepInfo.odd_logits``)."""
        xs = tuple(torch.zeros_like(x) if (self.marginalize and l % 2) else x for l, x in enumerate(xs))
        return MHState(xs, self.energy_fn(xs, odd_logits))

    def propose(self, xs: Sequence[Tensor], generator: torch.Generator, rows: Tensor | None = None
                ) -> tuple[tuple[Tensor, ...], Tensor]:
        """The proposal x' (fixed units copied from ``xs``) and log-uniforms (B,) for the test."""
        clamp, _ = self.at(rows)
        new = list(xs)
        for l in free_layers(self.model, clamp, self.marginalize):
            bits = random_bits(tuple(xs[l].shape), generator, xs[l].dtype, xs[l].device)
            new[l] = _clamped(l, bits, xs[l], clamp)
        log_u = torch.log(torch.rand(xs[0].shape[0], generator=generator, dtype=xs[0].dtype,
                                     device=xs[0].device))
        return tuple(new), log_u

    @torch.no_grad()
    def energy(self, xs: Sequence[Tensor], rows: Tensor | None = None) -> Tensor:
        """E(x') or F(x'_even), (B,), using the cached visible term of a clamped v."""
        _, v_part = self.at(rows)
        return self.energy_fn(xs, self.model.block_logits(xs, 1, v_part))

    def step(self, state: MHState, generator: torch.Generator, rows: Tensor | None = None
             ) -> tuple[MHState, MHInfo]:
        prop, log_u = self.propose(state.xs, generator, rows)
        return mh_update(state, prop, self.energy(prop, rows), log_u)


def mh_init(model: DBM, xs: Sequence[Tensor], marginalize: bool = False,
            odd_logits: dict[int, Tensor] | None = None) -> MHState:
    """``MH(model, marginalize=marginalize).init(xs, odd_logits)``."""
    return MH(model, marginalize=marginalize).init(xs, odd_logits)


def mh_step(model: DBM, state: MHState, generator: torch.Generator, clamp: Clamp = None,
            marginalize: bool = False) -> tuple[MHState, MHInfo]:
    """One MH step: ``MH(model, clamp, marginalize).step``."""
    return MH(model, clamp, marginalize).step(state, generator)
