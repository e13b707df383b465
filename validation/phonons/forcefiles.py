"""Force calculations found in a reference folder: VASP vasprun.xml / OUTCAR, Quantum ESPRESSO pw.x output, or an
extended-XYZ file with forces. Each is read with ASE (so units are eV and Angstrom) and identified by content."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import cast

import numpy as np
from ase import Atoms

from gfm_ase.validation.phonons.files import FileEntry


@dataclass
class ForceCalculation:
    name: str
    atoms: Atoms  # geometry only (positions, cell, numbers)
    forces: np.ndarray  # eV/A
    energy: float | None
    code: str


def detect_format(entry: FileEntry, head: str) -> str | None:
    stem = entry.stem.lower()
    if "<modeling>" in head or (stem.startswith("vasprun") and "<?xml" in head):
        return "vasp-xml"
    if "Program PWSCF" in head or ("PWSCF" in head and "Forces acting on atoms" in head):
        return "espresso-out"
    if stem.startswith("outcar") and "vasp." in head[:2000]:
        return "vasp-out"
    lines = head.splitlines()
    if stem.endswith((".xyz", ".extxyz")) and len(lines) > 1 and "forces" in lines[1]:
        return "extxyz"
    return None


def read_force_calculation(entry: FileEntry) -> ForceCalculation | None:
    """The last structure of ``entry`` with its forces, or None when the file is not a force calculation.

    Raises ValueError when a file that looks like a force calculation cannot be read.
    """
    data = entry.read_bytes()
    head = data[:4000].decode("utf-8", errors="replace")
    fmt = detect_format(entry, head)
    if fmt is None:
        return None
    from ase.io import read

    text = data.decode("utf-8", errors="replace")
    try:
        atoms = cast(Atoms, read(io.StringIO(text), format=fmt, index=-1))
        forces = atoms.get_forces()
    except Exception as exc:
        raise ValueError(f"{entry.name}: looks like {fmt} but cannot be read: {type(exc).__name__}: {exc}") from exc
    try:
        energy = float(atoms.get_potential_energy())
    except Exception:
        energy = None
    geometry = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    return ForceCalculation(entry.name, geometry, np.asarray(forces, dtype=float), energy, fmt)


def read_force_calculations(entries: list[FileEntry]) -> tuple[list[ForceCalculation], list[str]]:
    """All force calculations among ``entries`` plus notes on files that looked like one but failed to read."""
    calcs, problems = [], []
    for e in entries:
        try:
            c = read_force_calculation(e)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if c is not None:
            calcs.append(c)
    return calcs, problems
