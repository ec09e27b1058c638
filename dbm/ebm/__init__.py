"""Energy-based models learned by short-run MCMC (Nijkamp et al., AAAI 2020; spec:
``shared/papers/ebm_anatomy.md``): energy networks (``nets``), Langevin and MALA kernels
(``langevin``), chain initialisations and the persistent bank (``chains``), 2-D targets with exact
densities (``toy``) and the ML learning loop with the diagnostics d_{s_t} and r_t (``train``).

Notation: U(x; theta) is the energy, p(x) proportional to exp(-U(x)); a Langevin step is
x <- x - (eps^2 / 2) grad_x U(x) + eps z, z ~ N(0, I).
"""
from .chains import PersistentBank, init_chains
from .langevin import Langevin, LangevinInfo, LangevinState, langevin_update, mala_update, run_langevin
from .nets import NET_NAMES, EnergyNet, make_net

__all__ = ["EnergyNet", "make_net", "NET_NAMES", "LangevinState", "LangevinInfo", "langevin_update",
           "Langevin", "mala_update", "run_langevin", "init_chains", "PersistentBank"]
