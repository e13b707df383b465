"""Elemental wide-volume corpus (pretraining/corpus/generate_elemental.py), labelled here by a cheap pair potential."""
from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from gfm_ase.pretraining.corpus import generate_elemental as E
from gfm_ase.pretraining.corpus import prototypes as P

N_SHARDS = 30  # shard 7 of 30: three elements


def _lj():
    return LennardJones(sigma=2.2, epsilon=0.05, rc=6.0, smooth=True)


@pytest.fixture(scope="module")
def shard():
    a = E.make_shard_fn("sevennet0", N_SHARDS, _lj())(7, np.random.default_rng([0, 7]))
    b = E.make_shard_fn("sevennet0", N_SHARDS, _lj())(7, np.random.default_rng([0, 7]))
    return a, b


def test_shard_covers_its_elements_in_every_lattice_and_is_deterministic(shard):
    (fa, sa), (fb, sb) = shard
    a, b = fa["sevennet0"], fb["sevennet0"]
    assert len(a) == len(b) > 0 and sa == sb
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and x.info == y.info
    mine = P.ELEMENTS[7::N_SHARDS]
    groups = {f.info["group"] for f in a}
    expected = {f"elemental-sevennet0-{s}-{lat}" for s in mine for lat in E.lattices_for(s)}
    # the pair potential rejects molecular solids (|F| > 50 eV/A at the X2 bond): every other lattice is there
    assert groups <= expected and {g for g in expected if not g.endswith("molecular")} <= groups
    for f in a:
        assert len(set(f.get_chemical_symbols())) == 1  # elemental only
        assert f.info["group"].split("-")[2] == f.get_chemical_symbols()[0]
    kinds = {f.info["config_type"].split("_")[0] for f in a}
    assert {"eos", "eosw", "rattle", "strain", "vrattle"} <= kinds


def test_wide_scan_brackets_the_labellers_own_minimum(shard):
    """eosw frames span 0.80-1.30 x the volume of the E(V) minimum found by the eos scan, and that minimum is a
    minimum of the labeller: the lowest energy per atom of the primitive-cell frames is not at an end."""
    frames = shard[0][0]["sevennet0"]
    by_group: dict[str, list] = {}
    for f in frames:
        if f.info["config_type"].split("_")[0] in ("eos", "eosw"):
            by_group.setdefault(f.info["group"], []).append(f)
    checked = 0
    for fs in by_group.values():
        v = np.array([f.get_volume() / len(f) for f in fs])
        e = np.array([f.get_potential_energy() / len(f) for f in fs])
        order = np.argsort(v)
        v, e = v[order], e[order]
        assert v.max() / v.min() > 1.30 / 0.80 * 0.95
        assert 0 < int(np.argmin(e)) < len(e) - 1
        checked += 1
    assert checked >= 3


def test_lattices_for_each_class():
    assert E.lattices_for("O") == ["molecular"]
    assert E.lattices_for("Ar") == ["fcc", "hcp"]
    assert E.lattices_for("Si") == ["diamond", "sc", "fcc"]
    assert E.lattices_for("Na") == ["fcc", "bcc", "hcp"]
    for s in P.ELEMENTS:  # every lattice of every element builds
        for lat in E.lattices_for(s):
            assert len(E.parent(s, lat)) >= 1
