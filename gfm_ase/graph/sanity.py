"""Physical sanity of a geometry before it is evaluated: the one check used by the calculator and by screening.

Two rules, both element-aware through the covalent radii ``r`` of :data:`ase.data.covalent_radii`; ``factor``
(default :data:`DEFAULT_FACTOR`) is the fraction of ``r_i + r_j`` below which two atoms count as overlapping.

1. **Cell rule** (periodic structures, checked first, no neighbor search): the shortest lattice translation of
   the periodic directions (after Minkowski reduction, so a skewed cell is judged by its lattice, not by its
   vectors) must be at least ``factor * 2 * r`` of the smallest atom present (else every atom overlaps its own
   periodic images), and in a 3D-periodic cell the atoms' exclusion spheres (radius ``factor * r_i``; they cannot
   overlap when rule 2 holds) must fit into the cell volume. A cell that fails holds matter far denser than any
   physical structure: the model's neighbor search would put thousands of periodic images inside the cutoff
   (the message gives the number for the model's cutoff) and the energy is a meaningless number (1e20 eV for Si in
   a 0.5 A cell). This rule is a necessary condition of rule 2; it only refuses earlier, cheaply and with a
   clearer message.
2. **Pair rule**: every pair, periodic images (and an atom's own images) included, is at least
   ``factor * (r_i + r_j)`` apart.

``DEFAULT_FACTOR = 0.4``: over the 15 converted stores of this project (72,214 structures of real DFT, surrogate
and generated data: MD, rattled, strained and compressed cells included) the smallest ``d_ij / (r_i + r_j)`` is
0.485 (fitsnap_Fe: a bcc Fe cell compressed to 8.3 A^3/atom, real DFT), so 0.4 refuses none of them with an 18%
margin, while two Si atoms 0.4 A apart (ratio 0.18), Si in a 0.5 A cell (0.23) or an image 0.30 A away are refused.
docs/bad-input.md gives the per-store table and the command. ``factor=0`` (or None) disables the check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
import vesin
from ase.data import chemical_symbols, covalent_radii
from ase.geometry import minkowski_reduce
from numpy.typing import ArrayLike

from gfm_ase.graph.neighbors import StructureError

if TYPE_CHECKING:
    from ase import Atoms

DEFAULT_FACTOR = 0.4
_PACKING = 1.0  # exclusion spheres cannot fill more than the whole cell (loose on purpose: mixed radii pack densely)


class GeometryError(StructureError):
    """A geometry refused by the sanity check (overlapping atoms or a cell too small for its atoms)."""


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z{z}"


def check_factor(factor: Any) -> float:
    """The validated factor (0.0 when disabled); raises ValueError for anything but a finite number in [0, 1]."""
    if factor is None or factor is False:
        return 0.0
    try:
        value = float(factor)
    except (TypeError, ValueError):
        raise ValueError(f"min_distance_factor must be a number in [0, 1] (0 disables), got {factor!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"min_distance_factor must be a number in [0, 1] (0 disables), got {factor!r}")
    return value


@dataclass(frozen=True)
class SanityCheck:
    """The geometry check with its setting; ``cutoff`` (the model's, Angstrom) only enters the messages."""

    factor: float = DEFAULT_FACTOR
    cutoff: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", check_factor(self.factor))

    @property
    def enabled(self) -> bool:
        return self.factor > 0.0

    def problem(self, positions: ArrayLike, numbers: ArrayLike, cell: ArrayLike, pbc: ArrayLike) -> str | None:
        """What is wrong with the geometry (one line), or None when it passes (or the check is disabled)."""
        if not self.enabled:
            return None
        positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        if len(numbers) == 0:
            return None  # emptiness is the caller's own error
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        pbc = np.asarray(pbc, dtype=bool).reshape(3)
        if not (np.isfinite(positions).all() and np.isfinite(cell).all()):
            return None  # non-finite input is the caller's (and the graph builder's) own error
        radii = covalent_radii[np.clip(numbers, 0, len(covalent_radii) - 1)]
        reduced = None
        if pbc.any():
            msg, reduced = self._cell_problem(numbers, radii, cell, pbc)
            if msg is not None:
                return msg
        return self._pair_problem(positions, numbers, radii, reduced, pbc)

    def check(self, positions: ArrayLike, numbers: ArrayLike, cell: ArrayLike, pbc: ArrayLike) -> None:
        """Raise :class:`GeometryError` when the geometry fails the check."""
        msg = self.problem(positions, numbers, cell, pbc)
        if msg is not None:
            raise GeometryError(msg)

    def check_atoms(self, atoms: Atoms) -> None:
        self.check(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)

    # --- rule 1 ---------------------------------------------------------------------------------------------
    def _cell_problem(
        self, numbers: np.ndarray, radii: np.ndarray, cell: np.ndarray, pbc: np.ndarray
    ) -> tuple[str | None, np.ndarray | None]:
        periodic = [k for k in range(3) if pbc[k]]
        if any(np.linalg.norm(cell[k]) < 1e-8 for k in periodic):
            return None, None  # a zero periodic vector is the graph builder's error
        try:
            reduced, _ = minkowski_reduce(cell, pbc)
        except Exception:  # a singular periodic part: left to the graph builder's own message
            return None, None
        shortest = min(float(np.linalg.norm(reduced[k])) for k in periodic)
        k_small = int(np.argmin(radii))
        need = self.factor * 2.0 * float(radii[k_small])
        if shortest < need:
            return (
                f"cell too small: a periodic image of each atom is {shortest:.3f} A away, closer than "
                f"{need:.3f} A ({self.factor} x 2 x covalent radius of {_symbol(int(numbers[k_small]))})"
                f"{self._images(reduced, pbc)}; refused (min_distance_factor={self.factor})"
            ), None
        if pbc.all():
            volume = abs(float(np.linalg.det(reduced)))
            spheres = float(np.sum(4.0 / 3.0 * np.pi * (self.factor * radii) ** 3)) / _PACKING
            if volume < spheres:
                return (
                    f"cell too small: {volume:.3g} A^3 for {len(numbers)} atoms whose exclusion spheres "
                    f"({self.factor} x covalent radius) need {spheres:.3g} A^3, so atoms overlap"
                    f"{self._images(reduced, pbc)}; refused (min_distance_factor={self.factor})"
                ), None
        return None, reduced

    def _images(self, reduced: np.ndarray, pbc: np.ndarray) -> str:
        if not self.cutoff:
            return ""
        volume = abs(float(np.linalg.det(reduced))) if pbc.all() else None
        count = 1
        for k in range(3):
            if pbc[k]:
                a, b = reduced[(k + 1) % 3], reduced[(k + 2) % 3]
                area = float(np.linalg.norm(np.cross(a, b)))
                width = (volume / area) if (volume and area > 0) else float(np.linalg.norm(reduced[k]))
                count *= 2 * math.ceil(self.cutoff / max(width, 1e-12)) + 1
        return f"; the {self.cutoff:g} A cutoff would span {count:,} periodic image cells"

    # --- rule 2 ---------------------------------------------------------------------------------------------
    def _pair_problem(
        self, positions: np.ndarray, numbers: np.ndarray, radii: np.ndarray, reduced: np.ndarray | None, pbc: np.ndarray
    ) -> str | None:
        if len(numbers) == 1 and not pbc.any():
            return None
        reach = self.factor * 2.0 * float(radii.max())  # no pair beyond this can fail
        if reach <= 0:
            return None
        if pbc.any():
            box = reduced
            if box is None or abs(np.linalg.det(box)) < 1e-8:
                box = _padded_box(reduced if reduced is not None else np.zeros((3, 3)), pbc, positions, reach)
            if abs(np.linalg.det(box)) < 1e-8:
                return None  # a zero periodic vector: the graph builder's own error names it
            nl = vesin.NeighborList(cutoff=reach, full_list=False)
            i, j, d = nl.compute(positions, box, pbc, "ijd")
        else:
            nl = vesin.NeighborList(cutoff=reach, full_list=False)
            i, j, d = nl.compute(positions, np.zeros((3, 3)), False, "ijd")
        if len(d) == 0:
            return None
        i = i.astype(np.int64)
        j = j.astype(np.int64)
        ratio = d / (radii[i] + radii[j])
        k = int(np.argmin(ratio))
        if ratio[k] >= self.factor:
            return None
        si, sj = _symbol(int(numbers[i[k]])), _symbol(int(numbers[j[k]]))
        what = "its own periodic image" if i[k] == j[k] else f"atom {j[k]} ({sj})"
        return (
            f"overlapping atoms: atom {i[k]} ({si}) and {what} are {d[k]:.3f} A apart, closer than "
            f"{self.factor * (radii[i[k]] + radii[j[k]]):.3f} A ({self.factor} x sum of covalent radii); "
            f"refused (min_distance_factor={self.factor})"
        )


def _padded_box(cell: np.ndarray, pbc: np.ndarray, positions: np.ndarray, reach: float) -> np.ndarray:
    """A non-singular box for a partially periodic structure: missing non-periodic vectors are made long."""
    box = np.array(cell, dtype=np.float64, copy=True)
    length = float(np.ptp(positions, axis=0).max()) + 2.0 * reach + 10.0
    for k in range(3):
        if not pbc[k] and np.linalg.norm(box[k]) < 1e-8:
            others = [box[m] for m in range(3) if m != k]
            n = np.cross(others[0], others[1])
            if np.linalg.norm(n) < 1e-8:
                a = others[0] if np.linalg.norm(others[0]) > 1e-8 else others[1]
                n = np.cross(a, np.eye(3)[np.argmin(np.abs(a))])
            box[k] = n / np.linalg.norm(n) * length
    return box


def min_distance_ratio(
    positions: ArrayLike, numbers: ArrayLike, cell: ArrayLike, pbc: ArrayLike, reach: float = 3.0
) -> float:
    """Smallest ``d_ij / (r_i + r_j)`` over pairs closer than ``reach`` (inf when none): the quantity the pair rule
    compares with ``factor`` (used to choose :data:`DEFAULT_FACTOR` from data)."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    radii = covalent_radii[np.clip(numbers, 0, len(covalent_radii) - 1)]
    if pbc.any():
        box, _ = minkowski_reduce(cell, pbc)
        if abs(np.linalg.det(box)) < 1e-8:
            box = _padded_box(box, pbc, positions, reach)
    else:
        box = np.zeros((3, 3))
    nl = vesin.NeighborList(cutoff=reach, full_list=False)
    i, j, d = nl.compute(positions, box, pbc if pbc.any() else False, "ijd")
    if len(d) == 0:
        return math.inf
    return float(np.min(d / (radii[i.astype(np.int64)] + radii[j.astype(np.int64)])))


def scan_stores(
    paths: Iterable[str | Path], factor: float = DEFAULT_FACTOR, log: Callable[[str], object] | None = print
) -> list[dict]:
    """Per store: structures, the smallest ``d_ij / (r_i + r_j)`` (and where), how many ``factor`` would refuse.
    ``python -m gfm_ase.graph.sanity STORE...`` prints this table (how :data:`DEFAULT_FACTOR` was chosen)."""
    from gfm_ase.data.store import Store

    check = SanityCheck(factor)
    rows = []
    for path in paths:
        store = Store(path)
        worst, where, refused = math.inf, None, 0
        for i in range(len(store)):
            r = store[i]
            cell, pbc = np.asarray(r.cell), np.asarray(r.pbc)  # a record's cell and pbc are always set
            ratio = min_distance_ratio(r.positions, r.numbers, cell, pbc)
            if ratio < worst:
                worst, where = ratio, f"{i} ({r.group or r.id})"
            refused += check.problem(r.positions, r.numbers, cell, pbc) is not None
        rows.append({"store": str(path), "n": len(store), "min_ratio": worst, "where": where, "refused": refused})
        if log is not None:
            log(
                f"{Path(path).name:28s} {len(store):7d} structures  min d/(r_i+r_j) {worst:.3f} at {where}  "
                f"refused at factor {factor}: {refused}"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m gfm_ase.graph.sanity",
        description="smallest d_ij/(r_i+r_j) per store and the structures a factor refuses",
    )
    p.add_argument("stores", nargs="+")
    p.add_argument("--factor", type=float, default=DEFAULT_FACTOR)
    args = p.parse_args(argv)
    rows = scan_stores(args.stores, args.factor)
    print(
        f"total {sum(r['n'] for r in rows)} structures, smallest ratio {min(r['min_ratio'] for r in rows):.3f}, "
        f"refused {sum(r['refused'] for r in rows)}"
    )
    return 0


__all__ = ["DEFAULT_FACTOR", "GeometryError", "SanityCheck", "check_factor", "min_distance_ratio", "scan_stores"]

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
