"""Anion-anion contact corpus (pretraining/corpus/generate_contacts.py), labelled here by a cheap pair potential."""
from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.neighborlist import neighbor_list

from gfm_ase.pretraining.corpus import generate_contacts as C
from gfm_ase.pretraining.corpus import prototypes as P


def _lj():
    return LennardJones(sigma=2.0, epsilon=0.05, rc=5.0, smooth=True)


def _closest_like(atoms, anion):
    s = np.array(atoms.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", atoms, 6.0)
    ok = (s[i] == anion) & (s[j] == anion)
    return float(d[ok].min())


@pytest.fixture(scope="module")
def shard():
    settings = dict(C.SETTINGS)
    C.SETTINGS["parents_per_shard"] = 8
    try:
        fn = C.make_shard_fn("sevennet0", _lj())
        a = fn(3, np.random.default_rng([0, 3]))
        b = C.make_shard_fn("sevennet0", _lj())(3, np.random.default_rng([0, 3]))
    finally:
        C.SETTINGS.clear()
        C.SETTINGS.update(settings)
    return a, b


def test_shard_is_deterministic_and_grouped(shard):
    (fa, sa), (fb, sb) = shard
    a, b = fa["sevennet0"], fb["sevennet0"]
    assert len(a) == len(b) > 0 and sa == sb
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and x.info == y.info
    kinds = {f.info["config_type"].split("_")[0] for f in a}
    assert {"eos", "base", "pair", "hot"} <= kinds
    assert all(f.info["group"].startswith("contacts-sevennet0-3-") for f in a)


def test_pair_frames_hold_a_contact_closer_than_their_base(shard):
    frames = shard[0][0]["sevennet0"]
    base = {f.info["group"]: f for f in frames if f.info["config_type"].startswith("base")}
    checked = 0
    for f in frames:
        if not f.info["config_type"].startswith("pair") or f.info["group"] not in base:
            continue
        anions = [a for a in C.SETTINGS["anion_weights"] if a in f.get_chemical_symbols()]
        anion = min(anions, key=lambda a: _closest_like(f, a) / (2 * P.radius(a)))
        d = _closest_like(f, anion)
        lo, hi = C.SETTINGS["pair_factor"]
        # the pulled pair: at most hi x 2 r (plus the rattle of its neighbours), closer than in the base cell
        assert d <= hi * 2 * P.radius(anion) + 0.3
        assert d < _closest_like(base[f.info["group"]], anion)
        assert len(f) == len(base[f.info["group"]])
        checked += 1
    assert checked >= 3


def test_like_pair_is_the_closest_partner():
    atoms = P.binary("rocksalt", "Mg", "O", 2.1).repeat(2)
    i, j, d = C.like_pair(atoms, "O", np.random.default_rng(1))
    assert atoms[i].symbol == atoms[j].symbol == "O" and i != j
    assert d == pytest.approx(2.1 * np.sqrt(2), rel=1e-6)  # O-O in rocksalt: a / sqrt(2)
    assert C.like_pair(P.binary("rocksalt", "Mg", "O", 2.1), "Na", np.random.default_rng(1)) is None


def test_no_structure_has_more_than_two_cation_species(shard):
    """The high-entropy and quaternary MD check compositions must stay out of this data."""
    for f in shard[0][0]["sevennet0"]:
        cations = set(f.get_chemical_symbols()) - P.ANION_SET
        assert len(cations) <= 2, f.get_chemical_formula()
