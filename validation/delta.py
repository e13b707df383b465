"""The Delta gauge of Lejaeghere et al. (Crit. Rev. Solid State 39, 1 (2014); Science 351, aad3000 (2016)).

Delta is the root-mean-square energy difference between two Birch-Murnaghan E(V) curves (per atom), each
shifted so that its own minimum is zero, over the volume window [0.94, 1.06] x the mean of the two V0:

    Delta = sqrt( integral_{Vi}^{Vf} (E_a(V) - E_b(V))^2 dV / (Vf - Vi) ),  Vi,f = {0.94, 1.06} (V0a + V0b)/2

reported in meV/atom. The integral is evaluated with high-order Gauss-Legendre quadrature (the integrand is a
smooth function of V; 64 nodes are exact to far below a micro-eV for any physical EOS).
"""

from __future__ import annotations

import numpy as np

from gfm_ase.validation.eos_fit import GPA, EOSParams, birch_murnaghan

WINDOW = (0.94, 1.06)
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)


def delta_mev(a: EOSParams, b: EOSParams, window: tuple[float, float] = WINDOW) -> float:
    """Delta (meV/atom) between two per-atom EOS (v0 in A^3/atom, b0 in GPa); e0 is ignored (minima aligned)."""
    for p in (a, b):
        if not (np.isfinite([p.v0, p.b0, p.b1]).all() and p.v0 > 0 and p.b0 > 0):
            raise ValueError(f"Delta needs finite V0 > 0 and B0 > 0, got {p}")
    vmean = 0.5 * (a.v0 + b.v0)
    vi, vf = window[0] * vmean, window[1] * vmean
    v = 0.5 * (vf - vi) * _NODES + 0.5 * (vf + vi)
    ea = birch_murnaghan(v, 0.0, a.v0, a.b0 * GPA, a.b1)
    eb = birch_murnaghan(v, 0.0, b.v0, b.b0 * GPA, b.b1)
    integral = 0.5 * (vf - vi) * np.sum(_WEIGHTS * (ea - eb) ** 2)
    return float(1000.0 * np.sqrt(integral / (vf - vi)))
