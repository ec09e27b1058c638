"""dbm: deep Boltzmann machines trained with unbiased contrastive divergence.

Import from the repository root (or with the repository on PYTHONPATH): Python's standard
library also has a package named ``dbm``, which wins over an installed copy of this one.
The module map is docs/architecture.md.
"""
from . import couplings, driver, exact, inpaint, presets, samplers, stats
from .encoding import decode, decode_8bit, decode_binary, encode, encode_8bit, encode_binary
from .estimators import ESTIMATORS, Estimator, EstimatorInfo, EstimatorState, PhaseInfo, estimator
from .meanfield import mean_field
from .model import DBM
from .presets import PRESETS
from .samplers import (MH, Gibbs, LocalModeInfo, MHState, gibbs_step, gibbs_update, local_mode, mh_init,
                       mh_step)
from .stats import statistics, surrogate_loss

__version__ = "0.1.0"
IS_THIS_PROJECT = True   # the standard library's dbm has no such attribute (see tests)

__all__ = ["DBM", "estimator", "ESTIMATORS", "Estimator", "EstimatorInfo", "EstimatorState", "PhaseInfo",
           "PRESETS", "encode", "decode", "encode_binary", "decode_binary", "encode_8bit", "decode_8bit",
           "Gibbs", "MH", "gibbs_step", "gibbs_update", "local_mode", "LocalModeInfo", "MHState", "mh_init",
           "mh_step", "mean_field", "statistics", "surrogate_loss", "couplings", "driver", "exact", "inpaint",
           "presets", "samplers", "stats"]
