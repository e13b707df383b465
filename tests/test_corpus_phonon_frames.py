"""Phonon-frame corpus (pretraining/corpus/generate_phonon_frames.py): random-displacement supercells of bulk
prototypes at the teacher's E(V) minimum, labelled here by a cheap pair potential, deterministically; the phonopy
examples the model card validates are never drawn."""
from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.calculators.lj import LennardJones

from gfm_ase.pretraining.corpus import generate_phonon_frames as G
from gfm_ase.pretraining.corpus import prototypes as P


def _lj():
    return LennardJones(sigma=2.0, epsilon=0.05, rc=6.0, smooth=True)


def test_held_out_compositions_are_the_validated_phonopy_examples():
    assert G.held_out(bulk("NaCl", "rocksalt", a=5.7).repeat(2))
    assert G.held_out(bulk("Si", "diamond", a=5.43)) and G.held_out(bulk("Cu", "fcc", a=3.6))
    assert not G.held_out(bulk("KCl", "rocksalt", a=6.3)) and not G.held_out(bulk("Ge", "diamond", a=5.7))
    assert G.reduced_composition(bulk("ZnO", "wurtzite", a=3.25, c=5.2).repeat((2, 1, 1))) == {"Zn": 1, "O": 1}


def test_shard_frames_are_displaced_supercells_and_deterministic(monkeypatch):
    some = ["Mg", "K", "Ti", "Ga", "Ba"]
    monkeypatch.setattr(P, "ELEMENTS", some)
    runs = [G.make_shard_fn("sevennet0", _lj())(0, np.random.default_rng([0, 0])) for _ in range(2)]
    (fa, sa), (fb, sb) = runs
    a, b = fa["sevennet0"], fb["sevennet0"]
    assert len(a) == len(b) > 0 and sa == sb
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and x.info == y.info
    phonon = [f for f in a if f.info["config_type"].startswith("phonon_")]
    assert phonon and {f.info["config_type"].split("_")[0] for f in a} <= {"eos", "phonon"}
    lo, hi = G.SETTINGS["supercell_atoms"]
    assert all(len(f) < hi for f in phonon) and sum(len(f) >= lo for f in phonon) >= len(phonon) / 2
    for f in phonon:
        assert not G.held_out(f)
        assert np.abs(f.get_forces()).max() > 0  # displaced: non-zero forces
    assert len({f.info["group"] for f in phonon}) >= 2
