#!/usr/bin/env python
"""Elemental crystals over a wide volume range, labelled by a teacher (CHGNet, SevenNet): SURROGATE labels.

    .venv-teachers/bin/python pretraining/corpus/generate_elemental.py --teacher sevennet0 [--shards N]

Why: with the Delta test counting every element (validation/eos.py resamples an E(V) minimum outside 0.94-1.06 x
V0 instead of dropping it), gfm-base v1 and v2 put the equilibrium volume of 27 of 68 elements more than 5 % from
PBE's (Na +25 %, Al +17 %, S +33 %, Hg -26 % with v2). The teacher corpus (generate_teacher.py) draws an
elemental parent for an element in about one shard of six, in a random lattice, with a five-point E(V) scan:
about one scan of an element's own ground-state lattice in the whole corpus. Here every element gets its common
lattices, each with a scan that brackets the teacher's minimum, a wide E(V) around it and near-equilibrium
rattled and strained supercells (forces and stress at and around V0).

One shard = the elements ``ELEMENTS[shard::shards]`` (P.ELEMENTS, 89). Lattices per element (``lattices_for``):
X2 molecular solid (H N O F Cl Br I); fcc and hcp (noble gases, at the van der Waals spacing); diamond, sc and fcc
(B C Si Ge P As S Se Te Sb); diamond, bcc and fcc (Sn); fcc, bcc and hcp (every other element). Frames, one
``group`` per element and lattice:

  eos_*      the teacher's E(V) scan of the primitive cell (linear scales 0.92-1.08 of the guessed spacing, extended
             in 0.08 steps, at most ``max_extensions`` times, while the lowest point is at an edge); the minimum of
             a parabola in V through the lowest point and its two neighbours is the equilibrium scale s0
  eosw_*     the primitive cell at volume factors ``wide_volumes`` x V(s0) (0.80-1.30)
  rattle_*   an 8-16 atom supercell at s0, rattled 0.01-0.06 A
  strain_*   that supercell with a random symmetric strain up to 3 % and a 0.02 A rattle
  vrattle_*  the supercell at 0.94 and 1.06 x V(s0), rattled 0.02-0.05 A

Rejected and counted in the manifest's ``stats`` (generate_teacher.Labeller): geometries with two atoms closer than
0.55 x the sum of covalent radii, non-finite labels, |F| > 50 eV/A; frames more than 5 eV/atom above the lattice's
E(V) minimum. Only single-element cells: nothing of the MD stability compositions.

The Delta test's crystals (ase.collections.dcdft) are the elements' ground states, which are often one of these
lattices: with this set in training the Delta test measures how well a head reproduces its teacher's elemental E(V)
(plus the teacher's own distance from WIEN2k), not transfer to unseen structures. The model card says so.

Units (ASE): energy eV (the teacher's total energy), forces eV/A, stress eV/A^3 tension-positive (Voigt).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from gfm_ase.pretraining.corpus import generate_teacher as T
from gfm_ase.pretraining.corpus import prototypes as P
from gfm_ase.pretraining.corpus.corpus_io import base_parser
from gfm_ase.pretraining.corpus.teachers import TEACHERS

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

COVALENT = ("B", "C", "Si", "Ge", "P", "As", "S", "Se", "Te", "Sb")
SETTINGS: dict[str, Any] = dict(
    eos_scales=[0.92, 0.96, 1.0, 1.04, 1.08],
    eos_step=0.08,
    max_extensions=4,
    wide_volumes=[0.80, 0.86, 1.10, 1.18, 1.30],
    supercell_atoms=[8, 16],
    rattle_A=[0.01, 0.06],
    strain_max=0.03,
    strain_rattle_A=0.02,
    vrattle_volumes=[0.94, 1.06],
    vrattle_A=[0.02, 0.05],
    max_above_min_eV_atom=5.0,
)
DEFAULT_SHARDS = 8


def lattices_for(sym: str) -> list[str]:
    """The lattices generated for element ``sym`` (``molecular`` = the X2 solid of prototypes.molecular)."""
    if sym in P.MOLECULAR:
        return ["molecular"]
    if sym in P.NOBLE:
        return ["fcc", "hcp"]
    if sym in COVALENT:
        return ["diamond", "sc", "fcc"]
    if sym == "Sn":
        return ["diamond", "bcc", "fcc"]
    return ["fcc", "bcc", "hcp"]


def parent(sym: str, lattice: str) -> Atoms:
    """Primitive cell of ``sym`` in ``lattice`` at the guessed spacing (covalent radii; van der Waals for noble
    gases and molecular solids)."""
    if lattice == "molecular":
        return P.molecular(sym, P.van_der_waals_spacing(sym))
    d = P.van_der_waals_spacing(sym) if sym in P.NOBLE else P.bond(sym, sym)
    return P.elemental(sym, lattice, d)


def volume_scaled(atoms: Atoms, volume_factor: float) -> Atoms:
    """``atoms`` with its volume times ``volume_factor`` (shape and fractional positions fixed)."""
    return T.scaled(atoms, volume_factor ** (1.0 / 3.0))


def bracketed_minimum(cell: Atoms, add: Callable[[Atoms, str], Atoms | None]) -> tuple[float, float] | None:
    """(linear scale, energy per atom) of the minimum of the labeller's E(V) of ``cell``: ``add(atoms, "eos")``
    labels and keeps each scan point (None when rejected). The scan grows past an edge minimum (see the module
    docstring); a rejected point ends the growth on that side. None when fewer than three points were labelled."""
    pts: dict[float, float] = {}

    def label(s: float) -> bool:
        fr = add(T.scaled(cell, s), "eos")
        if fr is not None:
            pts[s] = fr.get_potential_energy() / len(fr)
        return fr is not None

    for s in SETTINGS["eos_scales"]:
        label(s)
    for _ in range(SETTINGS["max_extensions"]):
        if len(pts) < 3:
            break
        xs = sorted(pts)
        best = min(xs, key=lambda x: pts[x])
        if best not in (xs[0], xs[-1]):
            break
        step = SETTINGS["eos_step"] if best == xs[-1] else -SETTINGS["eos_step"]
        if best + step <= 0.3 or not label(round(best + step, 6)):
            break
    if len(pts) < 3:
        return None
    xs = sorted(pts)
    k = min(max(xs.index(min(xs, key=lambda x: pts[x])), 1), len(xs) - 2)
    v = np.array(xs[k - 1 : k + 2]) ** 3
    e = np.array([pts[x] for x in xs[k - 1 : k + 2]])
    c = np.polyfit(v, e, 2)
    vmin = -c[1] / (2 * c[0]) if c[0] > 0 else v[int(np.argmin(e))]
    return float(np.clip(vmin, v.min(), v.max())) ** (1.0 / 3.0), float(min(pts.values()))


def family(lab: T.Labeller, sym: str, lattice: str, group: str, rng: np.random.Generator) -> list[Atoms]:
    """All labelled frames of one element in one lattice (see the module docstring)."""
    fam = T.Family(lab, lattice if lattice == "molecular" else f"elemental_{lattice}", group)
    return volume_family(fam, parent(sym, lattice), rng)


def volume_family(fam: T.Family, cell: Atoms, rng: np.random.Generator) -> list[Atoms]:
    """The frames of one cell into ``fam``: the bracketed E(V) scan, the wide volumes, rattled, strained and
    volume-rattled supercells at the minimum (see the module docstring); those near the minimum are returned."""
    add = fam.add
    found = bracketed_minimum(cell, add)
    if found is None:
        fam.lab.count("parent_dropped")
        return fam.frames
    s0, e_min = found
    eq = T.scaled(cell, s0)
    for f in SETTINGS["wide_volumes"]:
        add(volume_scaled(eq, f), "eosw")
    sc = T.supercell(eq, size=SETTINGS["supercell_atoms"])
    add(T.rattle(sc, rng, float(rng.uniform(*SETTINGS["rattle_A"]))), "rattle")
    add(T.rattle(T.strain(sc, rng, SETTINGS["strain_max"]), rng, SETTINGS["strain_rattle_A"]), "strain")
    for f in SETTINGS["vrattle_volumes"]:
        add(T.rattle(volume_scaled(sc, f), rng, float(rng.uniform(*SETTINGS["vrattle_A"]))), "vrattle")
    e_min = min(e_min, *(fr.get_potential_energy() / len(fr) for fr in fam.frames))
    return fam.near_minimum(e_min, SETTINGS["max_above_min_eV_atom"])


def make_shard_fn(teacher: str, n_shards: int, calc: Calculator | None = None) -> T.ShardFn:
    """``make_shard(shard, rng)`` for corpus_io.run_shards: the elements ``P.ELEMENTS[shard::n_shards]``."""
    lab = T.Labeller(teacher, calc)

    def make_shard(shard: int, rng: np.random.Generator) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
        lab.stats = {}
        jobs = (
            (f"{sym} {lattice}", partial(family, lab, sym, lattice, f"elemental-{teacher}-{sym}-{lattice}", rng))
            for sym in P.ELEMENTS[shard::n_shards]
            for lattice in lattices_for(sym)
        )
        return {teacher: T.label_families(lab, jobs)}, dict(lab.stats)

    return make_shard


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], "elemental", DEFAULT_SHARDS)
    p.add_argument("--teacher", required=True, choices=sorted(TEACHERS))
    args = p.parse_args(argv)
    # the element -> shard assignment depends on the shard count: it is part of the settings (and of their hash)
    settings = dict(SETTINGS, labeller=T.SETTINGS, n_shards=args.shards)
    T.run_teacher_corpus(
        "elemental",
        args,
        settings,
        lambda name: make_shard_fn(name, args.shards),
        what="elemental crystals over a wide volume range, ",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
