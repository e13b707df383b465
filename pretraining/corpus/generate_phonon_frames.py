#!/usr/bin/env python
"""Small random displacements of 32-72 atom supercells of bulk crystals, labelled by a teacher: SURROGATE labels.

    .venv-teachers/bin/python pretraining/corpus/generate_phonon_frames.py --teacher sevennet0 [--shards N]

Why: the other teacher sets hold cells of 1-18 atoms (generate_teacher.py: supercells of 6-16), so a model trained
on them sees force constants only as sums over a few periodic images, never the individual couplings across a
phonon supercell. gfm-base v5 gives rock-salt NaCl imaginary modes (-2.0 THz at the DFT lattice, -1.7 THz at its
own) where its teacher SevenNet-0 matches the DFT bands to 0.1 THz. Here each parent (a bulk prototype of
generate_teacher.py: ionic, perovskite, intermetallic or elemental, drawn for every element in turn) is put at the
teacher's E(V) minimum (the same scan, frames kept), repeated to 32-72 atoms, and every atom displaced by a random
Gaussian vector of 0.01-0.04 A (``frames`` times): the random-displacement frames from which force constants are
fitted (the way hiPhive and ALAMODE sample them), so the teacher's force constants are in the labels.

Held out: parents whose reduced composition is one of the phonopy examples the model card validates (NaCl, ZnO,
SnO2, Si, Cr, Al, Cu; ``HELD_OUT``) are skipped and counted, so those phonon rows stay a transfer test.

One shard = one pass over the elements in a seeded order; one ``group`` per parent (``phonon-<teacher>-<shard>-<i>``).
Units (ASE): energy eV (the teacher's total energy), forces eV/A, stress eV/A^3 tension-positive (Voigt).
"""

from __future__ import annotations

import sys
from functools import reduce
from math import gcd
from typing import TYPE_CHECKING, Any

import numpy as np

from gfm_ase.pretraining.corpus import generate_teacher as T
from gfm_ase.pretraining.corpus import prototypes as P
from gfm_ase.pretraining.corpus.corpus_io import base_parser, log_to_stderr
from gfm_ase.pretraining.corpus.teachers import TEACHERS

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

KIND_WEIGHTS = {"ionic": 0.45, "perovskite": 0.15, "intermetallic": 0.25, "elemental": 0.15}
SETTINGS: dict[str, Any] = dict(
    kind_weights=KIND_WEIGHTS,
    supercell_atoms=[32, 72],
    frames=2,
    displacement_A=[0.01, 0.04],
)
# the phonopy examples of ../shared/data/phonopy_examples that validate the `omat` head (reduced compositions)
HELD_OUT = ({"Na": 1, "Cl": 1}, {"Zn": 1, "O": 1}, {"Sn": 1, "O": 2}, {"Si": 1}, {"Cr": 1}, {"Al": 1}, {"Cu": 1})
DEFAULT_SHARDS = 8


def reduced_composition(atoms: Atoms) -> dict[str, int]:
    """Element counts divided by their greatest common divisor (Na4Cl4 -> {Na: 1, Cl: 1})."""
    counts: dict[str, int] = {}
    for s in atoms.get_chemical_symbols():
        counts[s] = counts.get(s, 0) + 1
    g = reduce(gcd, counts.values())
    return {s: n // g for s, n in counts.items()}


def held_out(atoms: Atoms) -> bool:
    return reduced_composition(atoms) in HELD_OUT


def make_bulk_parent(rng: np.random.Generator, focus: str) -> tuple[Atoms, str] | None:
    """A bulk parent containing ``focus`` (kinds tried in a weighted random order); None if none can be built."""
    kinds = list(KIND_WEIGHTS)
    w = np.array([KIND_WEIGHTS[k] for k in kinds])
    for k in rng.choice(len(kinds), size=len(kinds), replace=False, p=w / w.sum()):
        made = T.BUILDERS[kinds[int(k)]](rng, focus)
        if made is not None:
            return made
    return None


def family(lab: T.Labeller, parent: Atoms, ct: str, group: str, rng: np.random.Generator) -> list[Atoms]:
    """The teacher's E(V) scan of ``parent`` and ``frames`` random-displacement supercells at its minimum."""
    fam = T.Family(lab, ct, group)
    found = T.eos_minimum(parent, fam.add)
    if found is None:
        lab.count("parent_dropped")
        return fam.frames
    s_min, e_min = found
    sc = T.supercell(T.scaled(parent, s_min), SETTINGS["supercell_atoms"])
    lo, hi = SETTINGS["displacement_A"]
    for _ in range(SETTINGS["frames"]):
        fam.add(T.rattle(sc, rng, float(rng.uniform(lo, hi))), "phonon")
    return fam.near_minimum(e_min, T.SETTINGS["max_above_min_eV_atom"])


def make_shard_fn(teacher: str, calc: Calculator | None = None) -> T.ShardFn:
    """``make_shard(shard, rng)`` for corpus_io.run_shards: one parent per element, in a seeded order."""
    lab = T.Labeller(teacher, calc)

    def make_shard(shard: int, rng: np.random.Generator) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
        lab.stats = {}
        frames: list[Atoms] = []
        for i, k in enumerate(rng.permutation(len(P.ELEMENTS))):
            focus = P.ELEMENTS[int(k)]
            try:
                made = make_bulk_parent(rng, focus)
            except Exception as exc:  # noqa: BLE001 - a prototype that cannot be built is counted
                lab.count("build_failed")
                log_to_stderr(f"build failed for {focus}: {exc}")
                continue
            if made is None:  # no prototype of these kinds takes the element
                lab.count("no_parent")
                continue
            parent, ct = made
            if held_out(parent):
                lab.count("held_out")
                continue
            frames += family(lab, parent, ct, f"phonon-{teacher}-{shard}-{i}", rng)
        return {teacher: frames}, dict(lab.stats)

    return make_shard


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], "phonon", DEFAULT_SHARDS)
    p.add_argument("--teacher", required=True, choices=sorted(TEACHERS))
    args = p.parse_args(argv)
    settings = dict(SETTINGS, labeller=T.SETTINGS, held_out=[dict(c) for c in HELD_OUT])
    T.run_teacher_corpus(
        "phonon",
        args,
        settings,
        make_shard_fn,
        what="random-displacement supercells (32-72 atoms, 0.01-0.04 A) of bulk prototypes at the teacher's E(V) "
        "minimum, with the E(V) scans, ",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
