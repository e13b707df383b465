"""Helpers for pymatgen ``Structure.as_dict()`` dictionaries (read without importing pymatgen)."""

from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers


def structure_from_dict(d: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(numbers, positions [n,3] A, cell [3,3] A, pbc [3]) of a pymatgen Structure/Molecule dict.

    Positions come from ``xyz`` (Cartesian) when present, else from fractional ``abc`` and the lattice. Partially
    occupied sites are refused (a DFT label belongs to an ordered structure).
    """
    if not isinstance(d, dict) or "sites" not in d:
        raise ValueError("structure is not a pymatgen structure dict (no 'sites')")
    lattice = d.get("lattice")
    if lattice is not None:
        cell = np.asarray(lattice["matrix"], dtype=np.float64)
        pbc = np.asarray(lattice.get("pbc", (True, True, True)), dtype=bool)
    else:
        cell, pbc = np.zeros((3, 3)), np.zeros(3, dtype=bool)
    numbers, positions = [], []
    for k, site in enumerate(d["sites"]):
        species = site["species"]
        if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-6:
            raise ValueError(f"site {k} is disordered/partially occupied ({species}); cannot be labelled")
        el = species[0]["element"]
        el = "".join(c for c in el if c.isalpha())  # pymatgen may write oxidation-decorated names like 'Fe2+'
        if el not in atomic_numbers:
            raise ValueError(f"site {k} has unknown element {species[0]['element']!r}")
        numbers.append(atomic_numbers[el])
        if "xyz" in site:
            positions.append(site["xyz"])
        else:
            positions.append(np.asarray(site["abc"], dtype=np.float64) @ cell)
    return np.asarray(numbers), np.asarray(positions, dtype=np.float64), cell, pbc
