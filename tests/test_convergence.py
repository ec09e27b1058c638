"""The flatness criterion of the converged profile: its false-alarm rate is its nominal 5 % on
flat noisy traces, and it sees a real trend."""
import numpy as np
import pytest

from dbm.metrics.convergence import tail_drift
from stat_helpers import binomial_z, z_threshold


def test_flat_traces_are_called_flat_at_the_nominal_rate():
    rng = np.random.default_rng(7)
    steps = np.arange(0, 12_001, 480)                        # the converged profile's 26 evaluations
    trials = 4000
    not_flat = sum(not tail_drift(steps, 3.0 + rng.normal(0, 0.5, steps.shape)).flat for _ in range(trials))
    # the t-interval's size is exactly 5 % for Gaussian scatter: a binomial z-test on the count
    assert abs(binomial_z(not_flat, trials, 0.05)) < z_threshold(1)


def test_a_trend_in_the_tail_is_not_flat_and_the_head_is_ignored():
    steps = np.arange(0, 12_001, 480)
    rng = np.random.default_rng(8)
    rising = 0.01 * steps + rng.normal(0, 1.0, steps.shape)            # +24 over the last 20 %
    d = tail_drift(steps, rising)
    assert d.flat is False and d.n == 6 and d.drift == pytest.approx(24, abs=6)
    plateau = np.where(steps < 6000, steps / 100.0, 60.0) + rng.normal(0, 1.0, steps.shape)
    assert tail_drift(steps, plateau).flat is True                     # early climb, flat tail


def test_too_few_points_give_no_verdict_and_bad_input_is_refused():
    assert tail_drift([0, 10, 20], [1.0, 2.0, 3.0]).flat is None        # one point in the tail
    assert tail_drift([0, 1, 2, 3], [np.nan] * 4).n == 0
    with pytest.raises(ValueError, match="one length"):
        tail_drift([0, 1], [1.0])
    with pytest.raises(ValueError, match="tail"):
        tail_drift([0, 1, 2], [1.0, 1, 1], tail=0)


def test_plateau_rule_fires_on_a_flat_window_after_min_steps_and_survives_a_round_trip():
    from dbm.metrics.convergence import Plateau
    rule = Plateau(enabled=True, min_steps=60, tail=0.5, points=3)
    falling = [(s, 100.0 / s) for s in range(10, 60, 10)]                 # still falling: no stop
    flat = [(s, 1.0 + 0.01 * (-1) ** (s // 10)) for s in range(60, 130, 10)]
    for s, v in falling:
        rule.observe(s, v)
        assert not rule.reached
    for s, v in flat:
        rule.observe(s, v)
    assert rule.reached and rule.summary(120, 1000)["stop_reason"] == "plateau"
    again = Plateau(enabled=True, min_steps=60, tail=0.5, points=3)
    again.load_state_dict(rule.state_dict())
    assert again.trace == rule.trace and again.reached
    off = Plateau(enabled=False)
    for s, v in falling + flat:
        off.observe(s, v)
    assert not off.reached and off.summary(120, 1000)["stop_reason"] == "fixed"
    assert off.summary(1000, 1000)["stop_reason"] == "fixed" and Plateau(True).summary(5, 5)["stop_reason"] == "cap"
