"""Unit and sign conversions into ASE's conventions.

ASE: energy eV, length Angstrom, forces eV/A, stress eV/A^3 with **positive = tension** (the derivative of the
energy with respect to strain divided by the volume), Voigt order ``xx yy zz yz xz xy``.

Codes differ: VASP prints the stress in kbar with positive = *compression* (pressure) and its 6-vector in the
order ``xx yy zz xy yz zx``; LAMMPS/FitSNAP use bar; Quantum ESPRESSO prints kbar and Ry/bohr^3. Every converter
goes through :func:`stress_to_ase`, which names the source unit, sign and order explicitly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from ase import units as _u
from numpy.typing import ArrayLike

# multiply a value in the named unit by this factor to get ASE units
HARTREE = _u.Hartree  # eV per Hartree
BOHR = _u.Bohr  # Angstrom per Bohr
KCAL_MOL = _u.kcal / _u.mol  # eV per kcal/mol
KJ_MOL = _u.kJ / _u.mol  # eV per kJ/mol
RYDBERG = _u.Rydberg  # eV per Ry
HARTREE_PER_BOHR = HARTREE / BOHR  # eV/A per Hartree/Bohr
GPA = _u.GPa  # eV/A^3 per GPa
KBAR = 0.1 * _u.GPa  # eV/A^3 per kbar
BAR = 1e-4 * _u.GPa  # eV/A^3 per bar
PA = 1e-9 * _u.GPa  # eV/A^3 per Pa

ENERGY_UNITS = {
    "eV": 1.0,
    "meV": 1e-3,
    "Hartree": HARTREE,
    "Ha": HARTREE,
    "Ry": RYDBERG,
    "kcal/mol": KCAL_MOL,
    "kJ/mol": KJ_MOL,
}
LENGTH_UNITS = {"Angstrom": 1.0, "A": 1.0, "Bohr": BOHR, "nm": 10.0}
STRESS_UNITS = {
    "eV/A^3": 1.0,
    "eV/Angstrom^3": 1.0,
    "GPa": GPA,
    "kbar": KBAR,
    "kB": KBAR,
    "bar": BAR,
    "Pa": PA,
    "Ry/Bohr^3": RYDBERG / BOHR**3,
    "Hartree/Bohr^3": HARTREE / BOHR**3,
}

# index pairs of the 6-vector orders
Order = tuple[tuple[int, int], ...]
VOIGT: Order = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # ASE / Voigt: xx yy zz yz xz xy
# the same as index arrays, for full[..., VOIGT_ROWS, VOIGT_COLS] -> [..., 6] (numpy and torch alike)
VOIGT_ROWS: tuple[int, ...] = tuple(a for a, _ in VOIGT)
VOIGT_COLS: tuple[int, ...] = tuple(b for _, b in VOIGT)
VASP_ORDER: Order = ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2))  # VASP OUTCAR "in kB": xx yy zz xy yz zx
ORDERS = {"voigt": VOIGT, "vasp": VASP_ORDER}


class UnitError(ValueError):
    """An unknown unit, sign or component order."""


def _factor(table: dict[str, float], unit: str, what: str) -> float:
    try:
        return table[unit]
    except KeyError:
        raise UnitError(f"unknown {what} unit {unit!r}; known: {', '.join(table)}") from None


def energy_factor(unit: str) -> float:
    return _factor(ENERGY_UNITS, unit, "energy")


def length_factor(unit: str) -> float:
    return _factor(LENGTH_UNITS, unit, "length")


def stress_factor(unit: str) -> float:
    return _factor(STRESS_UNITS, unit, "stress")


def _is_tensor(x: object) -> bool:
    """A torch tensor (checked by type, so that this module does not import torch)."""
    return type(x).__module__.split(".")[0] == "torch"


def to_voigt(m: Any) -> Any:
    """[..., 3, 3] -> [..., 6] in Voigt order xx yy zz yz xz xy: the diagonal and the upper triangle, as they are.

    The one place that picks the Voigt components out of a 3x3 tensor: numpy arrays and torch tensors alike (a torch
    tensor stays a tensor, on its device and in its dtype, differentiable). No symmetry check and no averaging: for
    a tensor that is symmetric by construction (the model's stress, a code's virial). Input read from files goes
    through :func:`full_to_voigt`, which checks and symmetrises first.
    """
    if not _is_tensor(m):
        m = np.asarray(m)
    if tuple(m.shape[-2:]) != (3, 3):
        raise UnitError(f"expected a [..., 3, 3] tensor, got shape {tuple(m.shape)}")
    return m[..., VOIGT_ROWS, VOIGT_COLS]


@lru_cache(maxsize=None)
def _full_index(order: Order) -> tuple[int, ...]:
    """Row-major [3, 3] positions -> index into a 6-vector in ``order`` (pairs of tensor indices)."""
    idx = [[0] * 3 for _ in range(3)]
    for k, (a, b) in enumerate(order):
        idx[a][b] = idx[b][a] = k
    return tuple(i for row in idx for i in row)


def voigt_to_full(v: Any, order: Order = VOIGT) -> Any:
    """6-vector -> symmetric [3, 3] (works on [..., 6]); ``order``: the tensor component of each position, default
    Voigt (xx yy zz yz xz xy), e.g. :data:`VASP_ORDER`. numpy (float64 out) or torch (same dtype and device)."""
    if not _is_tensor(v):
        v = np.asarray(v, dtype=np.float64)
    if v.shape[-1] != 6:
        raise UnitError(f"a Voigt vector has 6 components, got shape {tuple(v.shape)}")
    return v[..., list(_full_index(order))].reshape(tuple(v.shape[:-1]) + (3, 3))


def full_to_voigt(m: ArrayLike, *, check_symmetric: bool = True, atol: float = 1e-6) -> np.ndarray:
    """Symmetric [3, 3] -> Voigt-6 (xx yy zz yz xz xy); the off-diagonals are averaged (works on [..., 3, 3]).

    The checked entry for stresses read from files or other codes (a non-symmetric tensor beyond ``atol`` relative
    to its largest component is an error unless ``check_symmetric=False``); float64 numpy out."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape[-2:] != (3, 3):
        raise UnitError(f"expected a [3, 3] tensor, got shape {m.shape}")
    asym = np.abs(m - np.swapaxes(m, -1, -2)).max() if m.size else 0.0
    scale = max(1.0, float(np.abs(m).max()) if m.size else 1.0)
    if check_symmetric and asym > atol * scale:
        raise UnitError(f"stress tensor is not symmetric (max |s - s^T| = {asym:.3g})")
    return to_voigt(0.5 * (m + np.swapaxes(m, -1, -2)))


def stress_to_ase(stress: ArrayLike, unit: str, *, sign: str, order: str = "voigt") -> np.ndarray:
    """Convert a stress to ASE's Voigt-6 in eV/A^3, positive = tension.

    ``stress``: [3, 3] or a 6-vector (``order`` = "voigt" for xx yy zz yz xz xy, "vasp" for xx yy zz xy yz zx);
    ``unit``: a key of :data:`STRESS_UNITS` (e.g. "kbar", "bar", "GPa", "eV/A^3");
    ``sign``: "tension" if positive values mean tension (ASE, LAMMPS pressure tensor negated ...),
    "compression" if positive values mean compression (VASP/pymatgen "stress" in kbar, pressures).
    """
    s = np.asarray(stress, dtype=np.float64)
    if s.shape == (3, 3):
        v = full_to_voigt(s)
    elif s.shape == (6,):
        if order not in ORDERS:
            raise UnitError(f"unknown stress component order {order!r}; known: {', '.join(ORDERS)}")
        v = full_to_voigt(voigt_to_full(s, ORDERS[order]))
    elif s.shape == (9,):
        v = full_to_voigt(s.reshape(3, 3))
    else:
        raise UnitError(f"stress must be [3, 3], 9 or 6 components, got shape {s.shape}")
    if sign == "tension":
        sgn = 1.0
    elif sign == "compression":
        sgn = -1.0
    else:
        raise UnitError(f"unknown stress sign convention {sign!r}: use 'tension' or 'compression'")
    return sgn * stress_factor(unit) * v


def virial_to_stress(virial: ArrayLike, volume: float, unit: str = "eV") -> np.ndarray:
    """Virial W = -dE/d(strain) (DeePMD convention, energy units) -> ASE stress Voigt-6 = -W / V in eV/A^3."""
    w = np.asarray(virial, dtype=np.float64)
    if w.shape in ((9,), (3, 3)):
        w = w.reshape(3, 3)
    else:
        raise UnitError(f"virial must be 9 components or [3, 3], got shape {w.shape}")
    if not volume > 0:
        raise UnitError(f"volume must be positive, got {volume}")
    return -energy_factor(unit) * full_to_voigt(w) / volume


__all__ = [
    "BAR",
    "BOHR",
    "GPA",
    "HARTREE",
    "HARTREE_PER_BOHR",
    "KBAR",
    "KCAL_MOL",
    "KJ_MOL",
    "PA",
    "RYDBERG",
    "UnitError",
    "VOIGT",
    "VOIGT_ROWS",
    "VOIGT_COLS",
    "VASP_ORDER",
    "energy_factor",
    "length_factor",
    "stress_factor",
    "to_voigt",
    "full_to_voigt",
    "voigt_to_full",
    "stress_to_ase",
    "virial_to_stress",
]
