"""Relaxation that hands back what it was given: an ``ase.Atoms`` (a relaxed copy), a pymatgen ``Structure`` or a
pymatgen ``Molecule``.

>>> from gfm_ase import GFMCalculator, relax
>>> result = relax(structure, GFMCalculator(head="pbe"), fmax=0.01)   # pymatgen Structure in ...
>>> result.structure                                                   # ... pymatgen Structure out

Positions relax with FIRE or BFGS; the cell relaxes too (ASE's FrechetCellFilter) for structures periodic in all
three directions unless ``relax_cell=False``. The input object is never modified. Site properties of a pymatgen
input other than the coordinates (e.g. magnetic moments) are carried over to the result unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

OPTIMIZERS = ("FIRE", "BFGS")


@dataclass
class RelaxResult:
    structure: Any  # same type as the input: ase.Atoms, pymatgen Structure or Molecule
    energy: float  # eV, of the relaxed structure
    converged: bool
    steps: int
    fmax: float  # largest remaining force (generalised force with the cell filter), eV/A
    stress: np.ndarray | None = None  # Voigt-6 eV/A^3 (ASE sign) of the relaxed cell; None without a volume


def _to_atoms(structure: Any) -> tuple[Atoms, Callable[[Atoms], Any]]:
    """(ase.Atoms copy, function turning relaxed Atoms back into the input's type)."""
    from ase import Atoms

    if isinstance(structure, Atoms):
        atoms = structure.copy()
        atoms.calc = None
        return atoms, lambda a: a
    try:
        from pymatgen.core import IMolecule, IStructure
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError:  # pragma: no cover - pymatgen is a dependency
        raise TypeError(f"expected ase.Atoms, got {type(structure).__name__} (pymatgen is not installed)") from None
    if isinstance(structure, IStructure):

        def back(a: Atoms) -> Any:
            out = AseAtomsAdaptor.get_structure(a, cls=type(structure))
            return _with_site_properties(out, structure)

        return AseAtomsAdaptor.get_atoms(structure), back
    if isinstance(structure, IMolecule):

        def back_molecule(a: Atoms) -> Any:
            out = AseAtomsAdaptor.get_molecule(a, cls=type(structure))
            if hasattr(out, "set_charge_and_spin"):  # the Atoms copy lost them; an IMolecule keeps its own
                out.set_charge_and_spin(structure.charge, structure.spin_multiplicity)
            return _with_site_properties(out, structure)

        return AseAtomsAdaptor.get_atoms(structure), back_molecule
    raise TypeError(f"expected ase.Atoms or a pymatgen Structure/Molecule, got {type(structure).__name__}")


def _with_site_properties(out: Any, original: Any) -> Any:
    """``out`` with the site properties of ``original`` (the adaptor round trip may drop or rename them)."""
    for key, values in original.site_properties.items():
        out.add_site_property(key, list(values))
    return out


def relax(
    structure: Any,
    calc: Calculator,
    *,
    fmax: float = 0.01,
    steps: int = 500,
    optimizer: str = "FIRE",
    relax_cell: bool = True,
) -> RelaxResult:
    """Relax ``structure`` with the ASE calculator ``calc``; the result's ``structure`` has the input's type."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    if optimizer.upper() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (np.isfinite(fmax) and fmax > 0):
        raise ValueError(f"fmax must be a positive number, got {fmax!r}")
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    atoms, back = _to_atoms(structure)
    atoms.calc = calc
    periodic = bool(atoms.pbc.all()) and abs(atoms.cell.volume) > 1e-6
    target = FrechetCellFilter(atoms) if (relax_cell and periodic) else atoms
    opt = {"FIRE": FIRE, "BFGS": BFGS}[optimizer.upper()](target, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=int(steps)))
    remaining = float(np.sqrt((target.get_forces() ** 2).sum(axis=1).max()))
    energy = float(atoms.get_potential_energy())
    stress = np.array(atoms.get_stress(), dtype=np.float64) if periodic else None
    relaxed = atoms.copy()
    relaxed.calc = None
    return RelaxResult(back(relaxed), energy, converged, int(opt.nsteps), remaining, stress)


__all__ = ["OPTIMIZERS", "RelaxResult", "relax"]
