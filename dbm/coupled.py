"""Driver loops outside the kernels: the lag-1 coupled estimator (Jacob, O'Leary, Atchade 2020).

Two chains with the same kernel K and initial law pi0, X one step ahead:
X0 ~ pi0, Y0 ~ pi0, X1 ~ K(X0), then (X_{t+1}, Y_t) ~ Kbar((X_t, Y_{t-1})), a faithful coupling.
With tau = min{t >= 1 : X_t = Y_{t-1}},

    H = f(X0) + sum_{t=1}^{tau-1} [ f(X_t) - f(Y_{t-1}) ],      E[H] = E_pi[f].

``run_coupled`` does not evaluate f: it returns the states that enter H with their signs, so a
caller evaluates f (energies or sufficient statistics) once, batched, over all of them. The loop
runs only over the chains that have not met; a cap on t is counted, never silent.

Two loops give the same estimator (``METHODS``): "per-step" compacts the running chains after every
coupled step (the CPU's, ``CPU_COUPLED``); "chunked" (issue 36, a device's, ``DEVICE_COUPLED``)
runs chunks of coupled steps on the chains running at the chunk's start, the ones that meet inside
it masked out (weight 0, their tau recorded on the device), and asks the host which chains still
run once per chunk, the chunks doubling from ``FIRST_CHUNK``: ceil(log2(tau_max / FIRST_CHUNK + 1))
synchronisations at most, however long the chains run. A met chain stepped on stays met (the
couplings are faithful), so each chain's H is the per-step loop's in law; the random numbers differ
(the met chains of a chunk draw theirs too), and with ``FIRST_CHUNK = 1, GROWTH = 1`` the two
loops are one, draw for draw (tests/test_syncs.py).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

__all__ = ["tree_map", "tree_take", "tree_cat", "CoupledResult", "run_coupled", "METHODS"]

METHODS = ("per-step", "chunked")
CPU_COUPLED = "per-step"     # the loop on the CPU ("auto")
DEVICE_COUPLED = "chunked"   # the loop on a device ("auto")
FIRST_CHUNK = 8              # the chunked loop's first chunk of coupled steps
GROWTH = 2                   # and the factor of each next chunk


def tree_map(fn, tree):
    """Apply ``fn`` to every tensor of a nest of tuples / NamedTuples."""
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, tuple):
        vals = [tree_map(fn, t) for t in tree]
        return type(tree)(*vals) if hasattr(tree, "_fields") else tuple(vals)
    raise TypeError(f"unsupported state element {type(tree).__name__}")


def _first_leaf(tree) -> Tensor:
    return tree if isinstance(tree, Tensor) else _first_leaf(tree[0])


def tree_take(tree, idx: Tensor):
    """Rows ``idx`` (a long index or bool mask over the batch) of every tensor."""
    return tree_map(lambda t: t[idx], tree)


def tree_cat(trees: list):
    """Concatenate a list of same-structured states along the batch dimension."""
    first = trees[0]
    if isinstance(first, Tensor):
        return torch.cat(trees, 0)
    vals = [tree_cat([t[i] for t in trees]) for i in range(len(first))]
    return type(first)(*vals) if hasattr(first, "_fields") else tuple(vals)


class CoupledResult(NamedTuple):
    """What the lag-1 estimator needs, for B chains and M = sum_b (tau_b - 1) correction pairs.

    x0: state of B chains (X0). plus: state of M rows, the X_t of the corrections (sign +1).
    minus: state of M rows, the Y_{t-1} (sign -1). chain: (M,) long, the chain of each row.
    tau: (B,) long meeting times (the cap for capped chains). capped: (B,) bool.
    """
    x0: tuple
    plus: tuple
    minus: tuple
    chain: Tensor
    tau: Tensor
    capped: Tensor


def run_coupled(x0, y0, step: Callable, coupled_step: Callable, met: Callable,
                max_steps: int, on_pair: Callable | None = None, on_info: Callable | None = None,
                k: int = 0, m: int = 0, on_state: Callable | None = None, method: str = "auto") -> CoupledResult:
    """Run the lag-1 coupled chains until they meet or ``max_steps`` is reached.

    With ``k = m = 0`` (the default) this is the estimator H above. Otherwise it is the
    time-averaged estimator of Jacob, O'Leary and Atchade (2020), for 0 <= k <= m < max_steps:

        H_{k:m} = 1/(m-k+1) sum_{t=k}^{m} f(X_t)
                  + sum_{t=k+1}^{tau-1} min(1, (t-k)/(m-k+1)) [ f(X_t) - f(Y_{t-1}) ],

    unbiased for E_pi[f] as H is; X runs on alone after meeting until t = m.

    Parameters
    ----------
    x0, y0 : states (nests of (B, ...) tensors) drawn from pi0.
    step : (state, idx) -> (state, info), one step of K on the chains ``idx`` (long (b,), positions
        in the original batch: a kernel's ``rows``), e.g. ``lambda s, idx: kernel.step(s, g, idx)``.
    coupled_step : (x, y, idx) -> ((x, y), info), one step of the faithful coupling.
    met : (x, y) -> (b,) bool, whether the chains are equal.
    max_steps : cap on tau; capped chains are truncated (biased) and flagged.
    on_pair : (x, y, idx, weight) -> None, called with each correction pair (X_t, Y_{t-1}) of the
        chains ``idx`` and its weight (1 for H; min(1, (t-k)/(m-k+1)) for H_{k:m}) instead of
        recording it: the caller accumulates f as the chains run, so memory stays proportional to
        the chains still running. Without it (only for k = m = 0) every pair is recorded in the
        result (small models, tests).
    on_info : (info, idx) -> None, called with the info of every coupled step (e.g. to count
        cap hits of the coupling per chain); by default the infos are dropped.
    k, m : the averaging window of H_{k:m}. on_state : (x, weight, idx) -> None, called with the
        X_t of the window, t = k..m, weight 1/(m-k+1) (X0 included when k = 0); required unless
        k = m = 0, where X0 is the caller's (weight 1).
    method : "per-step", "chunked" (the module docstring) or "auto": ``CPU_COUPLED`` on the CPU,
        ``DEVICE_COUPLED`` elsewhere. "chunked" needs ``on_pair`` accepting ``live`` (the rows
        whose pair counts, (b,) bool) and k = m = 0; otherwise the per-step loop runs.
    """
    if not (isinstance(k, int) and isinstance(m, int) and 0 <= k <= m < max_steps):
        raise ValueError(f"need integers 0 <= k <= m < max_steps, got k={k!r}, m={m!r}, max_steps={max_steps}")
    if (k or m) and (on_pair is None or on_state is None):
        raise ValueError("the time-averaged estimator (k or m > 0) needs on_pair and on_state")
    if method not in METHODS + ("auto",):
        raise ValueError(f"unknown coupled loop {method!r}; use 'auto' or one of {', '.join(METHODS)}")
    leaf = _first_leaf(x0)
    batch, device = leaf.shape[0], leaf.device
    inv = 1.0 / (m - k + 1)
    idx = torch.arange(batch, device=device)
    if on_state is not None and k == 0:
        on_state(x0, inv, idx)
    x, _ = step(x0, idx)                                       # X_1
    tau = torch.ones(batch, dtype=torch.long, device=device)
    going = ~met(x, y0)
    solo_idx, solo = (idx[~going], tree_take(x, ~going)) if m >= 1 else (idx[:0], None)
    idx = going.nonzero().squeeze(-1)                          # one synchronisation for the three takes
    x, y = tree_take(x, idx), tree_take(y0, idx)
    plus, minus, chain = [], [], []
    t = 1
    if method == "auto":
        method = CPU_COUPLED if device.type == "cpu" else DEVICE_COUPLED
    if method == "chunked" and on_pair is not None and k == m == 0:
        idx = _chunked(x, y, idx, tau, coupled_step, met, max_steps, on_pair, on_info)
        return _result(x0, idx, tau, max_steps, [], [], [], batch, device)
    while (idx.numel() and t < max_steps) or (solo_idx.numel() and t <= m):
        if idx.numel():                                        # here t < max_steps (m < max_steps)
            if on_pair is not None:
                if t >= k + 1:
                    on_pair(x, y, idx, min(1.0, (t - k) * inv))   # f(X_t) - f(Y_{t-1})
            else:
                plus.append(x)
                minus.append(y)
                chain.append(idx)
            if on_state is not None and k <= t <= m:
                on_state(x, inv, idx)
        if solo_idx.numel():                                   # met chains: X alone up to t = m
            if k <= t <= m:
                on_state(solo, inv, solo_idx)
            if t < m:
                solo, _ = step(solo, solo_idx)
            else:
                solo_idx, solo = solo_idx[:0], None
        if idx.numel():
            (x, y), info = coupled_step(x, y, idx)             # (X_{t+1}, Y_t)
            if on_info is not None:
                on_info(info, idx)
            now = met(x, y)
            tau[idx[now]] = t + 1
            if bool(now.any()):
                if t + 1 <= m:
                    solo_idx = torch.cat([solo_idx, idx[now]])
                    joined = tree_take(x, now)
                    solo = joined if solo is None else tree_cat([solo, joined])
                keep = ~now
                idx, x, y = idx[keep], tree_take(x, keep), tree_take(y, keep)
        t += 1
    return _result(x0, idx, tau, max_steps, plus, minus, chain, batch, device)


def _chunked(x, y, idx: Tensor, tau: Tensor, coupled_step: Callable, met: Callable, max_steps: int,
             on_pair: Callable, on_info: Callable | None) -> Tensor:
    """The chunked loop (module docstring) from t = 1 on the chains ``idx`` (X_1, Y_0 in x, y),
    writing meeting times into ``tau``; returns the chains still running at t = max_steps."""
    t, chunk = 1, FIRST_CHUNK
    while idx.numel() and t < max_steps:
        live = torch.ones(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(min(chunk, max_steps - t)):
            on_pair(x, y, idx, 1.0, live=live)                # f(X_t) - f(Y_{t-1}) of the unmet chains
            (x, y), info = coupled_step(x, y, idx)            # (X_{t+1}, Y_t)
            if on_info is not None:
                on_info(info, idx)                            # a met chain adds nothing (module docstring)
            now = met(x, y) & live
            tau.index_copy_(0, idx, torch.where(now, t + 1, tau.index_select(0, idx)))
            live = live & ~now
            t += 1
        keep = live.nonzero().squeeze(-1)                     # the chunk's one synchronisation
        idx, x, y = idx.index_select(0, keep), tree_take(x, keep), tree_take(y, keep)
        chunk *= GROWTH
    return idx


def _result(x0, idx: Tensor, tau: Tensor, max_steps: int, plus: list, minus: list, chain: list, batch: int,
            device) -> CoupledResult:
    """The loop's result: the chains ``idx`` still running are capped at ``max_steps``."""
    capped = torch.zeros(batch, dtype=torch.bool, device=device)
    if idx.numel():
        tau[idx] = max_steps
        capped[idx] = True
    if chain:
        plus_s, minus_s, chain_s = tree_cat(plus), tree_cat(minus), torch.cat(chain)
    else:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        plus_s, minus_s, chain_s = tree_take(x0, empty), tree_take(x0, empty), empty
    return CoupledResult(x0, plus_s, minus_s, chain_s, tau, capped)
