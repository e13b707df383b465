"""The screening benchmark structure set: rattled, strained crystals of 8-64 atoms.

The set used by peers to compare screening throughput: Si diamond, Cu fcc, NaCl and MgO rocksalt and corundum
Al2O3 supercells of 8 to 64 atoms, each with a random symmetric strain of up to +-2 % per component and a Gaussian
rattle of 0.05 A (standard deviation per Cartesian component). Deterministic for a given seed.
"""

from __future__ import annotations

import itertools
from typing import cast

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

MIN_ATOMS = 8
MAX_ATOMS = 64


def _prototypes() -> dict[str, Atoms]:
    corundum = crystal(
        ["Al", "O"],
        basis=[(0, 0, 0.352), (0.306, 0, 0.25)],
        spacegroup=167,
        cellpar=[4.76, 4.76, 12.99, 90, 90, 120],
        primitive_cell=True,
    )
    return {
        "Si": bulk("Si", "diamond", a=5.43, cubic=True),  # 8 atoms
        "Cu": bulk("Cu", "fcc", a=3.61, cubic=True),  # 4 atoms
        "NaCl": bulk("NaCl", "rocksalt", a=5.64, cubic=True),  # 8 atoms
        "MgO": bulk("MgO", "rocksalt", a=4.21, cubic=True),  # 8 atoms
        "Al2O3": corundum,  # 10-atom rhombohedral cell
    }


def _supercells(n_cell: int) -> list[tuple[int, int, int]]:
    reps: list[tuple[int, int, int]] = []
    for r in itertools.product(range(1, 5), repeat=3):
        if list(r) != sorted(r, reverse=True):
            continue  # one ordering of each multiset
        if MIN_ATOMS <= n_cell * np.prod(r) <= MAX_ATOMS:
            reps.append(cast(tuple[int, int, int], r))
    return reps


def benchmark_structures(n: int = 2048, seed: int = 0, strain: float = 0.02, rattle: float = 0.05) -> list[Atoms]:
    """``n`` structures cycling over the five crystals, with random supercells, strain and rattle."""
    rng = np.random.default_rng(seed)
    protos = _prototypes()
    names = list(protos)
    out = []
    for k in range(n):
        name = names[k % len(names)]
        proto = protos[name]
        reps = _supercells(len(proto))
        atoms = proto.repeat(reps[rng.integers(len(reps))])
        eps = rng.uniform(-strain, strain, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        atoms.info["prototype"] = name
        out.append(atoms)
    return out


__all__ = ["benchmark_structures", "MIN_ATOMS", "MAX_ATOMS"]
