"""Frechet distance between Gaussians fitted to features (FID's formula, pytorch-fid's pipeline).

    d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr sqrt(S_1 S_2)

computed in float64 by the eigenvalue route: S_1 S_2 is similar to the symmetric PSD matrix
M = sqrt(S_1) S_2 sqrt(S_1), so tr sqrt(S_1 S_2) = sum_i sqrt(lambda_i(M)) with ``eigvalsh``. This
needs no ``scipy.linalg.sqrtm`` (whose ``disp`` argument pytorch-fid 0.3.0 passes and SciPy 1.18
removed) and has no spurious imaginary parts.

Statistics are accumulated in float64 over batches (``accumulate``): the mean and the unbiased
covariance (divisor n - 1, as ``numpy.cov``).
"""
from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["Stats", "frechet_distance", "accumulate", "save_stats", "load_stats"]


class Stats(NamedTuple):
    """mu: (D,) float64; sigma: (D, D) float64; n: number of feature vectors."""
    mu: np.ndarray
    sigma: np.ndarray
    n: int


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    lam, u = np.linalg.eigh(s)
    return (u * np.sqrt(np.clip(lam, 0, None))) @ u.T


def frechet_distance(a: Stats, b: Stats) -> float:
    """Squared Frechet distance between N(a.mu, a.sigma) and N(b.mu, b.sigma), float64."""
    mu1, mu2 = np.asarray(a.mu, np.float64), np.asarray(b.mu, np.float64)
    s1, s2 = np.asarray(a.sigma, np.float64), np.asarray(b.sigma, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    for name, x in (("mu", mu1), ("mu", mu2), ("sigma", s1), ("sigma", s2)):
        if not np.isfinite(x).all():
            raise ValueError(f"non-finite {name} in the statistics")
    r = _sqrt_psd((s1 + s1.T) / 2)
    m = r @ ((s2 + s2.T) / 2) @ r
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


@torch.no_grad()
def accumulate(features: Callable[[Tensor], Tensor], batches: Iterable[Tensor]) -> Stats:
    """Stats of ``features(x)`` (B, D) over an iterable of input batches, summed in float64."""
    n, s, ss = 0, None, None
    for x in batches:
        f = features(x).to(torch.float64).cpu()
        if f.ndim != 2:
            raise ValueError(f"features must be (B, D), got {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError("non-finite features")
        s = f.sum(0) if s is None else s + f.sum(0)
        ss = f.T @ f if ss is None else ss + f.T @ f
        n += f.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors, got {n}")
    mu = s / n
    sigma = (ss - n * torch.outer(mu, mu)) / (n - 1)
    return Stats(mu.numpy(), sigma.numpy(), n)


def save_stats(path, stats: Stats, manifest: dict) -> None:
    """``.npz`` with mu, sigma, n and the manifest as JSON (written to a temporary name, renamed)."""
    import json
    from ..provenance import atomic_path
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=stats.mu, sigma=stats.sigma, n=stats.n, manifest=json.dumps(manifest, sort_keys=True))


def load_stats(path, manifest: dict | None = None) -> Stats | None:
    """The cached statistics, or None when absent or written under another manifest."""
    import json
    from pathlib import Path
    if not Path(path).exists():
        return None
    with np.load(path) as z:
        if manifest is not None and json.loads(str(z["manifest"])) != json.loads(json.dumps(manifest, sort_keys=True)):
            return None
        return Stats(z["mu"], z["sigma"], int(z["n"]))
