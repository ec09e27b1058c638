"""Exact diagnostics of UCD-MH-LMI's lag-1 coupled MH estimator on enumerable DBMs (issue 33).

The MH kernel proposes a fresh uniform state z of the free units and accepts it iff
u < exp(E(x) - E(z)) (E: the energy, or the free energy F with the odd layers summed out). With
Y0 = X0 (the paper's estimator) the first step decides everything: the chains meet at tau = 1
unless the first step moves X, which happens with probability

    a(x0) = 2^-n sum_{z != x0} min(1, exp(E(x0) - E(z)))            (n free units)

and only then is there a correction. While Y sits at x0 the pair meets only when Y moves or X
lands on x0 (probability at most a(x0) + 2^-n a step), so

    P(tau > t | X0 = x0) >= a(x0) (1 - a(x0) - 2^-n)^(t-1).

On models whose free
states number at most 2^MAX_PAIR_BITS the pair chain itself is propagated exactly
(``capped_expectation``), giving P(tau > t) and the expectation of the estimator capped at
``max_steps`` (``dbm.coupled.run_coupled``: the corrections stop at t = max_steps - 1).

``acceptance`` enumerates the 2^n free states once (n <= MAX_ACCEPT_BITS) and answers a(x)
for any energy in O(log 2^n) (sorted energies and suffix log-sums), so a(X0) is exact for every
draw of X0 even where pi0 itself cannot be enumerated; ``correction_diagnostics`` turns draws of
a(X0) into the rates a study needs: P(correction), the cap's hit rate, the chains needed.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .exact import _check_size, _double
from .model import DBM
from .samplers import energy_fn
from .sufficient_stats import per_state_statistics
from .validate import check_visible

__all__ = ["Acceptance", "acceptance", "free_states", "correction_diagnostics", "capped_expectation",
           "MAX_ACCEPT_BITS", "MAX_PAIR_BITS"]

MAX_ACCEPT_BITS = 26                   # 2^26 energies: 512 MiB, sorted in seconds
MAX_PAIR_BITS = 8                      # the pair chain holds (2^n)^2 probabilities and (2^n)^3 differences
_CHUNK = 1 << 18


def _phase(model: DBM, v: Tensor | None, marginalize: bool):
    """(float64 model, the free layers, their sizes, v as a (1, n_0) float64 row or None)."""
    m = model if model.weights[0].dtype == torch.float64 else _double(model)
    layers = [l for l in (m.layers(0) if marginalize else range(len(m.layer_sizes)))
              if not (l == 0 and v is not None)]
    if v is not None:
        v = check_visible(m, v.reshape(1, -1)).double()
    return m, layers, [m.layer_sizes[l] for l in layers], v


def _states(m: DBM, layers, sizes, v, start: int, stop: int) -> list[Tensor]:
    """The free states of indices start..stop-1 (``all_bits`` order over the free units) as full
    states: one (k, n_l) tensor per layer, v repeated when clamped, the other layers zero."""
    k = torch.arange(start, stop).unsqueeze(-1)
    bits = ((k >> torch.arange(sum(sizes))) & 1).double()
    xs = [torch.zeros(stop - start, n, dtype=torch.float64) for n in m.layer_sizes]
    for l, part in zip(layers, bits.split(sizes, -1)):
        xs[l] = part
    if v is not None:
        xs[0] = v.expand(stop - start, -1)
    return xs


@torch.no_grad()
def _energies(m: DBM, layers, sizes, v, marginalize: bool) -> Tensor:
    """E (or F) of every free state, (2^n,) float64, computed in chunks (no table of bits)."""
    n = 1 << sum(sizes)
    f = energy_fn(m, marginalize)
    return torch.cat([f(_states(m, layers, sizes, v, i, min(i + _CHUNK, n))) for i in range(0, n, _CHUNK)])


def free_states(model: DBM, v: Tensor | None = None, marginalize: bool = False) -> tuple[list[Tensor], Tensor]:
    """Every state of the MH chain's free units, and its energy: (xs (one (2^n, n_l) tensor per
    layer, v repeated when clamped, odd layers zero when ``marginalize``), E or F (2^n,) float64),
    states ordered as ``dbm.exact.all_bits`` over the free units (layers in order);
    n <= dbm.exact.MAX_ENUM_BITS."""
    m, layers, sizes, v = _phase(model, v, marginalize)
    _check_size(m, sum(sizes))
    return _states(m, layers, sizes, v, 0, 1 << sum(sizes)), _energies(m, layers, sizes, v, marginalize)


class Acceptance(NamedTuple):
    """a(x) of the uniform independence proposal over 2^n free states: ``sorted`` energies
    (ascending, float64) and ``log_tail`` (2^n + 1,): log sum_{j >= k} exp(-sorted_j)."""
    sorted: Tensor
    log_tail: Tensor

    def __call__(self, energy: Tensor) -> Tensor:
        """a(x) for states x of the enumerated ones with these energies, float64, the shape of
        ``energy``: the share of proposals at or below E(x) (always accepted) plus exp(E(x)) times
        the tail's sum of exp(-E(z)), less the proposal of x itself (accepted, but no move)."""
        e = energy.double()
        k = torch.searchsorted(self.sorted, e, right=True)
        n = self.sorted.numel()
        return ((k.double() + torch.exp(e + self.log_tail[k])).clamp(max=n) - 1).clamp(min=0) / n

    @property
    def states(self) -> int:
        """2^n, the number of free states (the proposal's support)."""
        return self.sorted.numel()


def acceptance(model: DBM, v: Tensor | None = None, marginalize: bool = False) -> Acceptance:
    """a(.) of the MH kernel of one phase: the negative phase (v None) or the positive one with v
    (n_0,) clamped; the joint chain, or with ``marginalize`` the even units' chain under F. Up to
    2^MAX_ACCEPT_BITS free states (only their energies are held: 8 bytes each, and a sort)."""
    m, layers, sizes, v = _phase(model, v, marginalize)
    if sum(sizes) > MAX_ACCEPT_BITS:
        raise ValueError(f"exact acceptances need the energies of 2^{sum(sizes)} free states; the limit "
                         f"is 2^{MAX_ACCEPT_BITS} (model {model.layer_sizes})")
    e = _energies(m, layers, sizes, v, marginalize)
    s = torch.sort(e).values
    tail = torch.logcumsumexp(-s.flip(0), 0).flip(0)
    return Acceptance(s, torch.cat([tail, tail.new_full((1,), -math.inf)]))


def correction_diagnostics(a: Tensor, max_steps: int, states: int, prob: float = 0.95) -> dict:
    """What draws of a(X0) (X0 ~ pi0, (N,); ``states``: 2^n, ``Acceptance.states``) say about one
    phase's corrections:

    p_correction: P(tau > 1) = E[a(X0)], and its Monte Carlo standard error;
    a_median, a_q10: quantiles of a(X0);
    p_cap_lower: a lower bound on P(tau > max_steps), E[a (1 - a - 2^-n)^(max_steps - 1)];
    p_cap_given_correction_lower: the same given a correction (its share of p_correction);
    steps_past_cap_lower: a lower bound on E[(tau - max_steps)^+], the unmet steps (each one a term
        phi(X_t) - phi(Y_{t-1}) of the correction) that the cap removes per chain:
        E[w (1 - a - 2^-n)^(max_steps - 1)], w = a / (a + 2^-n);
    term_cut_share: E[w q^(max_steps - 1)] / E[w], q = 1 - a - 2^-n, the share of the correction's
        unmet steps past the cap when the geometric bound is the law of tau (the "stuck-Y" model:
        Y stays at x0 and the pair meets only when Y moves or X lands on x0). Every x0 then
        carries about its pi0 mass of the correction term, so this share, not the count share,
        measures how much of the term the cap cuts; a model, not a bound;
    chains_for_correction: chains for at least one correction with probability ``prob``;
    chains_for_typical: the same for a correction from an X0 with a(X0) at most the median
    (the half of pi0 whose corrections carry the largest weights, about 1 / a(X0))."""
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    if not (isinstance(states, int) and states >= 2):
        raise ValueError(f"states must be an integer >= 2 (2^n), got {states!r}")
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    a = a.double().flatten()
    if a.numel() == 0 or not bool(((a >= 0) & (a <= 1)).all()):
        raise ValueError("a must be a non-empty tensor of probabilities")
    med = float(a.median())
    p = float(a.mean())
    tail = torch.exp((max_steps - 1) * torch.log1p(-(a + 1 / states).clamp(max=1)))     # q^(max_steps - 1)
    cap = a * tail
    w = a / (a + 1 / states)                                  # E[tau - 1 | x0] in the stuck-Y model
    low = float((a * (a <= med)).mean())

    def chains(rate):
        return math.inf if rate <= 0 else math.ceil(math.log1p(-prob) / math.log1p(-min(rate, 1 - 1e-16)))
    return {"p_correction": p, "p_correction_se": float(a.std() / math.sqrt(a.numel())) if a.numel() > 1 else math.nan,
            "a_median": med, "a_q10": float(a.quantile(0.1)) if a.numel() <= 1 << 24 else float("nan"),
            "p_cap_lower": float(cap.mean()), "p_cap_given_correction_lower": float(cap.mean()) / p if p > 0 else math.nan,
            "steps_past_cap_lower": float((w * tail).mean()),
            "term_cut_share": float((w * tail).mean() / w.mean()) if p > 0 else math.nan,
            "chains_for_correction": chains(p), "chains_for_typical": chains(low), "draws": a.numel()}


class CappedExpectation(NamedTuple):
    """mean: E[H capped at max_steps] of phi, (P,) float64 in parameter order; p_tau_gt: P(tau > t)
    for t = 1..max_steps, (max_steps,)."""
    mean: Tensor
    p_tau_gt: Tensor


@torch.no_grad()
def capped_expectation(model: DBM, pi0: Tensor, max_steps: int, v: Tensor | None = None,
                       marginalize: bool = False) -> CappedExpectation:
    """The exact expectation of the lag-1 coupled MH estimator H of phi (the sufficient
    statistics, ``dbm.sufficient_stats.per_state_statistics``) with Y0 = X0 ~ ``pi0`` ((2^n,) over
    ``free_states``' order) and tau capped at ``max_steps`` as ``dbm.coupled.run_coupled`` caps it:

        E[H_cap] = E_pi0[phi] + sum_{t=1}^{max_steps-1} sum_{x != y} P_t(x, y) (phi(x) - phi(y)),

    P_t the law of the unmet pair (X_t, Y_{t-1}), propagated exactly (common proposal z and
    uniform u: both move to z iff u < both acceptances; only the chain with the larger one moves
    iff u lies between; a move onto the other chain's state is a meeting). Models with at most
    2^MAX_PAIR_BITS free states. With max_steps large enough the mean is E_target[phi]."""
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    m = model if model.weights[0].dtype == torch.float64 else _double(model)
    xs, e = free_states(m, v, marginalize)
    n = e.numel()
    if n > 1 << MAX_PAIR_BITS:
        raise ValueError(f"the exact pair chain needs at most 2^{MAX_PAIR_BITS} free states; this phase has {n}")
    pi0 = pi0.double().flatten()
    if pi0.numel() != n or bool((pi0 < 0).any()) or abs(float(pi0.sum()) - 1) > 1e-9:
        raise ValueError(f"pi0 must be a probability vector over the {n} free states")
    phi = per_state_statistics(m, xs, marginalize)                        # (n, P)
    acc = torch.exp((e.unsqueeze(1) - e.unsqueeze(0)).clamp(max=0))        # acc[x, z]
    diff = acc.unsqueeze(1) - acc.unsqueeze(0)                             # diff[x, y, z] = acc[x,z] - acc[y,z]
    stay = 1 - torch.maximum(acc.unsqueeze(1), acc.unsqueeze(0)).mean(-1)  # neither moves, (x, y)
    off = ~torch.eye(n, dtype=torch.bool)
    pair = pi0.unsqueeze(0) * acc.T / n * off                              # P_1[x, y]: X_1 = x accepted from y
    mean = pi0 @ phi
    p_gt = []
    for t in range(1, max_steps):
        p_gt.append(float(pair.sum()))
        mean = mean + pair.sum(1) @ phi - pair.sum(0) @ phi
        moved_x = torch.einsum("xy,xyz->zy", pair, diff.clamp(min=0)) / n     # X moves to z, Y stays y
        moved_y = torch.einsum("xy,yxz->xz", pair, diff.clamp(min=0)) / n     # Y moves to z, X stays x
        pair = (pair * stay + moved_x + moved_y) * off
    p_gt.append(float(pair.sum()))
    return CappedExpectation(mean, torch.tensor(p_gt, dtype=torch.float64))
