"""Is a training trace flat? The convergence criterion of the converged profile (issue 13).

A held-out metric y_i logged at steps s_i is called flat over the last ``tail`` of training when
the least-squares line through the points with s_i >= s_max - tail (s_max - s_min) has a drift
(slope x window length) whose two-sided 95 % t-interval contains 0: the metric moved by less
than its own scatter around the line can tell apart from no change. ``drift`` and ``drift_se``
are reported beside the verdict, so a reader can also judge a flat verdict that only reflects
few or noisy points (``n`` is the number of points in the window; with n < 3 there is no
verdict).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = ["Drift", "tail_drift"]


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
