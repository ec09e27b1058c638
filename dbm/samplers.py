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

Sweep order (spec §1, ``ORDERS``): "even-first" updates the even block {v, h2, ...} given the
odd block, then the odd block {h1, h3, ...} given the even block; "odd-first" the reverse;
"random" is the authors' released order, drawn per chain: u ~ U(0, 1) per chain, u < 0.5 even
first, otherwise odd first (``draw_order``). A T = 1 sweep draws its own order; the T = 0 local
search draws one per chain and keeps it for all that chain's sweeps. An order is passed to a
kernel as ``odd_first``, a (B,) bool tensor (None: every chain even first, the fixed order of the
suite before the faithful-order issue, bit for bit). Every sweep leaves the odd logits of its
final state given its even block at hand (``SweepInfo.odd_logits``), so the state's energy costs
no further matrix product (model eq. (1)).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from .model import DBM, random_bits

__all__ = ["ORDERS", "check_order", "draw_order", "Clamp", "draw_uniforms", "threshold", "sample_bits", "random_bits", "free_layers", "energy_fn",
           "SweepInfo", "Gibbs", "gibbs_step", "gibbs_update", "LocalModeInfo", "local_mode",
           "MHState", "MHInfo", "MH", "GibbsMH", "mh_init", "mh_step"]

Clamp = None | bool | Tensor  # None: all free; True: all of v fixed; (B, n_0) bool mask: True = fixed
ORDERS = ("even-first", "odd-first", "random")


def check_order(order: str) -> str:
    """``order`` if it is one of ``ORDERS``, else ValueError."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")
    return order


def draw_order(order: str, batch: int, generator: torch.Generator | None, device=None) -> Tensor | None:
    """The per-chain block order of one sweep or one local search, as ``odd_first`` (B,) bool
    (True: the odd block first); None for "even-first" (no random number is drawn). "random" draws
    u ~ U(0, 1) per chain (float32) and goes odd first where u >= 0.5, as the released code."""
    check_order(order)
    if order == "even-first":
        return None
    if order == "odd-first":
        return torch.ones(batch, dtype=torch.bool, device=device)
    if generator is None:
        raise ValueError("order='random' needs a torch.Generator")
    return torch.rand(batch, generator=generator, device=device) >= 0.5


def energy_fn(model: DBM, marginalize: bool):
    """The function an MH chain targets: E(x), or F(x_even) with odd layers summed out."""
    return model.free_energy if marginalize else model.energy


def free_layers(model: DBM, clamp: Clamp, marginalize: bool = False) -> list[int]:
    """Layers with at least one free unit (v excluded when fully clamped, odd layers excluded
    when they are summed out)."""
    layers = [l for l in range(len(model.layer_sizes)) if not (l == 0 and clamp is True)]
    return [l for l in layers if not (marginalize and l % 2 == 1)]


def threshold(a: Tensor) -> Tensor:
    """The T = 0 move: 1.0 where a >= 0, else 0.0 (shape and dtype of ``a``), by float arithmetic
    (sign(a) + 1, capped at 1), several times faster on the CPU than a comparison and a cast."""
    return torch.sign(a).add_(1).clamp_(max=1)


def sample_bits(a: Tensor, u: Tensor | None, T: float) -> Tensor:
    """Bernoulli(sigmoid(a / T)) as (u < p); T = 0 is the threshold (a >= 0). Shape of ``a``."""
    if T == 0:
        return threshold(a)
    return torch.sign(torch.sigmoid(a / T).sub_(u)).clamp_(min=0)      # u < p, by float arithmetic


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
    """odd_logits: {l: (B, n_l)} the odd logits of the new state given its even block (the last
    half's, for an even-first sweep), so its energy needs no further product; None when a sweep
    with per-chain orders was asked not to compute them (``update(odd_logits=False)``).
    energy: (B,) E of the new state, from whichever block's logits each chain's last half
    computed (per-chain orders only; else None)."""
    odd_logits: dict | None
    energy: Tensor | None = None


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

    def local_mode(self, xs: Sequence[Tensor], max_sweeps: int = 1000, method: str = "auto",
                   odd_first: Tensor | None = None) -> tuple[tuple[Tensor, ...], "LocalModeInfo"]:
        """``local_mode`` with this kernel's clamp and visible-term cache (``xs[0]`` is the clamped
        v the kernel was built with when ``clamp`` is True); ``odd_first`` (B,) bool: the chains
        whose sweeps update the odd block first (None: none; ``draw_order``)."""
        if odd_first is not None and odd_first.shape != (xs[0].shape[0],):
            raise ValueError(f"odd_first must be a ({xs[0].shape[0]},) bool tensor, got {tuple(odd_first.shape)}")
        if method == "auto":
            method = CPU_SEARCH if xs[0].device.type == "cpu" else DEVICE_SEARCH
        if method == "dense":
            return _local_mode_dense(self, xs, max_sweeps, odd_first)
        if method == "chunked":
            return _local_mode_chunked(self, xs, max_sweeps, odd_first)
        if method == "incremental":
            mode, sweeps, capped, logits = _local_mode_incremental(self.model, xs, self.clamp, max_sweeps,
                                                                   self._v_part, odd_first)
            return mode, LocalModeInfo(sweeps, capped, logits)
        raise ValueError(f"unknown local-search method {method!r}; use 'auto', 'incremental', 'chunked' or 'dense'")

    def at(self, rows: Tensor | None) -> tuple[Clamp, Tensor | None]:
        """(clamp, visible-term cache) of the chains ``rows`` (all chains when None)."""
        if rows is None:
            return self.clamp, self._v_part
        clamp = self.clamp[rows] if isinstance(self.clamp, Tensor) else self.clamp
        return clamp, None if self._v_part is None else self._v_part[rows]


class Gibbs(_Kernel):
    """Block Gibbs sweeps at temperature ``T`` (T = 0: the deterministic threshold move of the
    local search) with v clamped as ``clamp`` says: None (free), True (all of v fixed; pass the
    clamped ``v`` (B, n_0) to cache its visible term) or a (B, n_0) bool mask (True = fixed).
    ``order``: the block order of the sweeps ``step`` draws (``ORDERS``; "even-first" default)."""

    def __init__(self, model: DBM, T: float = 1.0, clamp: Clamp = None, v: Tensor | None = None,
                 like: _Kernel | None = None, order: str = "even-first"):
        super().__init__(model, clamp, v, like)
        self.T = float(T)
        self.order = check_order(order)

    @torch.no_grad()
    def block(self, xs: Sequence[Tensor], parity: int, u: Sequence[Tensor] | None,
              rows: Tensor | None = None, logits: dict[int, Tensor] | None = None,
              only: Tensor | None = None) -> tuple[tuple[Tensor, ...], dict[int, Tensor]]:
        """Resample the even (0) or odd (1) block given the other one with uniforms ``u`` (a (B, n_l)
        tensor per layer; None when T = 0). Returns the new state and the block's logits
        {l: (B, n_l)} (of every chain); ``logits`` are the block's logits when the caller already
        has them (``LocalModeInfo.logits``); ``only`` (B,) bool: update these chains alone."""
        model, (clamp, v_part) = self.model, self.at(rows)
        xs, given, used = list(xs), logits or {}, {}
        for l in model.layers(parity):
            if l == 0 and clamp is True:
                continue
            a = used[l] = given[l] if l in given else model.logits(xs, l, v_part)
            new = _clamped(l, sample_bits(a, None if u is None else u[l], self.T), xs[l], clamp)
            xs[l] = new if only is None else torch.where(only.unsqueeze(-1), new, xs[l])
        return tuple(xs), used

    def update(self, xs: Sequence[Tensor], u: Sequence[Tensor] | None, rows: Tensor | None = None,
               logits: dict[int, Tensor] | None = None, odd_first: Tensor | None = None,
               odd_logits: bool = True) -> tuple[tuple[Tensor, ...], SweepInfo]:
        """One sweep with pre-drawn uniforms, deterministic given ``u`` and ``odd_first`` (B,) bool:
        those chains update the odd block, then the even block; the others (all when None) the
        even block, then the odd block. ``logits``: {l: (B, n_l)} logits of ``xs``'s free layers
        given the other block, when at hand (``LocalModeInfo.logits``); each chain's first
        half-sweep uses its block's. With per-chain orders each group of chains sweeps in its own
        order on its own rows, each chain's units drawn with its own uniforms, and
        ``SweepInfo.energy`` is every chain's new energy, from the logits of its last half (the
        even-first group's odd logits, the odd-first group's even logits: ``DBM.energy_from_even``).
        The odd-first group's odd logits cost one more product, made only with ``odd_logits``
        (a marginalised chain's free energy needs them). When ``logits`` hold both blocks' (a local
        mode's), every chain's first half is drawn on the whole batch (both blocks drawn, each chain
        keeping its first block's) and only the second half, which needs new logits, runs per group:
        the same numbers, with less copying."""
        if odd_first is None:
            xs, _ = self.block(xs, 0, u, rows, logits)
            xs, odd = self.block(xs, 1, u, rows)
            return xs, SweepInfo(odd)
        batch, model = xs[0].shape[0], self.model
        clamp = self.at(rows)[0]
        led = logits is not None and set(logits) == set(free_layers(model, clamp))
        if led:              # every chain's first half on the whole batch, from both blocks' logits
            m, xs = odd_first.unsqueeze(-1), list(xs)
            for l, a in logits.items():
                new = _clamped(l, sample_bits(a, None if u is None else u[l], self.T), xs[l], clamp)
                xs[l] = torch.where(m, new, xs[l]) if l % 2 else torch.where(m, xs[l], new)
        out = xs if led else [torch.empty_like(x) for x in xs]
        odd_out, energy = {}, torch.empty(batch, dtype=xs[0].dtype, device=xs[0].device)
        for first, r in _groups(odd_first):
            sub = [x.index_select(0, r) for x in xs]
            su = None if u is None else {l: t.index_select(0, r) for l, t in enumerate(u)
                                         if not led or l % 2 != first}
            sr = r if rows is None else rows.index_select(0, r)
            if not led:
                given = None if logits is None else {l: t.index_select(0, r) for l, t in logits.items()}
                sub, _ = self.block(sub, first, su, sr, given)
            sub, last = self.block(sub, 1 - first, su, sr)
            if first == 0:
                e, odd = model.energy(sub, last), last
            else:
                v_part = self.at(sr)[1]
                e = model.energy_from_even(sub, last, v_part)
                odd = model.block_logits(sub, 1, v_part) if odd_logits else {}      # no odd layer is v
            energy.index_copy_(0, r, e)
            for l in (last if led else range(len(out))):
                out[l].index_copy_(0, r, sub[l])
            for l, a in odd.items():
                odd_out.setdefault(l, torch.empty(batch, a.shape[1], dtype=a.dtype, device=a.device))
                odd_out[l].index_copy_(0, r, a)
        return tuple(out), SweepInfo(odd_out if odd_logits else None, energy)

    def draw(self, batch: int, generator: torch.Generator) -> tuple[tuple[Tensor, ...] | None, Tensor | None]:
        """The random numbers of one sweep: (uniforms, None at T = 0; odd_first, by ``order``)."""
        w = self.model.weights[0]
        odd_first = draw_order(self.order, batch, generator, w.device)
        return (draw_uniforms(self.model, batch, generator) if self.T > 0 else None), odd_first

    def step(self, xs: Sequence[Tensor], generator: torch.Generator, rows: Tensor | None = None
             ) -> tuple[tuple[Tensor, ...], SweepInfo]:
        """One sweep drawing its own random numbers (``draw``)."""
        u, odd_first = self.draw(xs[0].shape[0], generator)
        return self.update(xs, u, rows, odd_first=odd_first)


def gibbs_update(model: DBM, xs: Sequence[Tensor], u: Sequence[Tensor] | None, T: float = 1.0,
                 clamp: Clamp = None, odd_first: Tensor | None = None) -> tuple[tuple[Tensor, ...], SweepInfo]:
    """One block Gibbs sweep with pre-drawn uniforms ``u``: ``Gibbs(model, T, clamp).update``."""
    return Gibbs(model, T, clamp).update(xs, u, odd_first=odd_first)


def gibbs_step(model: DBM, xs: Sequence[Tensor], generator: torch.Generator, T: float = 1.0,
               clamp: Clamp = None, order: str = "even-first") -> tuple[tuple[Tensor, ...], SweepInfo]:
    """One block Gibbs sweep at temperature T: ``Gibbs(model, T, clamp, order=order).step``."""
    return Gibbs(model, T, clamp, order=order).step(xs, generator)


class LocalModeInfo(NamedTuple):
    """sweeps: (B,) long, T = 0 sweeps run including the one that changed nothing;
    capped: (B,) bool, the search stopped at ``max_sweeps`` before reaching a fixed point;
    logits: {l: (B, n_l)} the exact logits of every free layer at the mode given the other block
    (at a fixed point both blocks' logits are those of the final state), which the next sweep's
    first half reuses, whichever block it starts with (``Gibbs.update(logits=...)``);
    None for "dense"."""
    sweeps: Tensor
    capped: Tensor
    logits: dict | None = None


def local_mode(model: DBM, xs: Sequence[Tensor], clamp: Clamp = None, max_sweeps: int = 1000,
               method: str = "auto", order: str = "even-first",
               generator: torch.Generator | None = None) -> tuple[tuple[Tensor, ...], LocalModeInfo]:
    """Local-mode search (spec §2, UCD-MH-LMI step 1): T = 0 block sweeps until a whole sweep
    changes nothing (with v clamped: none of the free units). Each block update is the exact
    arg-min of E over that block (unit = 1 iff its logit >= 0), so E never increases.

    order : the block order of each chain's sweeps (``ORDERS``), kept for the whole search;
        "random" draws it per chain from ``generator`` (the released semantics).
    method : "incremental" keeps every layer's logits and updates them with the changes of the
        neighbouring layers (sparse products once few units flip); a chain leaves only after its
        logits are recomputed exactly and confirm a fixed point. "dense" recomputes the logits
        every sweep (the reference). "chunked" is the device path: dense sweeps of the whole
        batch, asking the host whether a chain still runs once per chunk of sweeps
        (``_local_mode_chunked``). "auto" (default): ``CPU_SEARCH`` on the CPU ("incremental"),
        ``DEVICE_SEARCH`` elsewhere ("chunked"). All return exact fixed points.

    Returns (mode, LocalModeInfo).
    """
    odd_first = draw_order(order, xs[0].shape[0], generator, xs[0].device)
    return _Kernel(model, clamp, xs[0]).local_mode(xs, max_sweeps, method, odd_first)


@torch.no_grad()
def _local_mode_dense(bound: _Kernel, xs, max_sweeps, odd_first=None):
    """Only chains still changing are swept (their rows are compacted once per sweep). From the
    second sweep on, the odd block is a function of the previous even block, so an unchanged even
    block means a fixed point and the odd update is skipped for those chains. Per-chain orders:
    ``_local_mode_dense_ordered``."""
    if odd_first is not None:
        return _local_mode_dense_ordered(bound, xs, max_sweeps, odd_first)
    batch = xs[0].shape[0]
    out = [x.clone() for x in xs]
    sweeps = torch.full((batch,), max_sweeps, dtype=torch.long, device=xs[0].device)
    capped = torch.ones(batch, dtype=torch.bool, device=xs[0].device)
    idx = torch.arange(batch, device=xs[0].device)
    cur = list(xs)
    model, kernel = bound.model, Gibbs(bound.model, 0.0, bound.clamp, like=bound)
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


@torch.no_grad()
def _local_mode_dense_ordered(bound: _Kernel, xs, max_sweeps, odd_first):
    """The reference search with per-chain orders, as the spec reads: each sweep updates every
    chain's first block, then its second (two masked half-sweeps per block pair over the chains
    still searching), and a chain stops after the first sweep that changed none of its units."""
    batch, dev = xs[0].shape[0], xs[0].device
    out = [x.clone() for x in xs]
    sweeps = torch.full((batch,), max_sweeps, dtype=torch.long, device=dev)
    capped = torch.ones(batch, dtype=torch.bool, device=dev)
    kernel = Gibbs(bound.model, 0.0, bound.clamp, like=bound)
    idx, cur, of = torch.arange(batch, device=dev), list(xs), odd_first
    for s in range(1, max_sweeps + 1):
        before = list(cur)
        for first, second in ((0, 1), (1, 0)):         # even-first chains: even, odd; odd-first: odd, even
            cur, _ = kernel.block(cur, first, None, idx, only=~of)
            cur, _ = kernel.block(cur, second, None, idx, only=of)
        changed = torch.stack([(c != b).any(-1) for c, b in zip(cur, before)]).any(0)
        done = ~changed
        for l in range(len(out)):
            out[l].index_copy_(0, idx[done], cur[l][done])
        sweeps[idx[done]] = s
        capped[idx[done]] = False
        idx, of, cur = idx[changed], of[changed], [x[changed] for x in cur]
        if idx.numel() == 0:
            break
    if idx.numel():
        for l in range(len(out)):
            out[l].index_copy_(0, idx, cur[l])
    return tuple(out), LocalModeInfo(sweeps, capped)


CPU_SEARCH = "incremental"     # the search "auto" runs on the CPU (NumPy scans of the flips)
DEVICE_SEARCH = "chunked"     # and on a device: host synchronisations bounded per search (issue 36)
FIRST_CHUNK = 8               # sweeps before the chunked search first asks the host (MNIST searches: 2-8)


@torch.no_grad()
def _local_mode_chunked(bound: _Kernel, xs, max_sweeps, odd_first=None):
    """The device path of the search (issue 36): the reference's sweeps (``_local_mode_dense``'s
    order and stopping rule, per-chain orders as ``_local_mode_dense_ordered``'s masked
    half-sweeps) on the whole batch, never compacted. A chain's sweep count is recorded on the
    device when a sweep changes none of its units; sweeping it on leaves it where it is (a fixed
    point of its own sweep, computed on the same rows of the same shapes), so no mask is needed
    for its state. The host is asked whether any chain still runs once per chunk of sweeps, the
    chunks doubling from ``FIRST_CHUNK``: at most ceil(log2(max_sweeps / FIRST_CHUNK + 1))
    synchronisations per search however many sweeps it takes (4 at 100 sweeps, 7 at 1000), and
    one for every search within the first chunk. Returns what the reference does, plus both
    blocks' logits at the mode (``LocalModeInfo.logits``, for the sweep after it)."""
    batch, dev = xs[0].shape[0], xs[0].device
    kernel = Gibbs(bound.model, 0.0, bound.clamp, like=bound)
    free = free_layers(bound.model, bound.clamp)             # the layers whose logits the next sweep reuses
    cur = tuple(xs)
    run = torch.ones(batch, dtype=torch.bool, device=dev)
    sweeps = torch.full((batch,), max_sweeps, dtype=torch.long, device=dev)
    s, chunk = 0, FIRST_CHUNK
    while s < max_sweeps:
        for _ in range(min(chunk, max_sweeps - s)):
            s += 1
            new = cur
            if odd_first is None:
                new, _ = kernel.block(new, 0, None)
                new, _ = kernel.block(new, 1, None)
            else:
                for first, second in ((0, 1), (1, 0)):         # even-first chains: even, odd; odd-first: odd, even
                    new, _ = kernel.block(new, first, None, only=~odd_first)
                    new, _ = kernel.block(new, second, None, only=odd_first)
            changed = torch.stack([(a != b).any(-1) for a, b in zip(new, cur)]).any(0)
            sweeps = torch.where(run & ~changed, s, sweeps)
            run = run & changed
            cur = new
        if not bool(run.any()):                                  # the chunk's one synchronisation
            break
        chunk *= 2
    return cur, LocalModeInfo(sweeps, run, {l: bound.model.logits(cur, l, kernel._v_part) for l in free})


SPARSE_MAX_DENSITY = 0.2   # below this fraction of flipped units a gathered sum beats a dense product (CPU)
NUMPY_SCAN = True          # CPU: the search's flip scans by NumPy; False runs the device (torch) path on the CPU


class _Delta(NamedTuple):
    """The change of one layer in a block update, described for ``_delta_product``: nnz its set
    entries; either d (b, n) in {-1, 0, 1} for a dense product, or (CPU, few changes) the column
    of each change in row order, the start of each row's changes and their signs (d is then None)."""
    d: Tensor | None
    nnz: int
    cols: Tensor | None = None
    offsets: Tensor | None = None
    signs: Tensor | None = None


class _Change(NamedTuple):
    """One layer's change in a block update, (b, n) entries in {-1, 0, 1}, nnz of them set. On the
    CPU ``flat`` holds their row-major positions and ``signs`` their values (NumPy); on a device
    ``d`` is the dense change, ``per_row`` the flips per chain and ``x_new`` the new layer."""
    shape: tuple
    nnz: int
    flat: np.ndarray | None = None
    signs: np.ndarray | None = None
    d: Tensor | None = None
    per_row: Tensor | None = None
    x_new: Tensor | None = None

    def dense(self) -> Tensor:
        """The change as a (b, n) tensor."""
        if self.d is not None:
            return self.d
        d = np.zeros(self.shape[0] * self.shape[1], dtype=self.signs.dtype)
        d[self.flat] = self.signs
        return torch.from_numpy(d.reshape(self.shape))


def _flip(a: Tensor, x: Tensor, fixed: Tensor | None, moved: Tensor, skip: Tensor | None = None
          ) -> _Change | None:
    """The T = 0 update of one layer: x (b, n) becomes threshold(a) (1 where a >= 0) except where
    ``fixed`` (b, n) bool is set and in the chains ``skip`` (b,) bool. Returns the change (None
    when nothing flips) and sets ``moved`` (b,) where a chain flipped a unit. On the CPU, x is
    changed **in place** (the caller owns it) and NumPy finds the flips in one scan (a comparison
    and flatnonzero: 5-6x faster than torch.nonzero on a (100, 784) tensor, and no float change
    tensor); on a device a new x is made (``x_new`` of the change)."""
    if a.device.type == "cpu" and NUMPY_SCAN:
        xf = x.view(-1).numpy()                           # a view: x must be contiguous
        flips = (a.numpy() >= 0).reshape(-1) != (xf != 0)
        if fixed is not None:
            flips &= ~fixed.numpy().reshape(-1)
        if skip is not None:
            flips.reshape(x.shape)[skip.numpy()] = False
        flat = np.flatnonzero(flips)
        if flat.size == 0:
            return None
        signs = 1 - 2 * xf[flat]                          # 0 -> 1 is +1, 1 -> 0 is -1
        xf[flat] += signs
        moved.numpy()[flat // x.shape[1]] = True
        return _Change(tuple(x.shape), int(flat.size), flat=flat, signs=signs)
    new = _clamped(0, threshold(a), x, fixed)
    if skip is not None:
        new = torch.where(skip.unsqueeze(-1), x, new)
    d = new - x
    per_row = d.abs().sum(-1)                             # flips per chain (float sums are fast)
    nnz = int(per_row.sum())
    if nnz == 0:
        return None
    moved |= per_row > 0
    return _Change(tuple(x.shape), nnz, d=d, per_row=per_row, x_new=new)


def _partition(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(rows where ``mask`` (b,) bool is False, rows where it is True), long (NumPy on the CPU:
    these are 100-element masks, where torch's per-call overhead dominates)."""
    if mask.device.type == "cpu" and NUMPY_SCAN:
        m = mask.numpy()
        return torch.from_numpy(np.flatnonzero(~m)), torch.from_numpy(np.flatnonzero(m))
    rows = torch.argsort(mask.to(torch.uint8), stable=True)   # False rows, then True rows, each ascending
    n_false = mask.shape[0] - int(mask.sum())                # one host synchronisation for both
    return rows[:n_false], rows[n_false:]


def _groups(odd_first: Tensor) -> list[tuple[int, Tensor]]:
    """[(0, rows of the even-first chains), (1, rows of the odd-first chains)], empty groups left out."""
    return [(p, r) for p, r in enumerate(_partition(odd_first)) if r.numel()]


def _split(moved: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """(rows of the chains that did not move, rows of those that did), long (``_partition``);
    (None, None) when every chain moved."""
    every = moved.numpy().all() if moved.device.type == "cpu" and NUMPY_SCAN else not bool((~moved).any())
    return (None, None) if every else _partition(moved)


def _describe(c: _Change, keep: Tensor | None = None) -> _Delta | None:
    """The _Delta of ``c``, restricted to the chains ``keep`` (ascending row indices) when given;
    every chain with a flip must be kept on the CPU (the search drops only chains that did not
    move). None when nothing is left."""
    b, n = c.shape
    if c.flat is None:
        d, nnz = c.d, c.nnz
        if keep is not None:
            d, nnz = d.index_select(0, keep), int(c.per_row.index_select(0, keep).sum())
        return _Delta(d, nnz) if nnz else None
    rows, cols = np.divmod(c.flat, n)
    if keep is not None:
        k = keep.numpy()
        new_row = np.empty(b, dtype=np.int64)
        new_row[k] = np.arange(k.size)
        rows, b = new_row[rows], k.size
    if c.nnz >= SPARSE_MAX_DENSITY * b * n:
        d = c.dense()
        return _Delta(d if keep is None else d.index_select(0, keep), c.nnz)
    offsets = np.searchsorted(rows, np.arange(b))
    return _Delta(None, c.nnz, torch.from_numpy(cols), torch.from_numpy(offsets), torch.from_numpy(c.signs))


def _delta_product(delta: _Delta, w: Tensor) -> Tensor:
    """d @ w, w (n, m): with positions, each row's sum of the +-rows of w it selects
    (``embedding_bag``: no sparse-format conversion); otherwise a dense product."""
    if delta.cols is None:
        return delta.d @ w
    return torch.nn.functional.embedding_bag(delta.cols, w, delta.offsets, mode="sum",
                                             per_sample_weights=delta.signs)


class _Search(NamedTuple):
    """The chains of the incremental local search still searching (the kernel's state).

    idx: (b,) their rows in the batch; count: (b,) sweeps of the schedule so far; cur: [(b, n_l)]
    their state; a: {l: (b, n_l)} the kept logits of the free layers; cm: their clamp of v;
    of: (b,) bool odd-first flags (None without per-chain orders); odd_moved: (b,) bool, the chains
    the odd half of the last sweep moved (None before it or without orders)."""
    idx: Tensor
    count: Tensor
    cur: list
    a: dict
    cm: Clamp
    of: Tensor | None
    odd_moved: Tensor | None


class _LocalSearch:
    """Incremental local search: logits a_l are kept per active chain and updated by
    Delta_{l-1} W_l^T + Delta_{l+1} W_{l+1} after each block update. Rounding may make kept
    logits drift (``vp``: the visible-term cache of a clamped v, or None), so a chain that stops
    changing is set aside, and once no chain is active all set-aside chains are checked in one
    batch with exactly recomputed logits (``check``): a chain leaves only if its state is a fixed
    point of both exact block updates; the others resume from the exact logits (their sweeps keep
    counting).

    Per-chain orders (``odd_first`` (B,) bool): every chain follows one schedule, even block then
    odd block, and an odd-first chain skips the even half of the first sweep, so its own sweeps
    (odd, even) straddle the schedule's. It cannot stop in sweep 1 (its even block is the random
    start's). From sweep 2 on an even update that changes nothing proves a fixed point for either
    order; an odd-first chain that stops at sweep g ran g - 1 of its own sweeps when the odd update
    of sweep g - 1 left it unchanged too (its own sweep g - 1 then changed nothing), else g. The
    block updates are the same ones, in the same sequence, as the chain's own order makes, so it
    reaches the same mode in the same count as the dense reference. An odd-first chain that stops
    in sweep 2 with neither of its blocks moved since the search began still holds exact logits of
    both blocks (each computed exactly, given a block that has not changed since), so it leaves at
    once instead of waiting for the exact check: at a warm start most odd-first chains do this.

    The kernel shape of the other samplers: the model, clamp and cap are bound once; the state is
    a ``_Search``; ``sweep`` makes one sweep of the schedule, ``check`` the exact check of the
    chains set aside; ``run`` is the loop. Finished chains are written to the outputs by ``finish``."""

    def __init__(self, model, xs, clamp, max_sweeps, vp, odd_first=None):
        self.model, self.clamp, self.max_sweeps, self.vp = model, clamp, max_sweeps, vp
        batch, self.dev = xs[0].shape[0], xs[0].device
        self.n_layers = len(xs)
        self.free = [l for l in range(self.n_layers) if not (l == 0 and clamp is True)]
        self.even = [l for l in self.free if l % 2 == 0]
        self.odd = [l for l in self.free if l % 2 == 1]
        self.wt = [None] + [model.weight_t(l) for l in range(1, self.n_layers)]     # wt[l] = W_l^T, contiguous
        self.wd = [None] + [w.detach() for w in model.weights]
        self.ordered = odd_first is not None
        self.xs, self.odd_first = xs, odd_first
        self.out = [x.clone() for x in xs]
        self.sweeps = torch.full((batch,), max_sweeps, dtype=torch.long, device=self.dev)
        self.capped = torch.ones(batch, dtype=torch.bool, device=self.dev)
        self.out_logits = {l: torch.empty(batch, model.layer_sizes[l], dtype=xs[0].dtype, device=self.dev)
                           for l in self.free}

    # -- the block updates -------------------------------------------------------------------
    def rows_of_clamp(self, idx):
        return self.clamp.index_select(0, idx) if isinstance(self.clamp, Tensor) else self.clamp

    def exact(self, state, layers, rows):
        v_part = None if self.vp is None else self.vp.index_select(0, rows)
        return {l: self.model.logits(state, l, v_part).detach() for l in layers}

    def update(self, parity, s: _Search, moved, skip=None):
        """Threshold the block's layers (not in the chains ``skip``); return their changes
        {l: _Change} and mark in ``moved`` (b,) the chains with a flip. ``described`` turns
        changes into _Deltas once it is known which chains stay."""
        changes = {}
        for l in self.model.layers(parity):
            if l not in s.a:
                continue
            c = _flip(s.a[l], s.cur[l], s.cm if l == 0 and isinstance(s.cm, Tensor) else None, moved, skip)
            if c is not None:
                if c.x_new is not None:                   # device: a new tensor
                    s.cur[l] = c.x_new
                changes[l] = c
        return changes

    @staticmethod
    def described(changes, keep=None):
        """{l: _Delta} of ``changes``, restricted to the chains ``keep`` when given."""
        out = {l: _describe(c, keep) for l, c in changes.items()}
        return {l: dl for l, dl in out.items() if dl is not None}

    def propagate(self, a, deltas):
        for l, delta in deltas.items():
            if l + 1 < self.n_layers and (l + 1) in a:
                a[l + 1] += _delta_product(delta, self.wt[l + 1])
            if l - 1 >= 0 and (l - 1) in a:
                a[l - 1] += _delta_product(delta, self.wd[l])

    def unmarked(self, s: _Search):
        return torch.zeros(s.idx.shape[0], dtype=torch.bool, device=self.dev)

    def odd_update(self, s: _Search) -> _Search:
        """The odd half of a sweep after the first; records which chains it moved."""
        om = self.unmarked(s)
        self.propagate(s.a, self.described(self.update(1, s, om)))
        return s._replace(odd_moved=om)

    # -- bookkeeping of the active chains -------------------------------------------------------
    def finish(self, rows, state, logits, count, is_capped):
        for l in range(self.n_layers):
            self.out[l].index_copy_(0, rows, state[l])
        for l in self.free:
            self.out_logits[l].index_copy_(0, rows, logits[l])
        self.sweeps[rows] = count
        self.capped[rows] = is_capped

    def keep(self, s: _Search, k) -> _Search:
        """The state compacted to the active chains ``k``."""
        idx = s.idx.index_select(0, k)
        return _Search(idx, s.count.index_select(0, k), [x.index_select(0, k) for x in s.cur],
                       {l: t.index_select(0, k) for l, t in s.a.items()}, self.rows_of_clamp(idx),
                       s.of.index_select(0, k) if self.ordered else s.of,
                       s.odd_moved.index_select(0, k) if self.ordered else s.odd_moved)

    @staticmethod
    def rows(s: _Search, r):
        return [x.index_select(0, r) for x in s.cur]

    def own_count(self, s: _Search, r):
        """The sweeps of the stopping chains ``r`` in their own order (the class docstring)."""
        c = s.count.index_select(0, r)
        return c - (s.of.index_select(0, r) & ~s.odd_moved.index_select(0, r)).long() if self.ordered else c

    def leave(self, s: _Search, r, count):
        """The chains ``r`` leave with their kept logits (exact where this is called)."""
        self.finish(s.idx[r], self.rows(s, r), {l: s.a[l].index_select(0, r) for l in self.free}, count, False)

    def retire_capped(self, s: _Search, most: int) -> _Search:
        """Chains that ran ``max_sweeps`` leave with the exact logits of their last state.
        ``most``, a bound on the active chains' counts kept in Python, spares a check per sweep."""
        if most < self.max_sweeps:
            return s
        cap = s.count >= self.max_sweeps
        if bool(cap.any()):
            r = cap.nonzero().squeeze(-1)
            state = self.rows(s, r)
            self.finish(s.idx[r], state, self.exact(state, self.free, s.idx[r]), s.count[r], True)
            s = self.keep(s, (~cap).nonzero().squeeze(-1))
        return s

    # -- the kernel ------------------------------------------------------------------------------
    def init(self) -> _Search:
        idx = torch.arange(self.xs[0].shape[0], device=self.dev)
        cur = [x.clone(memory_format=torch.contiguous_format) for x in self.xs]   # _flip works in place
        return _Search(idx, torch.zeros_like(idx), cur, self.exact(cur, self.even, idx), self.clamp,
                       self.odd_first, None)

    def sweep(self, s: _Search, first: bool, second: bool, pending: list) -> _Search:
        """One sweep of the schedule (even half, then odd half) of the active chains. Chains that
        stop leave (sweep 1: logits exact; sweep 2, odd-first chains untouched since the start) or
        are set aside in ``pending`` for the exact check; the rest go on."""
        s.count.add_(1)
        moved = self.unmarked(s)
        d_even = self.update(0, s, moved, s.of if first else None)
        if first:                                        # logits exact this sweep: no check needed
            s.a.update(self.exact(s.cur, self.odd, s.idx))
            om = self.unmarked(s) if self.ordered else moved
            self.propagate(s.a, self.described(self.update(1, s, om)))
            if self.ordered:                             # odd-first chains cannot stop in sweep 1
                s = s._replace(odd_moved=om)
                moved |= om | s.of
        r, k = _split(moved)
        if r is not None:
            if first:
                self.leave(s, r, s.count[r])
            else:
                if second and self.ordered:              # logits still exact: no check needed
                    untouched = s.of.index_select(0, r) & ~s.odd_moved.index_select(0, r)
                    if bool(untouched.any()):
                        rd, r = r[untouched], r[~untouched]
                        self.leave(s, rd, self.own_count(s, rd))
                if r.numel():                            # set aside for the exact check
                    pending.append((s.idx.index_select(0, r), self.rows(s, r), s.count.index_select(0, r),
                                    self.own_count(s, r), s.of.index_select(0, r) if self.ordered else None))
            s = self.keep(s, k)
        if not first and s.idx.numel():
            self.propagate(s.a, self.described(d_even, k))
            s = self.odd_update(s)
        return s

    def check(self, pending: list) -> tuple[_Search, int]:
        """The exact check of the chains set aside: fixed points of both exact block updates leave
        (with their own sweep counts); the others resume from the exact logits. Returns their state
        and the bound on their counts."""
        idx = torch.cat([p[0] for p in pending])
        cur = [torch.cat([p[1][l] for p in pending]) for l in range(self.n_layers)]
        count, own = torch.cat([p[2] for p in pending]), torch.cat([p[3] for p in pending])
        of = torch.cat([p[4] for p in pending]) if self.ordered else None
        cm = self.rows_of_clamp(idx)
        s = _Search(idx, count, cur, self.exact(cur, self.free, idx), cm, of, None)
        ok = torch.ones(idx.shape[0], dtype=torch.bool, device=self.dev)
        for l in self.free:
            agree = threshold(s.a[l]) == cur[l]
            if l == 0 and isinstance(cm, Tensor):
                agree |= cm
            ok &= agree.all(-1)
        if bool(ok.any()):
            self.leave(s, ok.nonzero().squeeze(-1), own[ok])
        s = s._replace(odd_moved=self.unmarked(s) if self.ordered else None)
        return self.keep(s, (~ok).nonzero().squeeze(-1)), int(count.max())   # drifted: resume

    def run(self):
        s, first, second, pending, most = self.init(), True, False, [], 0
        while True:
            while s.idx.numel():
                most += 1
                s = self.sweep(s, first, second, pending)
                first, second = False, first
                s = self.retire_capped(s, most)
            if not pending:
                break
            s, most = self.check(pending)
            pending = []
            if s.idx.numel():
                s = self.retire_capped(self.odd_update(s), most)
        return tuple(self.out), self.sweeps, self.capped, self.out_logits


@torch.no_grad()
def _local_mode_incremental(model, xs, clamp, max_sweeps, vp, odd_first=None):
    """(mode, sweeps, capped, logits) of the incremental local search (``_LocalSearch``)."""
    return _LocalSearch(model, xs, clamp, max_sweeps, vp, odd_first).run()


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
    def init(self, xs: Sequence[Tensor], odd_logits: dict[int, Tensor] | None = None,
             energy: Tensor | None = None) -> MHState:
        """Wrap a state; with ``marginalize`` the odd layers are zeroed (they are summed out).
        ``odd_logits``: the state's odd logits when at hand (``SweepInfo.odd_logits``);
        ``energy``: its E(x) when at hand (``SweepInfo.energy``; not used with ``marginalize``,
        whose target is F)."""
        xs = tuple(torch.zeros_like(x) if (self.marginalize and l % 2) else x for l, x in enumerate(xs))
        if energy is not None and not self.marginalize:
            return MHState(xs, energy)
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


class GibbsMH(MH):
    """The mixed kernel: ``sweeps`` block Gibbs sweeps at T = 1, then one MH step with the uniform
    independence proposal (``MH``). Each part leaves the target invariant, so their composition
    does; the state is an ``MHState`` as for ``MH``.

    With ``marginalize`` the chain lives on x_even (odd layers zeroed) and targets F(x_even); a
    sweep is then the data-augmentation move: draw the odd block given x_even, the even block given
    it, and drop the odd block again. ``order`` is the blocks' order within a sweep.
    """

    def __init__(self, model: DBM, clamp: Clamp = None, marginalize: bool = False, sweeps: int = 1,
                 v: Tensor | None = None, like: _Kernel | None = None):
        super().__init__(model, clamp, marginalize, v, like)
        if isinstance(sweeps, bool) or int(sweeps) != sweeps or sweeps < 1:
            raise ValueError(f"sweeps must be an integer >= 1, got {sweeps!r}")
        self.sweeps = int(sweeps)
        self.gibbs = Gibbs(model, 1.0, clamp, like=self)
        self.order = (1, 0) if self.marginalize else (0, 1)

    @torch.no_grad()
    def sweep(self, xs: Sequence[Tensor], u: Sequence[Tensor], rows: Tensor | None = None) -> tuple[Tensor, ...]:
        """One sweep in ``order`` with pre-drawn uniforms ``u`` (a (B, n_l) tensor per layer)."""
        for parity in self.order:
            xs, _ = self.gibbs.block(xs, parity, u, rows)
        return xs

    @torch.no_grad()
    def settle(self, xs: Sequence[Tensor], rows: Tensor | None = None) -> MHState:
        """The MH state of ``xs`` after sweeps: odd layers zeroed when summed out, energy recomputed."""
        if self.marginalize:
            xs = tuple(torch.zeros_like(x) if l % 2 else x for l, x in enumerate(xs))
        return MHState(tuple(xs), self.energy(xs, rows))

    def step(self, state: MHState, generator: torch.Generator, rows: Tensor | None = None
             ) -> tuple[MHState, MHInfo]:
        xs = state.xs
        for _ in range(self.sweeps):
            xs = self.sweep(xs, draw_uniforms(self.model, xs[0].shape[0], generator), rows)
        return super().step(self.settle(xs, rows), generator, rows)


def mh_init(model: DBM, xs: Sequence[Tensor], marginalize: bool = False,
            odd_logits: dict[int, Tensor] | None = None) -> MHState:
    """``MH(model, marginalize=marginalize).init(xs, odd_logits)``."""
    return MH(model, marginalize=marginalize).init(xs, odd_logits)


def mh_step(model: DBM, state: MHState, generator: torch.Generator, clamp: Clamp = None,
            marginalize: bool = False) -> tuple[MHState, MHInfo]:
    """One MH step: ``MH(model, clamp, marginalize).step``."""
    return MH(model, clamp, marginalize).step(state, generator)
