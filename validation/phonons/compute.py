"""Force constants from a reference and from a calculator (optionally after relaxing the unit cell with it)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from gfm_ase.validation.phonons import phonopy_io as pio
from gfm_ase.validation.phonons.reference import PhononReference

if TYPE_CHECKING:
    from phonopy import Phonopy
    from phonopy.harmonic.displacement import DisplacementDataset
    from phonopy.structure.atoms import PhonopyAtoms


@dataclass
class CalculatorPhonons:
    phonopy: Phonopy
    relaxed: bool
    residual_force_max: float  # max |F| (eV/A) on the undisplaced supercell
    n_force_calls: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def produce_force_constants(ph: Phonopy, dataset: Mapping[str, Any]) -> None:
    """Set ``dataset`` (with forces) on ``ph`` and compute full force constants (symfc for type-2 data)."""
    ph.dataset = cast("DisplacementDataset", dataset)
    if pio.dataset_type(dataset) == 1:
        ph.produce_force_constants()
    else:
        ph.produce_force_constants(fc_calculator="symfc")


def reference_phonopy(ref: PhononReference, nac: bool = True) -> Phonopy:
    """Phonopy with the reference's own force constants."""
    ph = ref.phonopy(nac=nac)
    if ref.force_constants is not None:
        ph.force_constants = ref.force_constants
    else:
        assert ref.dataset is not None  # a reference holds forces or force constants (reference.py)
        produce_force_constants(ph, ref.dataset)
    return ph


def supercell_forces(calc: BaseCalculator, cells: Iterable[PhonopyAtoms]) -> list[np.ndarray]:
    out = []
    for c in cells:
        atoms = pio.to_ase_atoms(c)
        atoms.calc = calc
        out.append(np.array(atoms.get_forces(), dtype=float))
    return out


def relax_unitcell(
    ref: PhononReference, calc: BaseCalculator, fmax: float = 1e-3, steps: int = 1000, optimizer: str = "BFGS"
) -> tuple[Atoms, dict[str, Any]]:
    """The reference unit cell relaxed by ``calc`` (positions and cell, space group kept)."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    atoms = ref.unitcell.copy()
    atoms.calc = calc
    atoms.set_constraint(FixSymmetry(atoms))
    opt = {"BFGS": BFGS, "FIRE": FIRE}[optimizer.upper()](FrechetCellFilter(atoms), logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    atoms.set_constraint()
    info = {
        "relax_converged": converged,
        "relax_steps": int(opt.nsteps),
        "volume_change_pct": 100.0 * (atoms.get_volume() / ref.unitcell.get_volume() - 1.0),
    }
    atoms.calc = None
    return atoms, info


def calculator_phonopy(
    ref: PhononReference,
    calc: BaseCalculator,
    *,
    relax: bool = False,
    subtract_residual: bool = True,
    nac: bool = True,
    fmax: float = 1e-3,
    optimizer: str = "BFGS",
    distance: float | None = None,
    phonopy: Phonopy | None = None,
) -> CalculatorPhonons:
    """Force constants of ``calc`` for the reference's supercell and displacements.

    relax: relax the unit cell with ``calc`` first (keeping its symmetry) and use fresh displacements of the
      reference's amplitude; otherwise the reference's own displaced supercells are recomputed.
    phonopy: reuse this Phonopy object of the reference cell (not with relax; its symmetry search is the slow
      part); its dataset and force constants are replaced.
    subtract_residual: subtract the calculator's forces on the undisplaced supercell (non-zero when the reference
      geometry is not a minimum of the calculator) from every displaced supercell, as ``phonopy --fz`` does.
    """
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    dataset: Mapping[str, Any] | None
    amplitude = distance or (pio.displacement_distance(ref.dataset) if ref.dataset else 0.01)
    if relax:
        unitcell, info = relax_unitcell(ref, calc, fmax=fmax, optimizer=optimizer)
        ph = ref.phonopy(unitcell=unitcell, nac=nac)
        ph.generate_displacements(distance=amplitude)
        dataset = ph.dataset
    else:
        ph = phonopy if phonopy is not None else ref.phonopy(nac=nac)
        if ref.dataset is not None:
            dataset = pio.without_forces(ref.dataset)
            ph.dataset = cast("DisplacementDataset", dataset)
        else:  # reference gave force constants only
            ph.generate_displacements(distance=amplitude)
            dataset = ph.dataset
    cells = ph.supercells_with_displacements
    assert dataset is not None and cells is not None  # the displacements just set or generated
    forces = supercell_forces(calc, cells)
    residual = supercell_forces(calc, [ph.supercell])[0]
    if subtract_residual:
        forces = [f - residual for f in forces]
    drift = max(float(np.linalg.norm(f.mean(axis=0))) for f in forces)
    forces = [f - f.mean(axis=0) for f in forces]  # net force removed, as phonopy does for DFT forces
    info["max_drift_eV_A"] = drift
    produce_force_constants(ph, pio.with_forces(dataset, forces))
    return CalculatorPhonons(
        ph, relax, float(np.linalg.norm(residual, axis=1).max()), len(cells) + 1, time.perf_counter() - t0, info
    )
