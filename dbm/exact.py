"""Exact answers for tiny DBMs by enumeration: the ground truth of tests and studies.

The odd layers are summed out analytically (model eq. (2)), so only the even block is enumerated:
log Z = logsumexp_{x_even} -F(x_even). Everything is computed on a float64 copy of the model, and
gradients come from autograd through these exact formulas, so they are exact up to rounding:
grad log Z = E_p[phi], and grad(-log p(v)) = E_p[phi] - E_{p(h|v)}[phi] (spec §2).
Enumeration of up to ``MAX_ENUM_BITS`` even units (2^24 states, chunked).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor

from .model import DBM
from .validate import check_generator, check_visible

__all__ = ["MAX_ENUM_BITS", "all_bits", "log_partition", "nll", "exact_gradient",
           "expected_statistics", "joint_table", "sample_exact", "state_index", "pi0_table"]

MAX_ENUM_BITS = 24
_CHUNK = 1 << 16


def all_bits(n: int, dtype=torch.float64, device="cpu") -> Tensor:
    """All 2^n binary vectors, (2^n, n); row k holds the bits of k, least significant first."""
    k = torch.arange(1 << n, device=device).unsqueeze(-1)
    return ((k >> torch.arange(n, device=device)) & 1).to(dtype)


def state_index(bits: Tensor) -> Tensor:
    """Inverse of ``all_bits``: (M, n) binary -> (M,) long."""
    w = 1 << torch.arange(bits.shape[1], device=bits.device)
    return (bits.long() * w).sum(-1)


def _double(model: DBM) -> DBM:
    m = copy.deepcopy(model).double()
    m.zero_grad(set_to_none=True)
    return m


def _even_layers_free(model: DBM, clamp_v: bool) -> list[int]:
    return [l for l in model.layers(0) if not (l == 0 and clamp_v)]


def _check_size(model: DBM, bits: int) -> None:
    if bits > MAX_ENUM_BITS:
        raise ValueError(f"exact enumeration needs 2^{bits} even-block states; the limit is "
                         f"2^{MAX_ENUM_BITS} (model {model.layer_sizes})")


def _neg_free_energies(model: DBM, v: Tensor | None) -> Tensor:
    """-F over every configuration of the free even units, (B, 2^n) (B = 1 when v is None)."""
    layers = _even_layers_free(model, v is not None)
    sizes = [model.layer_sizes[l] for l in layers]
    n = sum(sizes)
    _check_size(model, n)
    dev, dt = model.weights[0].device, model.weights[0].dtype
    batch = 1 if v is None else v.shape[0]
    out = []
    for start in range(0, 1 << n, _CHUNK):
        k = torch.arange(start, min(start + _CHUNK, 1 << n), device=dev).unsqueeze(-1)
        bits = ((k >> torch.arange(n, device=dev)) & 1).to(dt)            # (C, n)
        parts = bits.split(sizes, -1)
        c = bits.shape[0]
        xs = [torch.zeros(batch * c, m, dtype=dt, device=dev) for m in model.layer_sizes]
        for l, p in zip(layers, parts):
            xs[l] = p.repeat(batch, 1)
        if v is not None:
            xs[0] = v.repeat_interleave(c, 0)
        out.append(-model.free_energy(xs).view(batch, c))
    return torch.cat(out, 1)


def log_partition(model: DBM) -> Tensor:
    """log Z (scalar, float64, differentiable w.r.t. the float64 copy's parameters)."""
    m = model if model.weights[0].dtype == torch.float64 else _double(model)
    return torch.logsumexp(_neg_free_energies(m, None), dim=1)[0]


def nll(model: DBM, v: Tensor) -> Tensor:
    """Exact -log p(v_b), (B,), float64."""
    m = model if model.weights[0].dtype == torch.float64 else _double(model)
    v = check_visible(m, v.double())
    return log_partition(m) - torch.logsumexp(_neg_free_energies(m, v), dim=1)


def exact_gradient(model: DBM, v: Tensor) -> Tensor:
    """Exact gradient of mean_b(-log p(v_b)), flattened in parameter order, (P,) float64."""
    m = _double(model)
    nll(m, v).mean().backward()
    return torch.cat([p.grad.flatten() for p in m.parameters()])


def expected_statistics(model: DBM, v: Tensor | None = None) -> Tensor:
    """E[phi(x)] flattened in parameter order, (P,): under p(x) when v is None, else the mean
    over the batch of E_{p(h|v_b)}[phi(v_b, h)]. (d log Z / d theta = E_p[phi].)"""
    m = _double(model)
    if v is None:
        log_partition(m).backward()
    else:
        v = check_visible(m, v.double())
        torch.logsumexp(_neg_free_energies(m, v), dim=1).mean().backward()
    return torch.cat([p.grad.flatten() for p in m.parameters()])


def joint_table(model: DBM) -> tuple[Tensor, Tensor]:
    """All joint states and their exact probabilities: ((2^N, N) bits over (v, h1, ..., hL)
    concatenated, (2^N,) probabilities). Index a state with ``state_index``."""
    n = sum(model.layer_sizes)
    _check_size(model, n)
    m = _double(model)
    with torch.no_grad():
        bits = all_bits(n, device=m.weights[0].device)
        xs = bits.split(list(m.layer_sizes), -1)
        logp = -m.energy(xs)
        return bits, torch.softmax(logp, 0)


@torch.no_grad()
def sample_exact(model: DBM, n: int, generator: torch.Generator, v: Tensor | None = None
                 ) -> tuple[Tensor, ...]:
    """Exact samples: x_even from its enumerated marginal, then x_odd ~ p(x_odd | x_even).

    With ``v`` (B, n_0), draws n samples of h ~ p(h | v_b) for every row (B * n states, rows of
    the same v contiguous). Returns a state in the model's dtype.
    """
    m = _double(model)
    check_generator(generator, m.weights[0].device)
    layers = _even_layers_free(m, v is not None)
    sizes = [m.layer_sizes[l] for l in layers]
    logits = _neg_free_energies(m, None if v is None else check_visible(m, v.double()))
    batch = logits.shape[0]
    k = torch.multinomial(torch.softmax(logits, 1), n, replacement=True, generator=generator)
    k = k.reshape(-1, 1)
    nbits = sum(sizes)
    bits = ((k >> torch.arange(nbits, device=k.device)) & 1).double()
    xs = [torch.zeros(batch * n, s, dtype=torch.float64, device=k.device) for s in m.layer_sizes]
    for l, p in zip(layers, bits.split(sizes, -1)):
        xs[l] = p
    if v is not None:
        xs[0] = v.double().repeat_interleave(n, 0)
    for l in m.layers(1):
        p = torch.sigmoid(m.logits(xs, l))
        xs[l] = (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).double()
    dt = model.weights[0].dtype
    return tuple(x.to(dt) for x in xs)



_ORDER_WEIGHTS = {"even-first": ((0, 1.0),), "odd-first": ((1, 1.0),), "random": ((0, 0.5), (1, 0.5))}


def _split_state(model: DBM, bits: Tensor) -> list[Tensor]:
    return list(bits.split(list(model.layer_sizes), -1))


def _search(model: DBM, xs: list[Tensor], first: int, clamp_v: bool, max_sweeps: int = 10_000) -> list[Tensor]:
    """The T = 0 local search of the spec, written plainly: each sweep thresholds the block
    ``first`` (0 even, 1 odd) given the other, then the other block (unit = 1 iff its logit >= 0,
    v kept when clamped); a chain stops after a sweep that changed none of its units."""
    xs = [x.clone() for x in xs]
    active = torch.ones(xs[0].shape[0], dtype=torch.bool)
    for _ in range(max_sweeps):
        before = [x.clone() for x in xs]
        for parity in (first, 1 - first):
            for l in model.layers(parity):
                if l == 0 and clamp_v:
                    continue
                new = (model.logits(xs, l) >= 0).to(xs[l].dtype)
                xs[l] = torch.where(active.unsqueeze(-1), new, xs[l])
        active &= torch.stack([(x != b).any(-1) for x, b in zip(xs, before)]).any(0)
        if not active.any():
            return xs
    raise RuntimeError(f"the exact local search did not stop within {max_sweeps} sweeps")


def _sweep_log_kernel(model: DBM, xs: list[Tensor], targets: list[Tensor], first: int, clamp_v: bool) -> Tensor:
    """log P(x' | x) of one T = 1 sweep updating block ``first`` then the other: (S, K) for S
    states ``xs`` and K targets x' (v of the targets must equal v of xs where clamped)."""
    S, K = xs[0].shape[0], targets[0].shape[0]
    cur = [x.unsqueeze(1).expand(S, K, x.shape[-1]).reshape(S * K, -1) for x in xs]
    tgt = [t.unsqueeze(0).expand(S, K, t.shape[-1]).reshape(S * K, -1) for t in targets]
    logp = torch.zeros(S * K, dtype=xs[0].dtype)
    for parity in (first, 1 - first):
        for l in model.layers(parity):
            if l == 0 and clamp_v:
                continue
            a = model.logits(cur, l)
            logp += (tgt[l] * torch.nn.functional.logsigmoid(a)
                     + (1 - tgt[l]) * torch.nn.functional.logsigmoid(-a)).sum(-1)
        for l in model.layers(parity):
            if not (l == 0 and clamp_v):
                cur[l] = tgt[l]
    return logp.reshape(S, K)


@torch.no_grad()
def pi0_table(model: DBM, order: str = "random", v: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The exact law of UCD-MH-LMI's pi0 (spec §1-2): a uniform start of the free units, the T = 0
    local search in the search's block order, then one T = 1 sweep in the sweep's own order.
    ``order``: "even-first", "odd-first" or "random" (search and sweep orders each even or odd
    first with probability 1/2, independently: the released code). ``v`` (n_0,): clamp the visible
    units (the positive phase). Returns (bits (K, n) of the joint states, float64 probs (K,)),
    states indexed as ``joint_table``'s (v fixed to ``v`` when given)."""
    if order not in _ORDER_WEIGHTS:
        raise ValueError(f"order must be one of {', '.join(_ORDER_WEIGHTS)}; got {order!r}")
    m = _double(model)
    n, n0 = sum(m.layer_sizes), m.layer_sizes[0]
    _check_size(m, n)
    bits = all_bits(n)
    if v is not None:
        v = check_visible(model, v.reshape(1, -1)).double()
        bits = bits[(bits[:, :n0] == v).all(-1)]
    starts = targets = _split_state(m, bits)       # uniform over the free units: every row once
    probs = torch.zeros(bits.shape[0], dtype=torch.float64)
    for s_first, s_w in _ORDER_WEIGHTS[order]:
        mode = _search(m, starts, s_first, v is not None)
        for k_first, k_w in _ORDER_WEIGHTS[order]:
            kernel = _sweep_log_kernel(m, mode, targets, k_first, v is not None).exp()
            probs += s_w * k_w * kernel.mean(0)
    return bits, probs
