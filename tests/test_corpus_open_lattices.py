"""Open-lattice elemental corpus (pretraining/corpus/generate_open_lattices.py): the lattices generate_elemental.py
leaves out, labelled here by a cheap pair potential, with the same frames, deterministically."""
from __future__ import annotations

import numpy as np
from ase.calculators.lj import LennardJones

from gfm_ase.pretraining.corpus import generate_elemental as E
from gfm_ase.pretraining.corpus import generate_open_lattices as O
from gfm_ase.pretraining.corpus import prototypes as P


def test_open_lattices_complete_the_five_and_skip_molecules_and_noble_gases():
    assert O.open_lattices_for("Be") == ["sc", "diamond"]
    assert O.open_lattices_for("C") == ["bcc", "hcp"]
    assert O.open_lattices_for("Sn") == ["hcp", "sc"]
    assert O.open_lattices_for("O") == [] and O.open_lattices_for("Ar") == []
    for s in P.ELEMENTS:
        extra = O.open_lattices_for(s)
        assert not set(extra) & set(E.lattices_for(s))  # nothing generate_elemental.py already draws
        if extra:
            assert set(extra) | set(E.lattices_for(s)) == set(O.ALL_LATTICES)
        for lat in extra:
            assert len(E.parent(s, lat)) >= 1


def test_shard_labels_the_open_lattices_deterministically():
    n = len(P.ELEMENTS)
    k = P.ELEMENTS.index("Be")  # one element per shard
    lj = LennardJones(sigma=2.0, epsilon=0.05, rc=6.0, smooth=True)
    runs = [O.make_shard_fn("sevennet0", n, lj)(k, np.random.default_rng([0, k])) for _ in range(2)]
    (fa, sa), (fb, sb) = runs
    a, b = fa["sevennet0"], fb["sevennet0"]
    assert len(a) == len(b) > 0 and sa == sb
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and x.info == y.info
    assert {f.info["group"] for f in a} == {"openlattice-sevennet0-Be-sc", "openlattice-sevennet0-Be-diamond"}
    assert {f.info["config_type"].split("_")[0] for f in a} >= {"eos", "eosw", "rattle", "strain", "vrattle"}
    assert all(set(f.get_chemical_symbols()) == {"Be"} for f in a)
