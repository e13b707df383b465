"""Radius graphs for molecules, slabs and bulk crystals (vesin neighbor lists).

Convention (used everywhere in gfm-ase): an edge ``(i, j)`` with integer cell shift ``S`` has the vector
``r_ij = x_j - x_i + S @ cell``; messages flow from the neighbor ``j`` to the centre ``i``. All periodic images
inside the cutoff are included, also when the cell is smaller than the cutoff.
"""

from __future__ import annotations

import numpy as np
import vesin


class StructureError(ValueError):
    """A structure that cannot be evaluated (empty, non-finite, overlapping atoms, ...)."""


def _complete_cell(cell: np.ndarray, pbc: np.ndarray, positions: np.ndarray, cutoff: float) -> np.ndarray:
    """Return a non-singular box for the neighbor search.

    Non-periodic directions with a zero (or degenerate) cell vector get a vector orthogonal to the others that is
    long enough to never create spurious images; the edges along it never carry a shift, so the choice does not
    enter the model.
    """
    cell = np.array(cell, dtype=np.float64, copy=True)
    if not pbc.any():
        return np.zeros((3, 3))
    if abs(np.linalg.det(cell)) > 1e-8:
        return cell
    span = float(np.ptp(positions, axis=0).max()) if len(positions) else 0.0
    length = span + 2.0 * cutoff + 10.0
    for k in range(3):
        if pbc[k] and np.linalg.norm(cell[k]) < 1e-8:
            raise StructureError(f"cell vector {k} is zero but the structure is periodic along it")
    for k in range(3):
        if not pbc[k] and np.linalg.norm(cell[k]) < 1e-8:
            others = [cell[m] for m in range(3) if m != k]
            n = np.cross(others[0], others[1])
            if np.linalg.norm(n) < 1e-8:  # only one periodic vector (a wire): pick any orthogonal direction
                a = others[0] if np.linalg.norm(others[0]) > 1e-8 else others[1]
                trial = np.eye(3)[np.argmin(np.abs(a))]
                n = np.cross(a, trial)
            cell[k] = n / np.linalg.norm(n) * length
    if abs(np.linalg.det(cell)) < 1e-8:
        raise StructureError("the cell is singular")
    return cell


def radius_graph(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    cutoff: float,
    max_neighbors: int | None = None,
    min_distance: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs closer than ``cutoff``.

    Returns ``edge_index`` (int64 ``[2, E]``, rows: centre i, neighbor j) and integer ``shifts`` (float64 ``[E, 3]``).
    ``max_neighbors`` keeps the nearest ones per centre (ties broken by order; this makes the energy discontinuous,
    so it is off by default). ``min_distance`` raises :class:`StructureError` if two atoms are closer.
    """
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    n = len(positions)
    if n == 0:
        raise StructureError("empty structure (no atoms)")
    if not np.isfinite(positions).all():
        raise StructureError("positions contain NaN or inf")
    if not np.isfinite(np.asarray(cell, dtype=np.float64)).all():
        raise StructureError("cell contains NaN or inf")
    box = _complete_cell(np.asarray(cell, dtype=np.float64).reshape(3, 3), pbc, positions, cutoff)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s, d = nl.compute(positions, box, pbc if pbc.any() else False, "ijSd")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    s = s.astype(np.float64)
    if min_distance is not None and len(d) and d.min() < min_distance:
        k = int(np.argmin(d))
        raise StructureError(
            f"atoms {i[k]} and {j[k]} are {d[k]:.3f} A apart (closer than min_distance={min_distance} A): "
            "overlapping atoms"
        )
    if max_neighbors is not None and len(i):
        order = np.lexsort((d, i))  # by centre, then distance
        i, j, s, d = i[order], j[order], s[order], d[order]
        first = np.searchsorted(i, i, side="left")
        rank = np.arange(len(i)) - first
        keep = rank < max_neighbors
        i, j, s = i[keep], j[keep], s[keep]
    return np.stack([i, j]), s
