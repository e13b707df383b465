#!/usr/bin/env python
"""The elemental lattices generate_elemental.py does not draw for an element, labelled by a teacher: SURROGATE labels.

    .venv-teachers/bin/python pretraining/corpus/generate_open_lattices.py --teacher sevennet0 [--shards N]

Why: generate_elemental.py gives the metals fcc, bcc and hcp and the covalent elements diamond, sc and fcc. A model
trained on that has seen no metal in a low-coordinated lattice and no covalent element in bcc or hcp, and
extrapolates there: the polymorph suite (``gfm validate polymorphs``, stop 28) found gfm-base v4 and v5 putting the
simple-cubic and diamond lattices of Sc, Ti, Zr, Hf and Y 0.5-1.3 eV/atom below their teacher's energies and
diamond Be 0.69 eV/atom *below* hcp Be (SevenNet-0: 1.34 above). Here every element that generate_elemental.py
draws as a crystal (not the molecular solids, not the noble gases) gets the rest of the five lattices (fcc, bcc,
hcp, sc, diamond), each with the same frames as there (``generate_elemental.volume_family``: the bracketed E(V)
scan, the wide volumes 0.80-1.30 x V0, rattled, strained and volume-rattled supercells at the teacher's minimum).

One shard = the elements ``P.ELEMENTS[shard::shards]``; one ``group`` per element and lattice
(``openlattice-<teacher>-<El>-<lattice>``). A new output folder (``openlattice_<teacher>``), so the elemental corpus
of v3-v5 stays exactly reproducible. Rejections are counted as in generate_elemental.py (frames more than 5 eV/atom
above the lattice's own E(V) minimum are dropped there too).

Units (ASE): energy eV (the teacher's total energy), forces eV/A, stress eV/A^3 tension-positive (Voigt).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from gfm_ase.pretraining.corpus import generate_elemental as E
from gfm_ase.pretraining.corpus import generate_teacher as T
from gfm_ase.pretraining.corpus import prototypes as P
from gfm_ase.pretraining.corpus.corpus_io import base_parser
from gfm_ase.pretraining.corpus.teachers import TEACHERS

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

ALL_LATTICES = ("fcc", "bcc", "hcp", "sc", "diamond")
DEFAULT_SHARDS = 4


def open_lattices_for(sym: str) -> list[str]:
    """The lattices of ``ALL_LATTICES`` that generate_elemental.py does not draw for ``sym`` (none for the
    molecular solids and the noble gases, whose atomic lattices are not what their crystals are made of)."""
    if sym in P.MOLECULAR or sym in P.NOBLE:
        return []
    drawn = E.lattices_for(sym)
    return [lat for lat in ALL_LATTICES if lat not in drawn]


def make_shard_fn(teacher: str, n_shards: int, calc: Calculator | None = None) -> T.ShardFn:
    """``make_shard(shard, rng)`` for corpus_io.run_shards: the elements ``P.ELEMENTS[shard::n_shards]``."""
    lab = T.Labeller(teacher, calc)

    def make_shard(shard: int, rng: np.random.Generator) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
        lab.stats = {}
        jobs = (
            (f"{sym} {lat}", partial(E.family, lab, sym, lat, f"openlattice-{teacher}-{sym}-{lat}", rng))
            for sym in P.ELEMENTS[shard::n_shards]
            for lat in open_lattices_for(sym)
        )
        return {teacher: T.label_families(lab, jobs)}, dict(lab.stats)

    return make_shard


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], "openlattice", DEFAULT_SHARDS)
    p.add_argument("--teacher", required=True, choices=sorted(TEACHERS))
    args = p.parse_args(argv)
    settings = dict(E.SETTINGS, labeller=T.SETTINGS, n_shards=args.shards, lattices=list(ALL_LATTICES))
    T.run_teacher_corpus(
        "openlattice",
        args,
        settings,
        lambda name: make_shard_fn(name, args.shards),
        what="the elemental lattices generate_elemental.py leaves out (sc and diamond metals, bcc and hcp covalent "
        "elements) over a wide volume range, ",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
