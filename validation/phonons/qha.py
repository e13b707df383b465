"""Quasi-harmonic reference folders: unit cells at several volumes with phonopy ``thermal_properties.yaml-<tag>``
outputs (DFT phonon thermodynamics) and/or ``e-v.dat`` (DFT energy per cell vs volume), as read by
``phonopy-qha``. These hold no forces, so the calculator's phonons are compared through thermodynamics
(free energy, entropy, heat capacity per atom vs temperature) and its E(V) through a Birch-Murnaghan fit.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from gfm_ase.validation.phonons.files import FileEntry

SUPERCELL_MIN_LENGTH = 6.5  # A: default supercell when a QHA folder does not say (each lattice vector >= this)


@dataclass
class ThermalReference:
    """DFT phonon thermodynamics of one unit cell (phonopy ``thermal_properties.yaml``), per unit cell."""

    name: str
    folder: Path
    unitcell: Atoms
    natom: int  # atoms per cell the yaml refers to
    temperatures: np.ndarray
    free_energy: np.ndarray  # kJ/mol
    entropy: np.ndarray  # J/K/mol
    heat_capacity: np.ndarray  # J/K/mol
    supercell_matrix: np.ndarray
    mesh: object = 50.0  # phonopy mesh for the calculator (numbers or a length)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class EVReference:
    """DFT energy per cell at several volumes (``e-v.dat``) with the matching unit cells."""

    name: str
    folder: Path
    cells: list[tuple[str, Atoms]]
    volumes: np.ndarray  # A^3 per cell
    energies: np.ndarray  # eV per cell
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_NUM = r"([-+0-9.eE]+)"
_ROW = re.compile(
    r"-\s*temperature:\s*"
    + _NUM
    + r"\s+free_energy:\s*"
    + _NUM
    + r"\s+entropy:\s*"
    + _NUM
    + r"\s+heat_capacity:\s*"
    + _NUM
)


def _header(text: str, key: str) -> float | None:
    m = re.search(rf"^{key}:\s*{_NUM}\s*$", text, re.M)
    return None if m is None else float(m.group(1))


def read_thermal_yaml(e: FileEntry) -> dict[str, Any]:
    """phonopy's thermal_properties.yaml (free energy kJ/mol, entropy and heat capacity J/K/mol, per cell).

    Parsed with regular expressions for speed (these files are long); a file that does not fit the layout is
    read with PyYAML instead.
    """
    text = e.text()
    rows = _ROW.findall(text)
    natom = _header(text, "natom")
    if not rows or natom is None:
        import yaml

        try:
            doc = yaml.safe_load(text)
            rows = [
                (r["temperature"], r["free_energy"], r["entropy"], r["heat_capacity"])
                for r in doc["thermal_properties"]
            ]
            natom = doc["natom"]
        except Exception as exc:
            raise ValueError(f"{e.name}: not a phonopy thermal_properties.yaml ({type(exc).__name__}: {exc})") from exc
    table = np.array(rows, dtype=float)
    num_modes = _header(text, "num_modes")
    return {
        "temperature": table[:, 0],
        "free_energy": table[:, 1],
        "entropy": table[:, 2],
        "heat_capacity": table[:, 3],
        "natom": int(natom),
        "volume": _header(text, "volume"),
        "num_modes": None if num_modes is None else int(num_modes),
    }


def read_ev(e: FileEntry) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.loadtxt(io.StringIO(e.text()), comments="#", ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{e.name}: expected two columns, volume (A^3) and energy (eV): {exc}") from exc
    if data.shape[1] < 2 or len(data) < 1:
        raise ValueError(f"{e.name}: expected two columns, volume (A^3) and energy (eV)")
    return data[:, 0], data[:, 1]


def default_supercell(cell: np.ndarray, min_length: float = SUPERCELL_MIN_LENGTH) -> np.ndarray:
    lengths = np.linalg.norm(np.asarray(cell), axis=1)
    return np.diag([max(1, math.ceil(min_length / L - 1e-9)) for L in lengths])


def qha_references(
    folder: Path,
    name: str,
    entries: list[FileEntry],
    cells: list[tuple[str, Atoms]],
    supercell_matrix: np.ndarray | None = None,
    with_thermal: bool = True,
) -> list[ThermalReference | EVReference]:
    """ThermalReference per ``POSCAR-<tag>`` with a ``thermal_properties.yaml-<tag>``, and an EVReference when
    ``e-v.dat`` volumes match the cells."""
    refs: list[ThermalReference | EVReference] = []
    by_stem = {e.stem: e for e in entries}
    if with_thermal:
        for cell_name, atoms in cells:
            tag = cell_name.split("-", 1)[1] if "-" in cell_name else None
            e = by_stem.get(f"thermal_properties.yaml-{tag}") if tag is not None else None
            if e is None:
                continue
            t = read_thermal_yaml(e)
            notes = []
            if t["natom"] != len(atoms):
                notes.append(f"{e.name} is per {t['natom']} atoms, {cell_name} has {len(atoms)}")
            if t["volume"] is not None and abs(t["volume"] / atoms.get_volume() * len(atoms) / t["natom"] - 1) > 1e-3:
                raise ValueError(
                    f"{e.name} (V={t['volume']:.3f}) does not belong to {cell_name} (V={atoms.get_volume():.3f})"
                )
            smat = supercell_matrix if supercell_matrix is not None else default_supercell(atoms.cell)
            if supercell_matrix is None:
                notes.append(
                    f"supercell {np.diag(smat).tolist()} chosen (each vector >= {SUPERCELL_MIN_LENGTH} A; "
                    "the folder does not say; override with --supercell)"
                )
            refs.append(
                ThermalReference(
                    f"{name}/{cell_name}",
                    folder,
                    atoms,
                    t["natom"],
                    t["temperature"],
                    t["free_energy"],
                    t["entropy"],
                    t["heat_capacity"],
                    np.asarray(smat),
                    sources=[cell_name, e.name],
                    notes=notes,
                )
            )
    ev = by_stem.get("e-v.dat")
    if ev is not None and cells:
        v, en = read_ev(ev)
        matched, vols, energies, unmatched = [], [], [], []
        for cell_name, atoms in cells:
            i = int(np.argmin(np.abs(v - atoms.get_volume())))
            if abs(v[i] / atoms.get_volume() - 1) < 2e-3:
                matched.append((cell_name, atoms))
                vols.append(atoms.get_volume())
                energies.append(en[i])
            else:
                unmatched.append(cell_name)
        if len(matched) >= 5:
            notes = [f"cells without an e-v.dat row: {unmatched}"] if unmatched else []
            refs.append(
                EVReference(
                    f"{name}/e-v.dat",
                    folder,
                    matched,
                    np.array(vols),
                    np.array(energies),
                    sources=[ev.name] + [c for c, _ in matched],
                    notes=notes,
                )
            )
    return refs
