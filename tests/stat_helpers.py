"""Statistical assertions with a declared false-failure rate (NumPyro's gof style).

Every test that uses these helpers fails by chance with probability at most
``TEST_FAILURE_RATE`` when the code is correct (Bonferroni over the parameters it checks).
The seeds are fixed for reproducibility and were never searched.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

import dbm
from dbm import exact

TEST_FAILURE_RATE = 1e-3


class InsufficientSamples(AssertionError):
    """Raised instead of passing when the expected counts are too sparse: use more samples."""


def chi2_gof(index: torch.Tensor, probs: torch.Tensor, alpha: float = TEST_FAILURE_RATE,
             min_expected: float = 5.0) -> float:
    """Chi-square goodness of fit of observed cell indices (M,) against probabilities (K,).

    Cells with expected count < ``min_expected`` are pooled; a draw in a zero-probability cell
    fails at once. Returns the p-value and asserts p > alpha.
    """
    probs = probs.double().cpu().numpy()
    counts = np.bincount(index.cpu().numpy(), minlength=probs.shape[0]).astype(float)
    impossible = (probs == 0) & (counts > 0)
    assert not impossible.any(), f"{int(counts[impossible].sum())} draws in zero-probability cells"
    n = counts.sum()
    expected = probs * n
    small = expected < min_expected
    obs, exp = list(counts[~small]), list(expected[~small])
    if small.any():
        obs.append(counts[small].sum())
        exp.append(expected[small].sum())
    if len(exp) < 2 or min(exp) < min_expected:
        if len(exp) >= 3 and exp[-1] < min_expected:        # fold the pooled cell into the smallest
            j = int(np.argmin(exp[:-1]))
            obs[j] += obs.pop()
            exp[j] += exp.pop()
        else:
            raise InsufficientSamples(f"only {len(exp)} usable cells; use more samples")
    obs, exp = np.array(obs), np.array(exp)
    stat = ((obs - exp) ** 2 / exp).sum()
    p = stats.chi2.sf(stat, len(exp) - 1)
    assert p > alpha, f"chi-square p-value {p:.2e} <= {alpha} (stat {stat:.1f}, {len(exp) - 1} dof)"
    return float(p)


def z_scores(samples: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(mean - target) / standard error, per column of samples (N, P)."""
    samples = samples.double()
    se = samples.std(0) / samples.shape[0] ** 0.5
    diff = samples.mean(0) - target.double()
    z = diff / se
    return torch.where(se == 0, torch.where(diff.abs() < 1e-12, 0.0, float("inf")), z)


def z_threshold(n_params: int, alpha: float = TEST_FAILURE_RATE) -> float:
    """Two-sided Bonferroni bound: |z| > this for some parameter has probability <= alpha."""
    return float(stats.norm.isf(alpha / (2 * n_params)))


def binomial_z(successes: int, n: int, p: float) -> float:
    return (successes - n * p) / (n * p * (1 - p)) ** 0.5


def random_dbm(sizes, seed: int, w_scale: float = 1.0, b_scale: float = 0.5) -> dbm.DBM:
    """An enumerable test DBM: Gaussian weights of scale w_scale, biases of scale b_scale."""
    g = torch.Generator().manual_seed(seed)
    m = dbm.DBM(sizes, init="gaussian", sigma=w_scale, generator=g)
    with torch.no_grad():
        for b in m.biases:
            b.copy_(b_scale * torch.randn(b.shape, generator=g))
    return m


def joint_index(xs) -> torch.Tensor:
    return exact.state_index(torch.cat(list(xs), -1))
