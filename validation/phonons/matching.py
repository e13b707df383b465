"""Which displaced supercell a force calculation belongs to, and in which atom order.

Force files do not say which displacement they hold, and another code may order atoms differently. We map the
file's atoms onto the perfect supercell (same species, nearest periodic image, one global translation allowed),
then compare the remaining per-atom displacement pattern with every expected displacement pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms


@dataclass
class Match:
    index: int | None  # which expected pattern (None: the perfect supercell)
    permutation: np.ndarray  # file atom permutation[i] <-> supercell atom i
    error: float  # max deviation (A) from the expected pattern


def _min_image(delta_frac: np.ndarray) -> np.ndarray:
    return delta_frac - np.round(delta_frac)


def map_atoms(
    cell: np.ndarray,
    numbers: np.ndarray,
    positions: np.ndarray,
    other_cell: np.ndarray,
    other_numbers: np.ndarray,
    other_positions: np.ndarray,
    tol: float = 0.3,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Permutation p with other[p[i]] ~ self[i] (up to one global translation) or None when they differ.

    Returns (p, displacements) where displacements[i] is the Cartesian minimum-image offset of other[p[i]] from
    self[i] after removing the median (global) translation.
    """
    n = len(numbers)
    if len(other_numbers) != n or sorted(numbers.tolist()) != sorted(other_numbers.tolist()):
        return None
    scale = np.abs(cell).max()
    if np.abs(np.asarray(other_cell) - cell).max() > 1e-3 * scale:
        return None
    inv = np.linalg.inv(cell)
    frac = positions @ inv
    ofrac = other_positions @ inv
    # one global translation, the smallest that maps the atoms onto the supercell: a lattice translation of a
    # perfect crystal would relabel the atoms (and move the displaced atom onto another site), so try the
    # candidate offsets of atom 0 from the smallest up
    first = 0
    candidates = np.flatnonzero(other_numbers == numbers[first])
    shifts = _min_image(ofrac[candidates] - frac[first])
    order = np.argsort(np.linalg.norm(shifts @ cell, axis=1))
    for k in order:
        shift = shifts[k]
        d = _min_image(ofrac[None, :, :] - shift - frac[:, None, :])  # [n, n, 3]
        dist = np.linalg.norm(d @ cell, axis=-1)
        dist[numbers[:, None] != other_numbers[None, :]] = np.inf
        p = dist.argmin(axis=1)
        if len(set(p.tolist())) != n or dist[np.arange(n), p].max() > tol:
            continue
        disp = d[np.arange(n), p] @ cell
        disp -= np.median(disp, axis=0)
        return p, disp
    return None


def identify(perfect: Atoms, patterns: list[np.ndarray], other: Atoms, tol: float = 0.3) -> Match | None:
    """Match ``other`` (ase.Atoms) to one of the displacement ``patterns`` ([n,3] arrays, A) of ``perfect``.

    Returns None when the atoms do not map onto the perfect supercell or when no pattern fits within a quarter of
    its largest displacement; index None means ``other`` is the undisplaced supercell.
    """
    m = map_atoms(
        np.asarray(perfect.cell),
        np.asarray(perfect.numbers),
        np.asarray(perfect.positions),
        np.asarray(other.cell),
        np.asarray(other.numbers),
        np.asarray(other.positions),
        tol,
    )
    if m is None:
        return None
    p, disp = m
    errors = [np.linalg.norm(disp - (u - np.median(u, axis=0)), axis=1).max() for u in patterns]
    amplitude = min([np.linalg.norm(u, axis=1).max() for u in patterns] or [0.01])
    best = int(np.argmin(errors)) if errors else None
    perfect_err = np.linalg.norm(disp, axis=1).max()
    if (
        best is not None
        and errors[best] < 0.25 * np.linalg.norm(patterns[best], axis=1).max()
        and errors[best] < perfect_err
    ):
        return Match(best, p, float(errors[best]))
    if perfect_err < 0.25 * amplitude:
        return Match(None, p, float(perfect_err))
    return None
