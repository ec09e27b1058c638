"""The held-out metrics a DBM training run logs at each evaluation (``dbm.train``'s
``eval_every``), as one plain function of the model and the held-out batch.

- ``recon_error``: v -> mean-field posterior (10 iterations) -> p(v | h1), mean absolute error;
- ``exact_test_nll``: the exact -log p(v) when the model can be enumerated;
- ``test_ll_bound``, ``log_z``, ``log_z_se`` (with ``ais_runs``): the held-out log-likelihood bound,
  nats per image, with log Z by AIS drawn from a generator seeded by ``seed`` alone, so that every
  evaluation uses the same random numbers and the trace's noise is the model's change;
- ``mode_ink``, ``mode_diversity`` (with ``samples``): that many local modes from fixed uniform
  starts (``dbm.metrics.samples.sample_images``).

Every draw comes from the function's own generators: evaluation never changes a training stream.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import exact
from ..meanfield import mean_field
from ..model import DBM
from ..provenance import seed_hash
from .ais import ais_log_partition, log_likelihood_bound
from .samples import sample_images, sample_stats

__all__ = ["heldout_metrics"]


@torch.no_grad()
def heldout_metrics(model: DBM, v: Tensor, seed: int, ais_runs: int = 0, ais_betas: int = 500,
                    samples: int = 0) -> dict[str, float]:
    """The metrics above for held-out visible vectors v (N, n_0); ``seed``: the run's seed."""
    dev = v.device
    mus = mean_field(model, v, 10)
    recon = torch.sigmoid(model.logits(mus, 0))
    out = {"recon_error": float((recon - v).abs().mean())}
    n_even = sum(model.layer_sizes[l] for l in model.layers(0) if l > 0)
    if n_even <= 16 and sum(model.layer_sizes[l] for l in model.layers(0)) <= exact.MAX_ENUM_BITS:
        out["exact_test_nll"] = float(exact.nll(model, v).mean())   # enumerable: exact -log p(v)
    if ais_runs:
        g = torch.Generator(device=dev).manual_seed(seed_hash("eval-ais", seed))
        ais = ais_log_partition(model, g, runs=ais_runs, betas=ais_betas)
        out.update(test_ll_bound=float(log_likelihood_bound(model, v, ais.log_z).mean()), log_z=ais.log_z,
                   log_z_se=ais.log_z_se)
    if samples:
        g = torch.Generator(device=dev).manual_seed(seed_hash("eval-modes", seed))
        stats = sample_stats(sample_images(model, samples, g)["mode"], v)
        out.update(mode_ink=stats["ink"], mode_diversity=stats["diversity"])
    return out
