"""Mixed bulk structures of a head's elements, for the engine examples and benchmarks: crystals in each element's
reference structure (``ase.data.reference_states``) and binary substitutional alloys of them, in supercells of
several sizes, strained (+-4 %, shear included) and rattled so that relaxations have work to do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, reference_states

BUILDABLE = ("sc", "fcc", "bcc", "hcp", "diamond")
REPEATS = ((1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2))


def buildable(elements: Iterable[str]) -> list[str]:
    """The elements whose reference state :func:`ase.build.bulk` can build."""
    out = []
    for el in elements:
        state = reference_states[atomic_numbers[el]]
        if state is not None and state.get("symmetry") in BUILDABLE:
            out.append(el)
    return out


def mixed_structures(
    elements: Sequence[str],
    n: int,
    *,
    seed: int = 0,
    min_atoms: int = 1,
    max_atoms: int = 32,
    strain: float = 0.04,
    rattle: float = 0.05,
) -> list[Atoms]:
    """``n`` periodic structures of ``elements`` (pure crystals and binary alloys; ``min_atoms`` to ``max_atoms``
    atoms each, as far as the supercells allow)."""
    pool = buildable(elements)
    if not pool:
        raise ValueError(f"none of {list(elements)} has a reference crystal structure that ase.build.bulk builds")
    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    while len(out) < n:
        host = str(rng.choice(pool))
        cubic = cast(dict, reference_states[atomic_numbers[host]])["symmetry"] != "hcp" and rng.random() < 0.5
        atoms = bulk(host, cubic=cubic)
        reps = [r for r in REPEATS if min_atoms <= len(atoms) * np.prod(r) <= max_atoms] or [REPEATS[-1]]
        atoms = atoms.repeat(reps[rng.integers(len(reps))])
        if len(pool) > 1 and rng.random() < 0.5:  # a binary alloy: substitute 10-50 % of the sites
            guest = str(rng.choice([e for e in pool if e != host]))
            k = max(1, int(len(atoms) * rng.uniform(0.1, 0.5)))
            atoms.numbers[rng.choice(len(atoms), size=k, replace=False)] = atomic_numbers[guest]
        eps = rng.uniform(-strain, strain, size=(3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.rattle(rattle, seed=int(rng.integers(2**31)))
        out.append(atoms)
    return out


__all__ = ["buildable", "mixed_structures"]
