"""Ground-state structure types (pretraining/corpus/generate_ground_states.py): the published parameters build the
intended structures, and a shard is labelled (here by a cheap pair potential) with a relaxation path and the
elemental volume frames, deterministically; the elemental corpus's frames are unchanged by the shared helper."""
from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.neighborlist import neighbor_list

from gfm_ase.pretraining.corpus import generate_ground_states as G

# coordination (number of neighbours within 3 % of the nearest one) of each structure type
COORDINATION = {"graphite": 3, "a6": 4, "a11": 1, "a8": 2, "a7": 3, "a17": 3, "alpha12": 1, "a5": 4, "a10": 6,
                "hcp_ca": 6, "h2_hcp": 1}


@pytest.mark.parametrize("gs", G.GROUND_STATES, ids=lambda g: f"{g.element}-{g.kind}")
def test_published_parameters_build_the_structure_type(gs):
    atoms = G.build(gs)
    assert set(atoms.get_chemical_symbols()) == {gs.element} and atoms.pbc.all()
    i, d = neighbor_list("id", atoms, 4.0)
    assert d.min() == pytest.approx(gs.nn, rel=0.01)  # the published nearest-neighbour distance
    for a in range(len(atoms)):
        da = np.sort(d[i == a])
        if gs.kind == "alpha12":  # icosahedral B: five neighbours in the icosahedron, one or two between icosahedra
            assert int((da < 2.05).sum()) in (6, 7)
        else:
            assert int((da < 1.03 * da[0]).sum()) == COORDINATION[gs.kind]


def _lj():
    return LennardJones(sigma=2.9, epsilon=0.05, rc=7.0, smooth=True)


def test_shard_relaxes_then_scans_and_is_deterministic():
    n = len(G.GROUND_STATES)
    k = next(j for j, g in enumerate(G.GROUND_STATES) if g.element == "In")  # one structure per shard
    runs = [G.make_shard_fn("sevennet0", n, _lj())(k, np.random.default_rng([0, k])) for _ in range(2)]
    (fa, sa), (fb, sb) = runs
    a, b = fa["sevennet0"], fb["sevennet0"]
    assert len(a) == len(b) > 0 and sa == sb
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and np.array_equal(x.cell, y.cell) and x.info == y.info
    assert {f.info["group"] for f in a} == {"groundstate-sevennet0-In-a6"}
    kinds = {f.info["config_type"] for f in a}
    assert {f"{t}_groundstate_a6" for t in ("relax", "eos", "eosw", "rattle", "strain", "vrattle")} <= kinds
    # the scan is around the relaxed cell: the lowest primitive-cell energy of the E(V) frames is not at an end
    prim = [f for f in a if f.info["config_type"].split("_")[0] in ("eos", "eosw")]
    v = np.array([f.get_volume() / len(f) for f in prim])
    e = np.array([f.get_potential_energy() / len(f) for f in prim])
    assert 0 < int(np.argmin(e[np.argsort(v)])) < len(e) - 1


def test_elemental_frames_unchanged_by_the_shared_volume_family():
    """generate_elemental.family is volume_family on the elemental parent: same frames, same order."""
    from gfm_ase.pretraining.corpus import generate_elemental as E
    from gfm_ase.pretraining.corpus import generate_teacher as T

    lab = T.Labeller("sevennet0", LennardJones(sigma=2.3, epsilon=0.05, rc=6.0, smooth=True))
    a = E.family(lab, "Cu", "fcc", "g", np.random.default_rng(3))
    fam = T.Family(lab, "elemental_fcc", "g")
    b = E.volume_family(fam, E.parent("Cu", "fcc"), np.random.default_rng(3))
    assert len(a) == len(b) > 5
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and x.info == y.info
