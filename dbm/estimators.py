"""Gradient estimators for DBMs behind one interface (spec §2).

    est = dbm.estimator("ucd-mh-lmi", marginalize=True)
    state = est.init_state()
    loss, state, info = est.loss(model, v, state, generator)   # v: (B, n_0) binary
    loss.backward()                                 # grads = estimate of grad mean_b -log p(v_b)

Each estimator produces, for the positive phase (v clamped to the data) and the negative phase
(all units free), weighted states whose sufficient statistics give the gradient (``dbm.sufficient_stats``).
``info`` reports per chain the coupling time tau, the local-search sweeps T and every cap hit.
An estimator object holds only its options; what carries from one update to the next (PCD's
persistent chains, the warm start's local modes) is the explicit ``EstimatorState``, which the
caller passes in, gets back and checkpoints (tensors only).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .couplings import Coupled, states_equal
from .coupled import CoupledResult, run_coupled, tree_cat, tree_take
from .meanfield import mean_field
from .model import DBM
from .samplers import MH, Gibbs, GibbsMH, check_order, draw_order, draw_uniforms
from .sufficient_stats import per_state_statistics, statistics, surrogate_loss
from .validate import MAX_COUNT, check_generator, check_visible

__all__ = ["PhaseInfo", "EstimatorInfo", "EstimatorState", "PhaseResult", "Accumulator", "Estimator", "CD",
           "PCD", "UCDGibbs", "UCDMHLMI", "OfficialSingleChain", "ESTIMATORS", "estimator"]


class PhaseInfo(NamedTuple):
    """Per-chain diagnostics of one phase, each (B,).

    tau: meeting time of the coupled chains (1 for uncoupled estimators, and the number of MH
    proposals for ``official-single-chain``); capped: tau hit ``max_steps`` (the estimate is then
    truncated and biased); sweeps: T = 0 local-search sweeps of X0 (0 without local search);
    sweeps_capped: the local search hit ``max_sweeps``; residual_capped: (B,) long, coupled sweeps
    in which the maximal coupling's residual sampler hit ``max_tries`` (UCD-Gibbs; 0 otherwise).
    """
    tau: Tensor
    capped: Tensor
    sweeps: Tensor
    sweeps_capped: Tensor
    residual_capped: Tensor | None = None


class EstimatorState(NamedTuple):
    """What an estimator carries from one update to the next; tensors only, so a checkpoint stores
    ``state._asdict()`` and loads it with ``weights_only=True``.

    chains: PCD's persistent negative chains, a (B, n_l) tensor per layer (empty before the first
    update); warm_pos, warm_neg: the previous update's local modes of each phase (UCD-MH-LMI with
    ``warm_start``), empty when there are none."""
    chains: tuple = ()
    warm_pos: tuple = ()
    warm_neg: tuple = ()

    @classmethod
    def from_dict(cls, d: dict) -> "EstimatorState":
        return cls(**{k: tuple(d.get(k, ())) for k in cls._fields})


class EstimatorInfo(NamedTuple):
    """Diagnostics of both phases; ``energies`` = (mean weighted energy of the positive phase,
    of the negative phase), each -<theta, S>/B of its statistics S, as 0-d tensors: their difference
    is the DBM's d_{s_t} (the EBM-anatomy paper's computational loss; equal to the surrogate loss)."""
    pos: PhaseInfo
    neg: PhaseInfo
    energies: tuple | None = None

    def summary(self) -> dict[str, float]:
        """Scalars for logging: tau and T statistics per phase and cap hits."""
        out = {}
        for name, ph in (("pos", self.pos), ("neg", self.neg)):
            tau = ph.tau.double()
            out[f"{name}_tau_mean"] = float(tau.mean())
            out[f"{name}_tau_max"] = float(tau.max())
            out[f"{name}_p_tau1"] = float((ph.tau == 1).double().mean())
            out[f"{name}_tau_capped"] = float(ph.capped.sum())
            out[f"{name}_sweeps_mean"] = float(ph.sweeps.double().mean())
            out[f"{name}_sweeps_max"] = float(ph.sweeps.max())
            out[f"{name}_sweeps_capped"] = float(ph.sweeps_capped.sum())
            if ph.residual_capped is not None:
                out[f"{name}_residual_capped"] = float(ph.residual_capped.sum())
        if self.energies is not None:
            out["energy_pos"], out["energy_neg"] = (float(e) for e in self.energies)
            out["d_st"] = out["energy_pos"] - out["energy_neg"]
        return out


class PhaseResult(NamedTuple):
    """States entering the estimate: xs (N rows per layer), weight (N,) in {+1, -1}, chain (N,)."""
    xs: tuple
    weight: Tensor
    chain: Tensor
    info: PhaseInfo


class Accumulator:
    """The weighted states of one phase, reduced as they arrive (``add(xs, weight, chain)``).

    mode "states" keeps them all (``result()`` -> (xs, weight, chain), for tests and small
    models); "stats" keeps the running sum S = sum_i w_i phi(x_i) (``dbm.sufficient_stats.statistics``);
    "chain" the running per-chain sums (B, P); "none" drops them. States are buffered, +1 rows
    before negative-weight rows (the order of one batched evaluation), and reduced when the buffer holds more
    than ``flush_rows`` rows: memory is O((flush_rows + B) x units), not O(B x tau x units).
    ``peak_rows`` records the largest buffer.
    """

    def __init__(self, mode: str, model: DBM, marginalize: bool, batch: int, flush_rows: int | None = None):
        self.mode, self.model, self.marginalize, self.batch = mode, model, marginalize, batch
        self.flush_rows = max(4 * batch, 4096) if flush_rows is None else int(flush_rows)
        self.pos, self.neg, self.rows, self.peak_rows = [], [], 0, 0
        self.total = None

    def add(self, xs, weight: float, chain: Tensor, live: Tensor | None = None) -> None:
        """Rows ``xs`` of the chains ``chain`` (long (M,)), each with the scalar ``weight``;
        ``live`` (M,) bool: only these rows count (the others get weight 0, on the device: the
        chunked coupled loop's met chains; "states" drops them)."""
        if self.mode == "none" or chain.numel() == 0 or weight == 0:
            return
        if live is not None and self.mode == "states":
            keep = live.nonzero().squeeze(-1)
            xs, chain, live = tree_take(tuple(xs), keep), chain.index_select(0, keep), None
        (self.pos if weight > 0 else self.neg).append((tuple(xs), chain, float(weight), live))
        self.rows += chain.numel()
        self.peak_rows = max(self.peak_rows, self.rows)
        if self.mode != "states" and self.rows > self.flush_rows:
            self._flush()

    def _take(self):
        parts = self.pos + self.neg
        self.pos, self.neg, self.rows = [], [], 0
        if not parts:
            return None
        xs = tree_cat([p[0] for p in parts])
        dtype, dev = xs[0].dtype, xs[0].device
        weight = torch.cat([torch.full((p[1].numel(),), p[2], dtype=dtype, device=dev) if p[3] is None
                            else torch.where(p[3], p[2], 0.0).to(dtype) for p in parts])
        return xs, weight, torch.cat([p[1] for p in parts])

    def _flush(self) -> None:
        got = self._take()
        if got is None:
            return
        xs, weight, chain = got
        if self.mode == "stats":
            part = statistics(self.model, xs, weight, self.marginalize)
            self.total = part if self.total is None else [a + b for a, b in zip(self.total, part)]
        else:
            phi = per_state_statistics(self.model, xs, self.marginalize).double()
            if self.total is None:
                self.total = torch.zeros(self.batch, phi.shape[1], dtype=torch.float64, device=phi.device)
            self.total.index_add_(0, chain, weight.double().unsqueeze(-1) * phi)

    def result(self):
        """"states": (xs, weight, chain); "stats": the list S; "chain": the (B, P) float64 sums."""
        if self.mode == "states":
            return self._take()
        if self.mode != "none":
            self._flush()
        return self.total


MAX_CAP = MAX_COUNT        # the largest cap or count an option accepts


def _is_count(v, low: int) -> bool:
    """An integer (or an integral finite float, as JSON gives) in [low, MAX_CAP]."""
    return (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and int(v) == v
            and low <= v <= MAX_CAP)


def _check_caps(**caps) -> None:
    """ValueError unless every cap is an integer in [1, MAX_CAP] (a cap of 0 would silently return
    no estimate; one beyond MAX_CAP is no cap)."""
    for name, v in caps.items():
        if not _is_count(v, 1):
            raise ValueError(f"{name} must be an integer >= 1 and at most {MAX_CAP:,}, got {v!r}")


def _check_window(k, m, max_steps: int) -> tuple[int, int]:
    """ValueError unless 0 <= k <= m < max_steps are integers (the window of H_{k:m})."""
    if not all(_is_count(v, 0) for v in (k, m)) or not 0 <= k <= m < max_steps:
        raise ValueError(f"need integers 0 <= k <= m < max_steps, got k={k!r}, m={m!r}, max_steps={max_steps}")
    return int(k), int(m)


def _no_local_search(batch: int, device) -> tuple[Tensor, Tensor]:
    return (torch.zeros(batch, dtype=torch.long, device=device),
            torch.zeros(batch, dtype=torch.bool, device=device))


def _coupled(sink: Accumulator, x0, y0, get_xs, **driver_kw) -> CoupledResult:
    """``run_coupled`` feeding the weighted states of H (or H_{k:m}) to ``sink`` as the chains run."""
    def on_state(x, w, idx):
        sink.add(get_xs(x), w, idx)

    def on_pair(x, y, idx, w, live=None):
        sink.add(get_xs(x), w, idx, live)
        sink.add(get_xs(y), -w, idx, live)
    return run_coupled(x0, y0, on_pair=on_pair, on_state=on_state, **driver_kw)


def _residual_counter(batch: int, device):
    """(counts (B,) long, on_info): ``run_coupled``'s ``on_info`` adding up, per chain, the coupled
    sweeps whose maximal coupling hit its residual cap (``residual_capped`` of the step's info)."""
    counts = torch.zeros(batch, dtype=torch.long, device=device)

    def on_info(info, idx):
        counts.index_add_(0, idx, info.residual_capped.long())
    return counts, on_info


def _single(sink: Accumulator, xs, info: PhaseInfo) -> PhaseInfo:
    sink.add(tuple(xs), 1, torch.arange(xs[0].shape[0], device=xs[0].device))
    return info


class Estimator:
    """Base class: options only (set at construction); subclasses implement ``_phase`` (one
    phase into a sink) or, when the phases share work, ``_phases``.

    Parameters
    ----------
    marginalize : bool
        Sum out the odd layers (Rao-Blackwellised statistics; MH chains then target F(x_even)).
    """
    name = "base"

    def __init__(self, marginalize: bool = False):
        self.marginalize = bool(marginalize)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"estimator({self.name!r}, {opts})"

    def init_state(self) -> EstimatorState:
        """The state before the first update (no chains, no warm start)."""
        return EstimatorState()

    def _run(self, model: DBM, v: Tensor, state: EstimatorState | None, generator: torch.Generator, mode: str):
        """Checked inputs -> ((positive sink, negative sink), (pos info, neg info), new state)."""
        v = check_visible(model, v)
        model.check_finite()
        check_generator(generator, v.device)
        state = self.init_state() if state is None else state
        sinks = tuple(Accumulator(mode, model, self.marginalize, v.shape[0]) for _ in range(2))
        with torch.no_grad():
            infos, state = self._phases(model, v, state, generator, sinks)
        return sinks, infos, state

    def _phases(self, model, v, state, generator, sinks):
        """Both phases: the positive one (v clamped), then the negative one (all units free)."""
        pos, state = self._phase(model, v, True, generator, "pos", sinks[0], state)
        neg, state = self._phase(model, v, None, generator, "neg", sinks[1], state)
        return (pos, neg), state

    def phases(self, model: DBM, v: Tensor, state: EstimatorState | None, generator: torch.Generator
               ) -> tuple[PhaseResult, PhaseResult, EstimatorState]:
        """Checked inputs -> (positive phase, negative phase, new state), every weighted state kept
        (tests, small models; ``loss`` reduces them as they arrive instead)."""
        sinks, infos, state = self._run(model, v, state, generator, "states")
        pos, neg = (PhaseResult(*sink.result(), info) for sink, info in zip(sinks, infos))
        return pos, neg, state

    def loss(self, model: DBM, v: Tensor, state: EstimatorState | None, generator: torch.Generator,
             forward=None) -> tuple[Tensor, EstimatorState, EstimatorInfo]:
        """Surrogate loss whose gradient estimates grad mean_b(-log p(v_b)), the new state, and
        diagnostics. ``state``: from ``init_state()`` or the previous call (None: a fresh one).

        ``forward``: the module that turns statistics into the loss (default
        ``dbm.sufficient_stats.surrogate_loss``; pass a DistributedDataParallel wrapper of
        ``dbm.sufficient_stats.SurrogateLoss(model)`` to average gradients across processes). Memory is
        bounded by the chains still running (``Accumulator``), not by the meeting times.
        """
        (pos, neg), (pos_info, neg_info), state = self._run(model, v, state, generator, "stats")
        s_pos, s_neg = pos.result(), neg.result()
        loss = (forward or (lambda *a: surrogate_loss(model, *a)))(s_pos, s_neg, v.shape[0])
        with torch.no_grad():                    # 0-d tensors: no host sync unless summary() is called
            e_pos, e_neg = (-sum(torch.dot(p.reshape(-1), s.reshape(-1)) for p, s in zip(model.parameters(), st))
                            / v.shape[0]
                            for st in (s_pos, s_neg))
        return loss, state, EstimatorInfo(pos_info, neg_info, (e_pos, e_neg))

    def chain_estimates(self, model: DBM, v: Tensor, state: EstimatorState | None, generator: torch.Generator
                        ) -> tuple[Tensor, EstimatorState, EstimatorInfo]:
        """Per-chain gradient estimates g_b, (B, P) in parameter order, the new state and
        diagnostics (small models: tests)."""
        (pos, neg), (pos_info, neg_info), state = self._run(model, v, state, generator, "chain")
        return neg.result() - pos.result(), state, EstimatorInfo(pos_info, neg_info)

    def coupling_times(self, model: DBM, batch: int, generator: torch.Generator) -> PhaseInfo:
        """Diagnostics of the negative phase alone (sampling from the model) for ``batch`` chains
        from a fresh state, without keeping correction states: the fig24 measurement."""
        model.check_finite()
        w = model.weights[0]
        check_generator(generator, w.device)
        v = torch.zeros(batch, model.layer_sizes[0], dtype=w.dtype, device=w.device)
        with torch.no_grad():
            info, _ = self._phase(model, v, None, generator, "neg", Accumulator("none", model, False, batch),
                                  self.init_state())
        return info

    def _phase(self, model, v, clamp, generator, phase, sink: Accumulator, state: EstimatorState
               ) -> tuple[PhaseInfo, EstimatorState]:
        """Feed the phase's weighted states to ``sink``; return its diagnostics and the new state."""
        raise NotImplementedError(f"{self.name} has no separate phases (no coupling times to measure)")


class _LocalModeInit:
    """pi0 of UCD-MH-LMI (spec §2 step 1): uniform start (v clamped in the positive phase), T = 0
    sweeps to a local mode, then one T = 1 sweep. ``order`` is the block order of both
    (``dbm.samplers.ORDERS``): "random", the released semantics and the default, draws one order
    per chain for its whole search and a fresh one per chain for the T = 1 sweep; "even-first"
    (the suite's pi0 before the faithful-order issue, bit for bit) and "odd-first" fix it. With
    ``warm_start`` the search starts from the previous call's local modes of the same phase instead
    (``EstimatorState.warm_pos`` / ``warm_neg``; hidden units; v is the new data in the positive
    phase). That is still a valid initial law for the lag-1 estimator: it is fixed given the past,
    and X0 and Y0 share it."""
    warm_start = False
    order = "random"

    def draw_pi0(self, model, v: Tensor, phase: str, generator: torch.Generator) -> tuple[Tensor, ...]:
        """X0 ~ pi0 of one phase, one chain per row of ``v`` (B, n_0): "pos" clamps v, "neg" only
        takes its batch size. The cold start's law (no warm state), for diagnostics
        (``dbm.exact_mh``: a(X0) is the chance of a correction)."""
        if phase not in ("pos", "neg"):
            raise ValueError(f"phase must be 'pos' or 'neg', got {phase!r}")
        check_generator(generator, model.weights[0].device)
        v = check_visible(model, v)
        with torch.no_grad():
            xs, *_ = self._pi0(model, v, True if phase == "pos" else None, generator, phase, 1, self.init_state())
        return tuple(x.detach() for x in xs)

    def _pi0(self, model, v, clamp, generator, phase, n_copies, state):
        """-> (X0 (and Y0) stacked, the T = 1 sweep's SweepInfo (their odd logits, or with
        per-chain orders their energies), LocalModeInfo, the new state, the T = 1 kernel (its
        visible-term cache serves the phase's MH kernel))."""
        batch = v.shape[0]
        field = f"warm_{phase}"
        prev = getattr(state, field) if self.warm_start else ()
        vv = v.repeat(n_copies, 1) if clamp is True else None
        if prev and prev[0].shape[0] == batch * n_copies:
            xs = (vv if vv is not None else prev[0],) + tuple(prev[1:])
        else:
            xs = model.random_state(batch * n_copies, generator, vv)
        gibbs = Gibbs(model, 1.0, clamp, vv)
        n = xs[0].shape[0]
        xs, lm = gibbs.local_mode(xs, self.max_sweeps, odd_first=draw_order(self.order, n, generator, v.device))
        if self.warm_start:
            state = state._replace(**{field: xs})
        odd_first = draw_order(self.order, n, generator, v.device)     # the T = 1 sweep's own order
        u = draw_uniforms(model, n, generator)
        xs, sweep = gibbs.update(xs, u, logits=lm.logits, odd_first=odd_first, odd_logits=self.marginalize)
        return xs, sweep, lm, state, gibbs


class UCDMHLMI(_LocalModeInit, Estimator):
    """UCD-MH-LMI, the paper's method: lag-1 coupled MH with the uniform independence proposal,
    common proposal and acceptance uniform, pi0 = local mode + one sweep.

    y0 : "same" (Y0 = X0, the paper) or "independent" (a second draw from pi0).
    max_steps : cap on tau (hits counted). max_sweeps : cap on the local search (hits counted).
    warm_start : start each local search at the previous update's local modes (state carried
        in ``EstimatorState``).
    k, m : the time-averaged estimator H_{k:m} (``dbm.coupled.run_coupled``): average f(X_t) over
        t = k..m plus weighted corrections; k = m = 0 (default) is the paper's estimator.
    gibbs_sweeps : g >= 0. With g > 0 every step of the coupled chains is the mixed kernel
        ``dbm.samplers.GibbsMH``: g block Gibbs sweeps (coupled by ``coupling``, "maximal" or
        "crn", with ``max_tries`` as for ``ucd-gibbs``), then the common-proposal MH step. Still
        unbiased (docs/estimators.md); g = 0 (default) is the paper's MH kernel, draw for draw.
    order : the block order of pi0 (``_LocalModeInit``): "random" (default, as released),
        "even-first" or "odd-first". The coupled kernels' own sweeps (``gibbs_sweeps``) stay even first.
    """
    name = "ucd-mh-lmi"

    def __init__(self, marginalize=False, y0="same", max_steps=1000, max_sweeps=1000,
                 warm_start=False, k=0, m=0, gibbs_sweeps=0, coupling="maximal", max_tries=10_000,
                 order="random"):
        super().__init__(marginalize)
        self.order = check_order(order)
        if y0 not in ("same", "independent"):
            raise ValueError(f"y0 must be 'same' or 'independent', got {y0!r}")
        if coupling not in ("maximal", "crn"):
            raise ValueError(f"coupling must be 'maximal' or 'crn', got {coupling!r}")
        _check_caps(max_steps=max_steps, max_sweeps=max_sweeps, max_tries=max_tries)
        if not _is_count(gibbs_sweeps, 0):
            raise ValueError(f"gibbs_sweeps must be an integer >= 0 and at most {MAX_CAP:,}, got {gibbs_sweeps!r}")
        self.y0, self.max_steps, self.max_sweeps = y0, int(max_steps), int(max_sweeps)
        self.warm_start = bool(warm_start)
        self.k, self.m = _check_window(k, m, self.max_steps)
        self.gibbs_sweeps, self.coupling, self.max_tries = int(gibbs_sweeps), coupling, int(max_tries)

    def _phase(self, model, v, clamp, generator, phase, sink, state):
        batch = v.shape[0]
        n_copies = 2 if self.y0 == "independent" else 1
        xs, sweep, lm, state, gibbs = self._pi0(model, v, clamp, generator, phase, n_copies, state)
        residual = None
        if self.gibbs_sweeps:
            mh = GibbsMH(model, clamp, self.marginalize, self.gibbs_sweeps, like=gibbs)
            residual, count = _residual_counter(batch, v.device)
        else:
            mh, count = MH(model, clamp, self.marginalize, like=gibbs), None
        coupled = Coupled(mh, self.coupling, self.max_tries)
        s = mh.init(xs, sweep.odd_logits, sweep.energy)
        x0 = tree_take(s, slice(0, batch))
        y0 = tree_take(s, slice(batch, 2 * batch)) if n_copies == 2 else x0
        res = _coupled(sink, x0, y0, lambda st: st.xs,
                       step=lambda st, idx: mh.step(st, generator, idx),
                       coupled_step=lambda x, y, idx: coupled.step(x, y, generator, idx),
                       met=lambda x, y: states_equal(x.xs, y.xs), max_steps=self.max_steps, on_info=count,
                       k=self.k, m=self.m)
        return PhaseInfo(res.tau, res.capped, lm.sweeps[:batch], lm.capped[:batch], residual), state


class UCDGibbs(_LocalModeInit, Estimator):
    """UCD-Gibbs (Qiu, Zhang, Wang 2020): lag-1 coupled block Gibbs sweeps.

    init : "uniform" (uniform states, v clamped in the positive phase), "data" (negative chains
        start at the data batch with uniform hidden units, as the reference code) or "local-mode"
        (the pi0 of UCD-MH-LMI). y0 : "independent" (default) or "same".
    coupling : "maximal" (joint maximal coupling of each block) or "crn" (coordinate-wise).
    max_tries : cap on the maximal coupling's residual draws (hits counted per chain in
        ``PhaseInfo.residual_capped``).
    k, m : the time-averaged estimator H_{k:m}, as for ``ucd-mh-lmi`` (default 0, 0).
    order : the block order of the local-mode pi0 (``init="local-mode"`` only), as for
        ``ucd-mh-lmi`` (default "random"); the coupled sweeps stay even first.
    """
    name = "ucd-gibbs"

    def __init__(self, marginalize=False, init="uniform", y0="independent", coupling="maximal",
                 max_steps=100, max_sweeps=1000, max_tries=10_000, k=0, m=0, order="random"):
        super().__init__(marginalize)
        self.order = check_order(order)
        if init not in ("uniform", "data", "local-mode"):
            raise ValueError(f"init must be 'uniform', 'data' or 'local-mode', got {init!r}")
        if y0 not in ("same", "independent"):
            raise ValueError(f"y0 must be 'same' or 'independent', got {y0!r}")
        if coupling not in ("maximal", "crn"):
            raise ValueError(f"coupling must be 'maximal' or 'crn', got {coupling!r}")
        _check_caps(max_steps=max_steps, max_sweeps=max_sweeps, max_tries=max_tries)
        self.init, self.y0, self.coupling = init, y0, coupling
        self.max_steps, self.max_sweeps, self.max_tries = int(max_steps), int(max_sweeps), int(max_tries)
        self.k, self.m = _check_window(k, m, self.max_steps)

    def _phase(self, model, v, clamp, generator, phase, sink, state):
        batch = v.shape[0]
        n = 2 if self.y0 == "independent" else 1
        if self.init == "local-mode":
            xs, _, lm, state, _ = self._pi0(model, v, clamp, generator, phase, n, state)
            sweeps, scap = lm.sweeps[:batch], lm.capped[:batch]
        else:
            start_v = v.repeat(n, 1) if (clamp is True or self.init == "data") else None
            xs = model.random_state(batch * n, generator, start_v)
            sweeps, scap = _no_local_search(batch, v.device)
        x0 = tuple(x[:batch] for x in xs)
        y0 = tuple(x[batch:] for x in xs) if n == 2 else x0
        gibbs = Gibbs(model, 1.0, clamp)
        coupled = Coupled(gibbs, self.coupling, self.max_tries)
        residual, count = _residual_counter(batch, v.device)
        res = _coupled(sink, x0, y0, lambda st: st,
                       step=lambda st, idx: gibbs.step(st, generator, idx),
                       coupled_step=lambda x, y, idx: coupled.step(x, y, generator, idx),
                       met=states_equal, max_steps=self.max_steps, on_info=count, k=self.k, m=self.m)
        return PhaseInfo(res.tau, res.capped, sweeps, scap, residual), state


class OfficialSingleChain(_LocalModeInit, Estimator):
    """The authors' released behaviour (spec §2, known discrepancy): from X0 ~ pi0 (local mode +
    one sweep) run one MH chain until its first rejection and return that state. Equal to
    UCD-MH-LMI when the first proposal is rejected, **biased** otherwise; kept to show it.
    ``order``: pi0's block order, as for ``ucd-mh-lmi`` (default "random", as released)."""
    name = "official-single-chain"

    def __init__(self, marginalize=False, max_steps=1000, max_sweeps=1000, order="random"):
        super().__init__(marginalize)
        self.order = check_order(order)
        _check_caps(max_steps=max_steps, max_sweeps=max_sweeps)
        self.max_steps, self.max_sweeps = int(max_steps), int(max_sweeps)

    def _phase(self, model, v, clamp, generator, phase, sink, state):
        batch = v.shape[0]
        xs, sweep, lm, state, gibbs = self._pi0(model, v, clamp, generator, phase, 1, state)
        mh = MH(model, clamp, self.marginalize, like=gibbs)
        s = mh.init(xs, sweep.odd_logits, sweep.energy)
        out = [x.clone() for x in s.xs]
        tau = torch.full((batch,), self.max_steps, dtype=torch.long, device=v.device)
        idx = torch.arange(batch, device=v.device)
        for t in range(1, self.max_steps + 1):
            s, acc = mh.step(s, generator, idx)
            rej = ~acc.accepted
            for o, x in zip(out, s.xs):
                o[idx[rej]] = x[rej]
            tau[idx[rej]] = t
            idx, s = idx[acc.accepted], tree_take(s, acc.accepted)
            if idx.numel() == 0:
                break
        capped = torch.zeros(batch, dtype=torch.bool, device=v.device)
        if idx.numel():
            capped[idx] = True
            for o, x in zip(out, s.xs):
                o[idx] = x
        return _single(sink, out, PhaseInfo(tau, capped, lm.sweeps, lm.capped)), state


class CD(Estimator):
    """CD-k for DBMs: positive phase by clamped Gibbs sweeps from uniform hidden units
    (``positive="gibbs"``, ``k_pos`` sweeps) or mean-field (``positive="mean-field"``,
    ``k_pos`` iterations of ``dbm.meanfield.mean_field`` from 0.5, then one draw from the
    factorised posterior); negative chains start at the positive-phase sample and run k sweeps.
    Biased for finite k."""
    name = "cd"

    def __init__(self, marginalize=False, k=1, positive="gibbs", k_pos=10):
        super().__init__(marginalize)
        if positive not in ("gibbs", "mean-field"):
            raise ValueError(f"positive must be 'gibbs' or 'mean-field', got {positive!r}")
        _check_caps(k=k, k_pos=k_pos)
        self.k, self.positive, self.k_pos = int(k), positive, int(k_pos)

    def _positive(self, model, v, generator):
        """-> (the states entering the positive statistics, a sample of them)."""
        if self.positive == "mean-field":
            mus = mean_field(model, v, self.k_pos)
            sample = [v] + [(torch.rand(m.shape, generator=generator, dtype=m.dtype, device=m.device)
                             < m).to(m.dtype) for m in mus[1:]]
            return tuple(mus), tuple(sample)
        xs = model.random_state(v.shape[0], generator, v)
        gibbs = Gibbs(model, 1.0, True)
        for _ in range(self.k_pos):
            xs, _ = gibbs.step(xs, generator)
        return xs, xs

    def _negative_start(self, model, sample, state, generator):
        """CD: the positive-phase sample."""
        return sample

    def _phases(self, model, v, state, generator, sinks):
        ones = torch.ones(v.shape[0], dtype=torch.long, device=v.device)
        states, sample = self._positive(model, v, generator)
        pos = _single(sinks[0], states, PhaseInfo(ones, ones == 0, torch.full_like(ones, self.k_pos), ones == 0))
        xs = self._negative_start(model, sample, state, generator)
        gibbs = Gibbs(model, 1.0, None)
        for _ in range(self.k):
            xs, _ = gibbs.step(xs, generator)
        neg = _single(sinks[1], xs, PhaseInfo(ones, ones == 0, torch.full_like(ones, self.k), ones == 0))
        return (pos, neg), self._end_negative(state, xs)

    def _end_negative(self, state, xs) -> EstimatorState:
        return state


class PCD(CD):
    """Persistent CD-k: the negative chains are ``EstimatorState.chains``, created uniformly at
    random on the first call with one chain per batch row."""
    name = "pcd"

    def _negative_start(self, model, sample, state, generator):
        if not state.chains:
            return model.random_state(sample[0].shape[0], generator)
        if state.chains[0].shape[0] != sample[0].shape[0]:
            raise ValueError(f"PCD has {state.chains[0].shape[0]} persistent chains but the batch has "
                             f"{sample[0].shape[0]} rows; keep the batch size fixed or start from est.init_state()")
        return state.chains

    def _end_negative(self, state, xs) -> EstimatorState:
        return state._replace(chains=tuple(xs))


ESTIMATORS = {c.name: c for c in (CD, PCD, UCDGibbs, UCDMHLMI, OfficialSingleChain)}


def estimator(name: str = "ucd-mh-lmi", **options) -> Estimator:
    """Build a gradient estimator by name: one of ``dbm.ESTIMATORS``."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose from {sorted(ESTIMATORS)}")
    return ESTIMATORS[name](**options)
