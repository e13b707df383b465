"""Third-order Birch-Murnaghan equation of state: the energy curve and a linear least-squares fit.

E(V) = E0 + 9 V0 B0 / 16 * { [(V0/V)^(2/3) - 1]^3 B' + [(V0/V)^(2/3) - 1]^2 [6 - 4 (V0/V)^(2/3)] }

is a cubic polynomial in x = V^(-2/3), so the fit is a linear least-squares fit of E = sum_k p_k x^k (the
same model as a non-linear BM fit, without its starting-guess problems); V0, B0 and B' follow from the
polynomial's derivatives at its minimum. Units: V in A^3, E in eV, B0 in eV/A^3 here (see GPA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ase.units import GPa

GPA = GPa  # eV/A^3 per GPa (1 GPa = 0.0062415 eV/A^3)


@dataclass(frozen=True)
class EOSParams:
    """Birch-Murnaghan parameters. v0 (A^3), b0 (GPa), b1 (dimensionless), e0 (eV)."""

    v0: float
    b0: float
    b1: float
    e0: float = 0.0

    def energy(self, v: npt.ArrayLike) -> np.ndarray:
        return birch_murnaghan(v, self.e0, self.v0, self.b0 * GPA, self.b1)

    def pressure_gpa(self, v: npt.ArrayLike) -> np.ndarray:
        """P = -dE/dV in GPa."""
        eta = (self.v0 / np.asarray(v, dtype=float)) ** (2.0 / 3.0)
        p = 1.5 * self.b0 * (eta**3.5 - eta**2.5) * (1 + 0.75 * (self.b1 - 4) * (eta - 1))
        return p

    def per_atom(self, n_atoms: int) -> "EOSParams":
        return EOSParams(self.v0 / n_atoms, self.b0, self.b1, self.e0 / n_atoms)


def birch_murnaghan(v: npt.ArrayLike, e0: float, v0: float, b0: float, b1: float) -> np.ndarray:
    """Energy (eV) at volume v for BM parameters with b0 in eV/A^3."""
    eta = (v0 / np.asarray(v, dtype=float)) ** (2.0 / 3.0)
    return e0 + 9.0 * v0 * b0 / 16.0 * ((eta - 1) ** 3 * b1 + (eta - 1) ** 2 * (6 - 4 * eta))


@dataclass(frozen=True)
class EOSFit:
    params: EOSParams
    rms_residual: float  # eV, of the fit at the sampled points
    vmin: float
    vmax: float

    @property
    def extrapolated(self) -> bool:
        """True when the fitted V0 lies outside the sampled volume range (the fit is then an extrapolation)."""
        return not (self.vmin <= self.params.v0 <= self.vmax)


def _derivative_coefficients(p: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients c_k and powers a_k with d^n/dV^n sum_k p_k V^(-2k/3) = sum_k c_k V^(a_k)."""
    powers = -2.0 * np.arange(len(p)) / 3.0
    coef = p.astype(float).copy()
    for _ in range(order):
        coef = coef * powers
        powers = powers - 1.0
    return coef, powers


def _deriv(p: np.ndarray, v: float, order: int) -> float:
    c, a = _derivative_coefficients(p, order)
    return float(np.sum(c * v**a))


def fit_birch_murnaghan(volumes: npt.ArrayLike, energies: npt.ArrayLike) -> EOSFit:
    """Fit E(V) (at least 5 points, volumes and energies of the same cell) with a 3rd-order Birch-Murnaghan EOS."""
    v = np.asarray(volumes, dtype=float)
    e = np.asarray(energies, dtype=float)
    if v.shape != e.shape or v.ndim != 1:
        raise ValueError(f"volumes and energies must be 1-D of equal length, got {v.shape} and {e.shape}")
    if len(v) < 5:
        raise ValueError(f"a Birch-Murnaghan fit needs at least 5 points, got {len(v)}")
    if not (np.isfinite(v).all() and np.isfinite(e).all()):
        raise ValueError("volumes and energies must be finite")
    if (v <= 0).any():
        raise ValueError("volumes must be positive")
    if len(np.unique(np.round(v, 10))) < 5:
        raise ValueError("a Birch-Murnaghan fit needs at least 5 distinct volumes")
    x = v ** (-2.0 / 3.0)
    # scale x for conditioning, then undo: E = sum q_k (x/s)^k  ->  p_k = q_k / s^k
    s = x.mean()
    design = np.vander(x / s, 4, increasing=True)
    q, *_ = np.linalg.lstsq(design, e, rcond=None)
    p = q / s ** np.arange(4)
    residual = float(np.sqrt(np.mean((design @ q - e) ** 2)))
    # minimum: dE/dx = p1 + 2 p2 x + 3 p3 x^2 = 0 with positive curvature
    roots = np.roots([3 * p[3], 2 * p[2], p[1]]) if abs(p[3]) > 0 else np.roots([2 * p[2], p[1]])
    candidates = []
    for r in roots:
        if abs(r.imag) > 1e-12 * abs(r.real) or r.real <= 0:
            continue
        v0 = float(r.real) ** (-1.5)
        if _deriv(p, v0, 2) > 0:
            candidates.append(v0)
    if not candidates:
        raise ValueError(
            "the E(V) data have no minimum (the fitted curve has no positive-curvature stationary "
            "point); sample a wider volume range around the equilibrium"
        )
    vmid = 0.5 * (v.min() + v.max())
    v0 = min(candidates, key=lambda c: abs(c - vmid))
    d2, d3 = _deriv(p, v0, 2), _deriv(p, v0, 3)
    b0 = v0 * d2
    b1 = -1.0 - v0 * d3 / d2
    e0 = float(np.polyval(p[::-1], v0 ** (-2.0 / 3.0)))
    return EOSFit(EOSParams(v0=v0, b0=b0 / GPA, b1=b1, e0=e0), residual, float(v.min()), float(v.max()))
