"""One labelled structure, as stored: :class:`StructureRecord`.

Units are ASE's: positions and cell in Angstrom, energy in eV, forces in eV/A, stress Voigt-6
(xx yy zz yz xz xy) in eV/A^3 with ASE's sign (positive = tension), charge in e, spin as the spin multiplicity
2S+1, magnetic moments in Bohr magneton. Records validate themselves on construction, so bad input fails where it
is read (the converter adds the file and record name to the message) and never reaches a store.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from gfm_ase.units import full_to_voigt

if TYPE_CHECKING:
    from ase import Atoms


class RecordError(ValueError):
    """A structure or label that cannot be stored (wrong shape, NaN, mismatched atom counts, ...)."""


def _finite(name: str, x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(np.asarray(x).reshape(len(x), -1) if x.ndim else x.reshape(1)))
        raise RecordError(f"NaN or inf in {name} (first at index {bad[0].tolist()})")


@dataclass
class StructureRecord:
    positions: np.ndarray  # [n, 3] Angstrom
    numbers: np.ndarray  # [n] atomic numbers
    cell: np.ndarray | None = None  # [3, 3] Angstrom (zeros for molecules)
    pbc: np.ndarray | None = None  # [3] bool
    energy: float | None = None  # eV (total energy)
    forces: np.ndarray | None = None  # [n, 3] eV/A
    stress: np.ndarray | None = None  # [6] eV/A^3, ASE sign, Voigt xx yy zz yz xz xy
    charge: float | None = None  # total charge, e
    spin: float | None = None  # spin multiplicity 2S+1
    magmoms: np.ndarray | None = None  # [n] Bohr magneton
    group: str = ""  # free-form tag: trajectory, material id, config type, ...
    id: str = ""  # identifier of this structure in its source

    def __post_init__(self) -> None:
        try:
            pos = np.asarray(self.positions, dtype=np.float64)
            num = np.asarray(self.numbers)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"positions/numbers are not numeric arrays: {exc}") from None
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise RecordError(f"positions must have shape [n, 3], got {pos.shape}")
        n = len(pos)
        if n == 0:
            raise RecordError("structure has no atoms")
        if num.shape != (n,):
            raise RecordError(f"{num.size} atomic numbers for {n} positions (mismatched atom counts)")
        if not np.issubdtype(num.dtype, np.integer):
            if not np.all(np.equal(np.mod(num, 1), 0)):
                raise RecordError("atomic numbers are not integers")
        num = num.astype(np.int64)
        if num.min() < 1 or num.max() > 118:
            raise RecordError(f"atomic numbers must be in 1..118, got {num.min()}..{num.max()}")
        _finite("positions", pos)
        self.positions, self.numbers = pos, num
        cell = np.zeros((3, 3)) if self.cell is None else np.asarray(self.cell, dtype=np.float64)
        if cell.shape == (3,):
            cell = np.diag(cell)
        if cell.shape != (3, 3):
            raise RecordError(f"cell must be [3, 3] (or 3 lengths), got shape {cell.shape}")
        _finite("cell", cell)
        self.cell = cell
        if self.pbc is None:
            pbc = np.abs(cell).sum(axis=1) > 0
        else:
            pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        for k in range(3):
            if pbc[k] and np.linalg.norm(cell[k]) < 1e-12:
                raise RecordError(f"periodic along axis {k} but cell vector {k} is zero")
        self.pbc = pbc
        if self.energy is not None:
            e = np.asarray(self.energy, dtype=np.float64)
            if e.size != 1:
                raise RecordError(f"energy must be one number, got shape {e.shape}")
            if not np.isfinite(e):
                raise RecordError("energy is NaN or inf")
            self.energy = float(e.reshape(()))
        if self.forces is not None:
            f = np.asarray(self.forces, dtype=np.float64)
            if f.shape != (n, 3):
                raise RecordError(f"forces have shape {f.shape} for {n} atoms (expected [{n}, 3])")
            _finite("forces", f)
            self.forces = f
        if self.stress is not None:
            s = np.asarray(self.stress, dtype=np.float64)
            if s.shape == (3, 3):
                s = full_to_voigt(s)
            if s.shape != (6,):
                raise RecordError(f"stress must be Voigt-6 or [3, 3], got shape {s.shape}")
            _finite("stress", s)
            if not pbc.all():
                raise RecordError("stress given for a structure that is not periodic in all directions")
            self.stress = s
        for name in ("charge", "spin"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.size != 1 or not np.isfinite(v):
                    raise RecordError(f"{name} must be one finite number, got {v!r}")
                setattr(self, name, float(v.reshape(())))
        if self.magmoms is not None:
            m = np.asarray(self.magmoms, dtype=np.float64)
            if m.shape != (n,):
                raise RecordError(f"magmoms have shape {m.shape} for {n} atoms (expected [{n}])")
            _finite("magmoms", m)
            self.magmoms = m
        self.group = "" if self.group is None else str(self.group)
        self.id = "" if self.id is None else str(self.id)

    @classmethod
    def trusted(cls, **values: Any) -> "StructureRecord":
        """A record of arrays that were checked when they were written (a store's columns), taken as they are: no
        validation, no conversion, no copies. Fields not given keep their defaults."""
        rec = cls.__new__(cls)
        for f in fields(cls):
            setattr(rec, f.name, values.pop(f.name, f.default))
        if values:
            raise TypeError(f"StructureRecord has no fields {sorted(values)}")
        return rec

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @classmethod
    def from_atoms(
        cls, atoms: Atoms, *, group: str = "", id: str = "", energy_key: str = "energy"
    ) -> "StructureRecord":
        """Read structure and labels (from ``atoms.calc.results`` when a calculator is attached).

        ``energy_key`` picks which energy to store ("energy" or "free_energy"). Charge and spin come from
        ``atoms.info['charge']`` / ``atoms.info['spin']`` when present.
        """
        res = dict(atoms.calc.results) if atoms.calc is not None else {}
        energy = res.get(energy_key)
        stress = res.get("stress")
        magmoms = res.get("magmoms")  # computed moments only; initial_magmoms are guesses, not labels
        return cls(
            positions=atoms.get_positions(),
            numbers=atoms.numbers,
            cell=atoms.cell.array,
            pbc=atoms.pbc,
            energy=energy,
            forces=res.get("forces"),
            stress=stress,
            charge=atoms.info.get("charge"),
            spin=atoms.info.get("spin"),
            magmoms=magmoms,
            group=group,
            id=id,
        )

    def results(self) -> dict:
        """The labels present under ASE's result names (``energy`` also as ``free_energy``; arrays copied)."""
        out: dict = {}
        if self.energy is not None:
            out["energy"] = self.energy
            out["free_energy"] = self.energy
        if self.forces is not None:
            out["forces"] = self.forces.copy()
        if self.stress is not None:
            out["stress"] = self.stress.copy()
        if self.magmoms is not None:
            out["magmoms"] = self.magmoms.copy()
        return out

    def to_atoms(self, labels: bool = True) -> Atoms:
        """``ase.Atoms`` with a SinglePointCalculator holding the labels present (``labels=False``: the structure
        alone; charge, spin, group and id are in ``atoms.info`` either way)."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        results = self.results() if labels else {}
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        if self.charge is not None:
            atoms.info["charge"] = self.charge
        if self.spin is not None:
            atoms.info["spin"] = self.spin
        if self.group:
            atoms.info["group"] = self.group
        if self.id:
            atoms.info["id"] = self.id
        return atoms
