"""Small conversions between ASE and phonopy, and phonopy displacement datasets (type 1: one atom displaced per
supercell, ``first_atoms``; type 2: all atoms, ``displacements``/``forces`` arrays)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from ase import Atoms

if TYPE_CHECKING:
    from phonopy.structure.atoms import PhonopyAtoms

# a phonopy displacement dataset as a plain dict (phonopy's own TypedDicts, DisplacementDataset, are read as Mappings)
Dataset = dict[str, Any]


def to_phonopy_atoms(atoms: Atoms) -> PhonopyAtoms:
    from phonopy.structure.atoms import PhonopyAtoms

    magmoms = atoms.get_initial_magnetic_moments() if atoms.has("initial_magmoms") else None
    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(wrap=False),
        masses=atoms.get_masses(),
        magnetic_moments=magmoms,
    )


def to_ase_atoms(cell: PhonopyAtoms, scale_length: float = 1.0) -> Atoms:
    """ase.Atoms from a PhonopyAtoms, lengths multiplied by ``scale_length`` (e.g. Bohr -> A)."""
    atoms = Atoms(
        symbols=cell.symbols,
        cell=np.asarray(cell.cell) * scale_length,
        scaled_positions=cell.scaled_positions,
        pbc=True,
    )
    if cell.masses is not None:
        atoms.set_masses(cell.masses)
    if cell.magnetic_moments is not None:
        atoms.set_initial_magnetic_moments(cell.magnetic_moments)
    return atoms


def dataset_type(dataset: Mapping[str, Any]) -> int:
    if "first_atoms" in dataset:
        return 1
    if "displacements" in dataset:
        return 2
    raise ValueError("not a phonopy displacement dataset (needs 'first_atoms' or 'displacements')")


def n_displacements(dataset: Mapping[str, Any]) -> int:
    return len(dataset["first_atoms"]) if dataset_type(dataset) == 1 else len(dataset["displacements"])


def has_forces(dataset: Mapping[str, Any] | None) -> bool:
    if not dataset:
        return False
    if dataset_type(dataset) == 1:
        return bool(dataset["first_atoms"]) and all("forces" in d for d in dataset["first_atoms"])
    return "forces" in dataset


def displacement_patterns(dataset: Mapping[str, Any], natom: int) -> list[np.ndarray]:
    """Per displaced supercell, the [natom, 3] displacement of every atom (A)."""
    if dataset_type(dataset) == 2:
        return [np.asarray(u, dtype=float) for u in dataset["displacements"]]
    out = []
    for d in dataset["first_atoms"]:
        u = np.zeros((natom, 3))
        u[d["number"]] = d["displacement"]
        out.append(u)
    return out


def scaled_dataset(dataset: Mapping[str, Any], length: float = 1.0, force: float = 1.0) -> Dataset:
    """A copy with displacements x ``length`` and forces x ``force`` (unit conversion to A and eV/A)."""
    ds = cast(Dataset, copy.deepcopy(dataset))
    if dataset_type(ds) == 1:
        for d in ds["first_atoms"]:
            d["displacement"] = np.asarray(d["displacement"], dtype=float) * length
            if "forces" in d:
                d["forces"] = np.asarray(d["forces"], dtype=float) * force
    else:
        ds["displacements"] = np.asarray(ds["displacements"], dtype=float) * length
        if "forces" in ds:
            ds["forces"] = np.asarray(ds["forces"], dtype=float) * force
    return ds


def with_forces(dataset: Mapping[str, Any], forces: list[np.ndarray]) -> Dataset:
    """A copy of ``dataset`` holding ``forces`` (one [natom, 3] array per displaced supercell)."""
    if len(forces) != n_displacements(dataset):
        raise ValueError(f"{len(forces)} force sets for {n_displacements(dataset)} displacements")
    ds = cast(Dataset, copy.deepcopy(dataset))
    if dataset_type(ds) == 1:
        for d, f in zip(ds["first_atoms"], forces):
            d["forces"] = np.asarray(f, dtype=float)
    else:
        ds["forces"] = np.asarray(forces, dtype=float)
    return ds


def without_forces(dataset: Mapping[str, Any]) -> Dataset:
    ds = cast(Dataset, copy.deepcopy(dataset))
    if dataset_type(ds) == 1:
        for d in ds["first_atoms"]:
            d.pop("forces", None)
    else:
        ds.pop("forces", None)
    return ds


def displacement_distance(dataset: Mapping[str, Any]) -> float:
    """The largest single-atom displacement length (A) in the dataset."""
    pats = dataset["first_atoms"] if dataset_type(dataset) == 1 else None
    if pats is not None:
        return float(max(np.linalg.norm(d["displacement"]) for d in pats))
    return float(np.linalg.norm(np.asarray(dataset["displacements"]), axis=-1).max())
