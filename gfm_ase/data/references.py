"""Per-element reference energies fitted by least squares on the training split only.

E_total(structure) ~ sum_Z count_Z * e_Z. The fit uses only the indices given (pass the training split: fitting on
all data would leak test energies into the model's offsets). Elements that never appear in those structures get
no reference; elements whose counts are collinear (e.g. every structure is H2O) are not separately identifiable:
the minimum-norm solution is returned, which still reproduces the energy per formula unit, and a warning is given.
"""

from __future__ import annotations

import warnings
from typing import Protocol, Sequence

import numpy as np
from ase.data import chemical_symbols
from numpy.typing import ArrayLike


class LabelledSet(Protocol):
    """What the fit reads: a :class:`~gfm_ase.data.store.Store` or a union of stores."""

    def __len__(self) -> int: ...

    @property
    def energies(self) -> np.ndarray: ...

    def composition(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def fit_reference_energies(
    store: LabelledSet,
    indices: Sequence[int] | np.ndarray | None = None,
    *,
    ridge: float = 0.0,
    return_residuals: bool = False,
) -> dict[str, float] | tuple[dict[str, float], np.ndarray]:
    """Least-squares elemental energies (eV) from the structures ``indices`` of ``store`` that have an energy.

    Returns ``{symbol: eV}`` (and with ``return_residuals`` also the per-structure residuals in eV). ``ridge`` adds
    an L2 penalty (eV^-2 scale-free: on the normal equations, relative to the mean squared count).
    """
    n = len(store)
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) == 0:
        raise ValueError("no structures to fit reference energies on")
    energies = np.asarray(store.energies, dtype=np.float64)[idx]
    has = np.isfinite(energies)
    if not has.any():
        raise ValueError("none of the given structures has an energy label")
    zs, counts = store.composition(idx)
    A = counts[has].astype(np.float64)
    b = energies[has]
    present = A.sum(axis=0) > 0
    A, zs = A[:, present], zs[present]
    if ridge > 0:
        lam = ridge * float(np.mean(A**2))
        coef = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ b)
    else:
        coef, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
        if rank < A.shape[1]:
            warnings.warn(
                f"element counts have rank {rank} < {A.shape[1]} elements: reference energies are not "
                "separately identifiable (minimum-norm solution returned)",
                stacklevel=2,
            )
    refs = {chemical_symbols[int(z)]: float(c) for z, c in zip(zs, coef)}
    if return_residuals:
        return refs, b - A @ coef
    return refs


def reference_energy_of(numbers: ArrayLike, refs: dict[str, float]) -> float:
    """Sum of the reference energies of the atoms ``numbers`` (KeyError names a missing element)."""
    total = 0.0
    for z in np.asarray(numbers, dtype=np.int64):
        sym = chemical_symbols[int(z)]
        if sym not in refs:
            raise KeyError(f"no reference energy for element {sym}")
        total += refs[sym]
    return total


__all__ = ["fit_reference_energies", "reference_energy_of"]
