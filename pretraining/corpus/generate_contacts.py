#!/usr/bin/env python
"""Close anion-anion contacts inside ionic crystals, labelled by a teacher (CHGNet, SevenNet): SURROGATE labels.

    .venv-teachers/bin/python pretraining/corpus/generate_contacts.py --teacher sevennet0 [--shards N] [--max-minutes M]

Why: gfm-base v1 learned an O-O repulsion inside oxides about 2.5x too soft (``gfm validate contacts`` on the
(Co,Cu,Mg,Ni,Zn)O rocksalt: O-O pulled from 2.99 to 1.5 A costs 3.8 eV with v1, 9.5 / 8.8 eV with CHGNet 0.3.0 /
SevenNet-0), and in 1,000 K MD its oxides formed O-O pairs at 1.2-1.3 A. The teacher corpus
(generate_teacher.py) almost never puts two anions that close: its rattles move every atom a little. Here the
contacts are made on purpose.

One shard = ``parents_per_shard`` parents. Each parent is a charge-balanced binary ionic crystal (the prototypes
of prototypes.IONIC_BINARY), a perovskite or a spinel whose anion is drawn from ``anion_weights`` (oxygen half of
the time), the cation(s) at random among the elements with a matching oxidation state. Frames, one ``group`` per
parent:

  eos_*       the teacher's E(V) scan of the primitive cell (as in generate_teacher.py); its minimum is the scale
  base_*      a 12-32 atom supercell at that scale, rattled 0.02 A
  pair_*      the closest like-anion pair of a random anion moved symmetrically along its minimum-image bond to
              d = f x (2 x covalent radius), f ~ U(``pair_factor``) (O-O: 1.25-2.24 A), the other atoms rattled
              0.03-0.10 A; ``pairs_per_parent`` frames, each from a fresh rattle
  hot_*       every atom rattled 0.15-0.30 A (the spread of 1,000-3,000 K MD)

Rejected and counted in the manifest's ``stats`` (generate_teacher.Labeller): geometries with two atoms closer than
0.55 x the sum of covalent radii, non-finite labels, |F| > 50 eV/A; and frames more than 5 eV/atom above the
parent's E(V) minimum. No structure here contains more than two cation species, so the high-entropy and
quaternary compositions of the MD stability check (gfm_ase.validation.novel_compositions) stay out of the data.

Units (ASE): energy eV (the teacher's total energy), forces eV/A, stress eV/A^3 tension-positive (Voigt).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from gfm_ase.pretraining.corpus import generate_teacher as T
from gfm_ase.pretraining.corpus import prototypes as P
from gfm_ase.pretraining.corpus.corpus_io import base_parser, log_to_stderr
from gfm_ase.pretraining.corpus.teachers import TEACHERS
from gfm_ase.validation.contacts import pulled

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

SETTINGS: dict[str, Any] = dict(
    anion_weights={"O": 0.5, "F": 0.1, "S": 0.1, "N": 0.08, "Cl": 0.08, "Se": 0.06, "H": 0.04, "Br": 0.04},
    kind_weights={"ionic": 0.6, "perovskite": 0.3, "spinel": 0.1},
    parents_per_shard=50,
    supercell_atoms=[12, 32],
    base_rattle_A=0.02,
    pairs_per_parent=3,
    pair_factor=[0.95, 1.70],
    pair_rattle_A=[0.03, 0.10],
    hot_range_A=[0.15, 0.30],
    max_above_min_eV_atom=5.0,
)
DEFAULT_SHARDS = 12


def make_parent(rng: np.random.Generator, anion: str) -> tuple[Atoms, str] | None:
    """A charge-balanced ionic parent holding ``anion``; None when no prototype of the drawn kind takes it."""
    kinds = list(SETTINGS["kind_weights"])
    w = np.array([SETTINGS["kind_weights"][k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    if kind == "ionic":
        return T.make_ionic(rng, anion)
    return T.make_perovskite(rng, anion, spinel=kind == "spinel")


def like_pair(atoms: Atoms, anion: str, rng: np.random.Generator) -> tuple[int, int, float] | None:
    """A random ``anion`` atom and its closest other ``anion`` (minimum image): (i, j, distance); None if there is
    no second one within 6 A."""
    from ase.neighborlist import neighbor_list

    symbols = np.array(atoms.get_chemical_symbols())
    mine = np.flatnonzero(symbols == anion)
    if len(mine) < 2:
        return None
    i_all, j_all, d_all = neighbor_list("ijd", atoms, 6.0)
    i = int(mine[int(rng.integers(len(mine)))])
    ok = (i_all == i) & (symbols[j_all] == anion) & (j_all != i)
    if not ok.any():
        return None
    k = int(np.argmin(np.where(ok, d_all, np.inf)))
    return i, int(j_all[k]), float(d_all[k])


def family(lab: T.Labeller, parent: Atoms, ct: str, anion: str, group: str, rng: np.random.Generator) -> list[Atoms]:
    """All labelled frames of one parent (see the module docstring)."""
    fam = T.Family(lab, ct, group)
    add = fam.add
    found = T.eos_minimum(parent, add)
    if found is None:
        lab.count("parent_dropped")
        return fam.frames
    s_min, e_min = found
    sc = T.supercell(T.scaled(parent, s_min), size=SETTINGS["supercell_atoms"])
    add(T.rattle(sc, rng, SETTINGS["base_rattle_A"]), "base")
    d_x = 2.0 * P.radius(anion)
    for _ in range(SETTINGS["pairs_per_parent"]):
        pair = like_pair(sc, anion, rng)
        if pair is None:
            lab.count("no_pair")
            break
        i, j, d0 = pair
        r = min(float(rng.uniform(*SETTINGS["pair_factor"])) * d_x, 0.95 * d0)
        moved = pulled(T.rattle(sc, rng, float(rng.uniform(*SETTINGS["pair_rattle_A"]))), i, j, r)
        add(moved, "pair")
    add(T.rattle(sc, rng, float(rng.uniform(*SETTINGS["hot_range_A"]))), "hot")
    return fam.near_minimum(e_min, SETTINGS["max_above_min_eV_atom"])


def make_shard_fn(teacher: str, calc: Calculator | None = None) -> T.ShardFn:
    """``make_shard(shard, rng)`` for corpus_io.run_shards."""
    lab = T.Labeller(teacher, calc)
    anions = list(SETTINGS["anion_weights"])
    w = np.array([SETTINGS["anion_weights"][a] for a in anions])

    def make_shard(shard: int, rng: np.random.Generator) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
        lab.stats = {}
        frames: list[Atoms] = []
        for i in range(SETTINGS["parents_per_shard"]):
            anion = anions[int(rng.choice(len(anions), p=w / w.sum()))]
            try:
                made = make_parent(rng, anion)
            except Exception as exc:  # noqa: BLE001 - a prototype that cannot be built is counted
                lab.count("build_failed")
                log_to_stderr(f"build failed for {anion}: {exc}")
                continue
            if made is None:
                lab.count("no_parent")
                continue
            lab.count(f"parents_{anion}")
            frames += family(lab, made[0], made[1], anion, f"contacts-{teacher}-{shard}-{i}", rng)
        return {teacher: frames}, dict(lab.stats)

    return make_shard


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], "contacts", DEFAULT_SHARDS)
    p.add_argument("--teacher", required=True, choices=sorted(TEACHERS))
    args = p.parse_args(argv)
    settings = dict(SETTINGS, labeller=T.SETTINGS)
    T.run_teacher_corpus("contacts", args, settings, make_shard_fn, what="anion-anion contacts, ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
