"""Is a training trace flat? The convergence criterion of the converged profile (issue 13).

A held-out metric y_i logged at steps s_i is called flat over the last ``tail`` of training when
the least-squares line through the points with s_i >= s_max - tail (s_max - s_min) has a drift
(slope x window length) whose two-sided 95 % t-interval contains 0: the metric moved by less
than its own scatter around the line can tell apart from no change. ``drift`` and ``drift_se``
are reported beside the verdict, so a reader can also judge a flat verdict that only reflects
few or noisy points (``n`` is the number of points in the window; with n < 3 there is no
verdict).

``Plateau`` is the stopping rule built on it (the GANs of the converged profile): a trace of
evaluations, and a stop at the first one, at or after ``min_steps``, where the trace is flat over
its last ``tail`` with at least ``points`` evaluations in the window.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = ["Drift", "tail_drift", "Plateau"]


class Drift(NamedTuple):
    """drift: fitted change over the window (units of the metric); drift_se: its standard error;
    n: points in the window; window: steps spanned; flat: True / False, or None when n < 3."""
    drift: float
    drift_se: float
    n: int
    window: float
    flat: bool | None


def tail_drift(steps, values, tail: float = 0.2, level: float = 0.95) -> Drift:
    """The drift of ``values`` over the last ``tail`` of the step range (module docstring)."""
    s, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"steps and values must be 1-d of one length, got {s.shape} and {y.shape}")
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail}")
    keep = np.isfinite(y)
    s, y = s[keep], y[keep]
    if len(s) == 0:
        return Drift(math.nan, math.nan, 0, 0.0, None)
    lo = s.max() - tail * (s.max() - s.min())
    s, y = s[s >= lo], y[s >= lo]
    n, window = len(s), float(s.max() - s.min())
    if n < 3 or window == 0:
        return Drift(math.nan, math.nan, n, window, None)
    x = s - s.mean()
    slope = float((x * (y - y.mean())).sum() / (x * x).sum())
    resid = y - y.mean() - slope * x
    slope_se = math.sqrt(float((resid ** 2).sum()) / (n - 2) / float((x * x).sum()))
    crit = stats.t.ppf(0.5 + level / 2, n - 2)
    drift, se = slope * window, slope_se * window
    return Drift(drift, se, n, window, bool(abs(drift) <= crit * se))


class Plateau:
    """The plateau stopping rule over a metric's trace (module docstring). ``enabled`` False: the
    trace and its drift are still kept and logged, the rule never fires."""

    def __init__(self, enabled: bool, min_steps: int = 0, tail: float = 0.2, points: int = 5):
        self.enabled, self.min_steps, self.tail, self.points = bool(enabled), int(min_steps), float(tail), int(points)
        self.trace: list[tuple[int, float]] = []          # (step, value)
        self.reached = False

    def observe(self, step: int, value: float) -> dict:
        """Add one evaluation and apply the rule; returns its drift record (``fd_*`` names: the
        metric is the classifier-FD wherever the rule is used)."""
        self.trace.append((int(step), float(value)))
        steps, values = zip(*self.trace)
        d = tail_drift(steps, values, self.tail)
        if self.enabled and step >= self.min_steps and d.flat and d.n >= self.points:
            self.reached = True
        return {"classifier_fd": values[-1], "fd_drift": d.drift, "fd_drift_se": d.drift_se, "fd_window_points": d.n}

    def summary(self, step: int, cap: int) -> dict:
        """How the run ended: ``stop_reason`` "plateau", "cap" (reached ``cap`` without the rule
        firing), "fixed" (no rule) or "running"; the number, best and last of the evaluations."""
        reason = ("plateau" if self.reached else "fixed" if not self.enabled else "cap" if step >= cap else "running")
        vals = [v for _, v in self.trace]
        return dict(stop_reason=reason, fd_evaluations=len(vals), fd_last=vals[-1] if vals else math.nan,
                    fd_best=min(vals) if vals else math.nan)

    def state_dict(self) -> dict:
        return {"fd_trace": [list(p) for p in self.trace], "plateau": self.reached}

    def load_state_dict(self, state: dict) -> None:
        self.trace = [(int(s), float(v)) for s, v in state.get("fd_trace", [])]
        self.reached = bool(state.get("plateau", False))
