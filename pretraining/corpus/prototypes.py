"""Crystal prototypes over the whole periodic table, with charge-balanced compositions.

Every builder returns a small periodic cell (1-14 atoms) whose nearest-neighbour distances equal a guessed bond
length (sum of covalent radii times a prototype factor); the teacher's isotropic E(V) scan then finds the scale.
Compositions are drawn so that a *focus* element is always present: iterating the focus over all elements gives
every element its share of structures in every shard, whatever the prototype mix.

Oxidation states come from pymatgen (``Element.common_oxidation_states``), so ionic prototypes are charge balanced
(rocksalt MgO, fluorite ZrO2, perovskite SrTiO3, spinel MgAl2O4, ...); intermetallic prototypes (B2, L1_2, Heusler,
random alloys) take metals only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence, TypeVar

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

# the elements the MPtrj-trained teachers know: H-Bi and Ac-Pu (89)
TEACHER_Z = list(range(1, 84)) + list(range(89, 95))
ELEMENTS = [chemical_symbols[z] for z in TEACHER_Z]
ANIONS = {-1: ["F", "Cl", "Br", "I", "H"], -2: ["O", "S", "Se", "Te"], -3: ["N", "P", "As", "Sb"]}
ANION_SET = {a for v in ANIONS.values() for a in v}
NOBLE = {"He", "Ne", "Ar", "Kr", "Xe"}
NONMETALS = {"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "As", "Se", "Br", "Te", "I"} | NOBLE


@lru_cache(maxsize=None)
def cation_states(sym: str) -> tuple[int, ...]:
    """Positive common oxidation states of ``sym`` (pymatgen); () for elements without one."""
    from pymatgen.core import Element

    try:
        states = Element(sym).common_oxidation_states
    except Exception:  # noqa: BLE001 - an element pymatgen does not know has no states
        return ()
    return tuple(sorted(q for q in states if q > 0))


def radius(sym: str) -> float:
    return float(covalent_radii[atomic_numbers[sym]])


def bond(a: str, b: str, factor: float = 1.0) -> float:
    """Guessed A-B bond length: the sum of covalent radii (noble gases get a van der Waals-like 1.6x)."""
    d = radius(a) + radius(b)
    if a in NOBLE or b in NOBLE:
        d *= 1.6
    return d * factor


def metals() -> list[str]:
    return [s for s in ELEMENTS if s not in NONMETALS]


MOLECULAR = {"H": 0.74, "N": 1.10, "O": 1.21, "F": 1.42, "Cl": 1.99, "Br": 2.28, "I": 2.67}  # dimer bonds (A)
# cube edge per molecule, (molar mass / density of the molecular solid)^(1/3), rounded
MOLECULAR_SPACING = {"H": 3.4, "N": 3.6, "O": 3.3, "F": 3.4, "Cl": 3.9, "Br": 4.4, "I": 4.4}


# ------------------------------------------------------------------------------------------------- builders
def molecular(sym: str, spacing: float) -> Atoms:
    """Solid of X2 dimers (H2, N2, O2, halogens): one dimer, tilted, per simple-cubic cell of edge ``spacing``."""
    b = MOLECULAR[sym]
    axis = np.array([1.0, 0.6, 0.3]) / np.linalg.norm([1.0, 0.6, 0.3])
    return Atoms([sym, sym], positions=[-0.5 * b * axis, 0.5 * b * axis], cell=np.eye(3) * spacing, pbc=True)


def van_der_waals_spacing(sym: str) -> float:
    """Cube edge per molecule of a molecular solid, or the nearest-neighbour distance of a noble-gas solid
    (about 1.9x the van der Waals radius)."""
    from ase.data import vdw_radii

    if sym in MOLECULAR_SPACING:
        return MOLECULAR_SPACING[sym]
    r = vdw_radii[atomic_numbers[sym]]
    return float(1.9 * (r if np.isfinite(r) else 1.8))


def elemental(sym: str, lattice: str, d: float) -> Atoms:
    """fcc, bcc, hcp, sc or diamond with nearest-neighbour distance ``d`` (primitive cell)."""
    from ase.build import bulk

    if lattice == "fcc":
        return bulk(sym, "fcc", a=d * np.sqrt(2))
    if lattice == "bcc":
        return bulk(sym, "bcc", a=2 * d / np.sqrt(3))
    if lattice == "hcp":
        return bulk(sym, "hcp", a=d, c=d * np.sqrt(8 / 3))
    if lattice == "sc":
        return bulk(sym, "sc", a=d)
    if lattice == "diamond":
        return bulk(sym, "diamond", a=4 * d / np.sqrt(3))
    raise ValueError(f"unknown elemental lattice {lattice!r}")


def binary(proto: str, a: str, b: str, d: float) -> Atoms:
    """AB / AB2 / A2B / A3B prototypes with A-B nearest-neighbour distance ``d``."""
    from ase.build import bulk

    if proto == "rocksalt":
        return bulk(a + b, "rocksalt", a=2 * d)
    if proto == "zincblende":
        return bulk(a + b, "zincblende", a=4 * d / np.sqrt(3))
    if proto == "wurtzite":
        lat = d * np.sqrt(8 / 3)
        return bulk(a + b, "wurtzite", a=lat, c=lat * np.sqrt(8 / 3), u=0.375)
    if proto == "cscl":
        return bulk(a + b, "cesiumchloride", a=2 * d / np.sqrt(3))
    if proto == "fluorite":  # A at fcc sites, B in tetrahedral holes: AB2 (CaF2)
        return bulk(a + b + b, "fluorite", a=4 * d / np.sqrt(3))
    if proto == "antifluorite":  # A2B (Li2O)
        return bulk(b + a + a, "fluorite", a=4 * d / np.sqrt(3))
    if proto == "rutile":  # AB2, P4_2/mnm, u = 0.305, c/a = 0.65
        from ase.spacegroup import crystal

        u, ca = 0.305, 0.65
        lat = d / (u * np.sqrt(2))
        return crystal(
            [a, b],
            basis=[(0, 0, 0), (u, u, 0)],
            spacegroup=136,
            cellpar=[lat, lat, lat * ca, 90, 90, 90],
            primitive_cell=True,
        )
    if proto == "cdi2":  # layered AB2 (CdI2 / 1T-TiS2): A octahedral, B layers at z = +-0.25 c
        z = 0.25
        lat = d * np.sqrt(3) / np.sqrt(1 + 3 * (z * 1.6) ** 2)  # c = 1.6 a gives d(A-B) ~ d
        c = 1.6 * lat
        cell = [[lat, 0, 0], [-lat / 2, lat * np.sqrt(3) / 2, 0], [0, 0, c]]
        atoms = Atoms(
            [a, b, b], scaled_positions=[(0, 0, 0), (1 / 3, 2 / 3, z), (2 / 3, 1 / 3, -z)], cell=cell, pbc=True
        )
        atoms.wrap()
        return atoms
    if proto == "l12":  # A3B (Cu3Au): B at the cube corner, A at face centres
        lat = d * np.sqrt(2)
        return Atoms(
            [b, a, a, a],
            scaled_positions=[(0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
            cell=np.eye(3) * lat,
            pbc=True,
        )
    raise ValueError(f"unknown binary prototype {proto!r}")


def perovskite(a: str, b: str, x: str, d_bx: float) -> Atoms:
    """Cubic ABX3 (SrTiO3): B at the body centre, X at face centres, lattice 2 d(B-X)."""
    lat = 2 * d_bx
    return Atoms(
        [a, b, x, x, x],
        scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
        cell=np.eye(3) * lat,
        pbc=True,
    )


def heusler(a: str, b: str, c: str, d: float) -> Atoms:
    """L2_1 A2BC (Cu2MnAl) in its 4-atom fcc primitive cell; ``d`` is the A-B distance (a sqrt(3)/4)."""
    lat = 4 * d / np.sqrt(3)
    cell = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * lat
    return Atoms(
        [b, c, a, a],
        scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (0.75, 0.75, 0.75)],
        cell=cell,
        pbc=True,
    )


def spinel(a: str, b: str, x: str, d_bx: float) -> Atoms:
    """Normal spinel AB2X4 (MgAl2O4) in its 14-atom primitive cell (Fd-3m, origin choice 2, u = 0.2625)."""
    from ase.spacegroup import crystal

    u = 0.2625
    lat = d_bx / 0.2446  # d(B-X) = 0.2446 a for u = 0.2625 (origin 2)
    return crystal(
        [a, b, x],
        basis=[(1 / 8, 1 / 8, 1 / 8), (1 / 2, 1 / 2, 1 / 2), (u, u, u)],
        spacegroup=227,
        setting=2,
        cellpar=[lat, lat, lat, 90, 90, 90],
        primitive_cell=True,
    )


# ----------------------------------------------------------------------------------------------- compositions
_T = TypeVar("_T")


def _pick(rng: np.random.Generator, items: Sequence[_T]) -> _T:
    return items[int(rng.integers(len(items)))]


def ionic_pair(rng: np.random.Generator, focus: str, q_cation: int, q_anion: int) -> tuple[str, str] | None:
    """(cation, anion) with the given charges, one of them ``focus``; None if ``focus`` fits neither role."""
    anions = ANIONS.get(-q_anion, [])
    if focus in anions:
        cats = [s for s in ELEMENTS if q_cation in cation_states(s) and s not in ANION_SET]
        return (_pick(rng, cats), focus) if cats else None
    if focus not in ANION_SET and q_cation in cation_states(focus) and anions:
        return focus, _pick(rng, anions)
    return None


# prototype -> (kind, charge rules): ionic prototypes list (q_A, q_B) with anion charge -q_B per B
IONIC_BINARY = {
    "rocksalt": [(1, 1), (2, 2), (3, 3)],
    "zincblende": [(2, 2), (3, 3), (1, 1)],
    "wurtzite": [(2, 2), (3, 3)],
    "cscl": [(1, 1)],
    "fluorite": [(2, 1), (4, 2)],
    "antifluorite": [(1, 2)],
    "rutile": [(4, 2), (2, 1)],
    "cdi2": [(2, 1), (4, 2)],
}
# oxide/halide ternaries: perovskite A B X3 (q_A + q_B = 3 q_X), spinel A B2 X4 (q_A + 2 q_B = 4 q_X)
PEROVSKITE = [(2, 4, 2), (3, 3, 2), (1, 5, 2), (1, 2, 1)]
SPINEL = [(2, 3, 2), (4, 2, 2)]
