"""dbm: deep Boltzmann machines trained with unbiased contrastive divergence.

Import from the repository root (or with the repository on PYTHONPATH), or anywhere after
``pip install`` through ``import dbm_suite`` (which loads this package as ``dbm``): Python's
standard library also has a package named ``dbm``, which wins over an installed copy of this one.
The command line is ``dbm-suite`` (or ``python -m dbm`` from the repository root). The module
map is docs/architecture.md.

Names are imported on first use (PEP 562), so ``import dbm`` and ``dbm-suite --help`` do not
load torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
IS_THIS_PROJECT = True   # the standard library's dbm has no such attribute (see tests)

_SUBMODULES = ("couplings", "driver", "exact", "inpaint", "presets", "samplers", "stats")
_NAMES = {                # name -> the submodule that defines it
    **{n: "encoding" for n in ("decode", "decode_8bit", "decode_binary", "encode", "encode_8bit", "encode_binary")},
    **{n: "estimators" for n in ("ESTIMATORS", "Estimator", "EstimatorInfo", "EstimatorState", "PhaseInfo",
                                 "estimator")},
    "mean_field": "meanfield", "DBM": "model", "PRESETS": "presets",
    **{n: "samplers" for n in ("MH", "Gibbs", "LocalModeInfo", "MHState", "gibbs_step", "gibbs_update", "local_mode",
                               "mh_init", "mh_step")},
    "statistics": "stats", "surrogate_loss": "stats",
}

__all__ = ["DBM", "estimator", "ESTIMATORS", "Estimator", "EstimatorInfo", "EstimatorState", "PhaseInfo",
           "PRESETS", "encode", "decode", "encode_binary", "decode_binary", "encode_8bit", "decode_8bit",
           "Gibbs", "MH", "gibbs_step", "gibbs_update", "local_mode", "LocalModeInfo", "MHState", "mh_init",
           "mh_step", "mean_field", "statistics", "surrogate_loss", "couplings", "driver", "exact", "inpaint",
           "presets", "samplers", "stats"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dbm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
