"""Surrogate-teacher corpus: prototypes over the periodic table, shards, rejections, reference alignment, offsets."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from gfm_ase.pretraining.corpus import align_references
from gfm_ase.pretraining.corpus import generate_teacher as gen
from gfm_ase.pretraining.corpus import prototypes as P
from gfm_ase.pretraining.corpus.teachers import TEACHERS, get_teacher


def _lj():
    return LennardJones(sigma=2.0, epsilon=0.05, rc=5.0, smooth=True)


def _nn(atoms):
    from ase.neighborlist import neighbor_list

    return float(neighbor_list("d", atoms, 6.0).min())


@pytest.mark.parametrize("proto,a,b", [("rocksalt", "Mg", "O"), ("zincblende", "Zn", "S"), ("wurtzite", "Ga", "N"),
                                       ("cscl", "Cs", "Cl"), ("fluorite", "Ca", "F"), ("antifluorite", "Li", "O"),
                                       ("rutile", "Ti", "O"), ("cdi2", "Ti", "S"), ("l12", "Cu", "Au")])
def test_binary_prototypes_have_the_requested_bond(proto, a, b):
    d = 2.3
    atoms = P.binary(proto, a, b, d)
    assert atoms.pbc.all() and {a, b} == set(atoms.get_chemical_symbols())
    assert _nn(atoms) == pytest.approx(d, rel=0.06)
    formula = {"fluorite": (1, 2), "antifluorite": (2, 1), "rutile": (1, 2), "cdi2": (1, 2), "l12": (3, 1)}
    na, nb = (atoms.get_chemical_symbols().count(s) for s in (a, b))
    want = formula.get(proto, (1, 1))
    assert na * want[1] == nb * want[0]


def test_ternary_prototypes():
    pv = P.perovskite("Sr", "Ti", "O", 1.95)
    assert pv.get_chemical_formula(mode="hill") == "O3SrTi" and _nn(pv) == pytest.approx(1.95, rel=1e-6)
    sp = P.spinel("Mg", "Al", "O", 1.93)
    assert len(sp) == 14 and sp.get_chemical_symbols().count("O") == 8
    assert _nn(sp) == pytest.approx(1.93, rel=0.03)
    hs = P.heusler("Cu", "Mn", "Al", 2.6)
    assert sorted(hs.get_chemical_symbols()) == ["Al", "Cu", "Cu", "Mn"] and _nn(hs) == pytest.approx(2.6, rel=1e-6)


def test_ionic_pairs_are_charge_balanced():
    rng = np.random.default_rng(0)
    for q in (1, 2, 3):
        for focus in ["Mg", "O", "Na", "Cl", "Al", "N", "Fe"]:
            pair = P.ionic_pair(rng, focus, q, q)
            if pair is None:
                continue
            cat, an = pair
            assert focus in pair and q in P.cation_states(cat) and an in P.ANIONS[-q]
    assert P.ionic_pair(rng, "Ar", 2, 2) is None  # argon has no oxidation state (XeF2, XeO3 do exist)


def test_every_element_gets_a_sane_parent():
    assert len(P.ELEMENTS) == 89 and "Pu" in P.ELEMENTS and "Po" not in P.ELEMENTS
    for seed in range(2):
        rng = np.random.default_rng(seed)
        for focus in P.ELEMENTS:
            atoms, ct, kind = gen.make_parent(rng, focus)
            assert focus in atoms.get_chemical_symbols(), (focus, ct)
            assert 1 <= len(atoms) <= 14 and atoms.pbc.all()
            assert not gen.clash(atoms, gen.SETTINGS["clash_factor"]), (focus, ct, atoms)
            assert kind in gen.KIND_WEIGHTS


def test_clash_and_density_guards():
    dense = Atoms("H", cell=np.eye(3) * 0.61, pbc=True)  # sc hydrogen at a covalent-radius spacing
    assert gen.clash(dense, 0.55)
    close = Atoms("Si2", positions=[[0, 0, 0], [0.5, 0, 0]], cell=np.eye(3) * 6, pbc=True)
    assert gen.clash(close, 0.55)
    ok = P.binary("rocksalt", "Mg", "O", 2.1)
    assert not gen.clash(ok, 0.55)


def test_shard_is_seeded_labelled_and_grouped():
    els = ["Mg", "O", "Fe", "Xe", "H", "Cu"]
    shard = gen.make_shard_fn("chgnet", els, calc=_lj())
    frames, stats = shard(3, np.random.default_rng([0, 3]))
    again, _ = gen.make_shard_fn("chgnet", els, calc=_lj())(3, np.random.default_rng([0, 3]))
    frames, again = frames["chgnet"], again["chgnet"]
    assert len(frames) == len(again) > 6 * 5
    for a, b in zip(frames, again):
        np.testing.assert_array_equal(a.positions, b.positions)
    assert sum(v for k, v in stats.items() if k.startswith("parents_")) == len(els)
    groups = {a.info["group"] for a in frames}
    assert len(groups) == len(els) and all(g.startswith("chgnet-3-") for g in groups)
    tags = {a.info["config_type"].split("_")[0] for a in frames}
    assert {"eos", "rattle", "hot"} <= tags
    for a in frames[::5]:  # the stored labels are the calculator's (ASE units, stress Voigt)
        ref = a.copy()
        ref.calc = _lj()
        assert a.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(a.get_forces(), ref.get_forces(), atol=1e-8)
        np.testing.assert_allclose(a.get_stress(), ref.get_stress(), atol=1e-10)
        assert not gen.clash(a, gen.SETTINGS["clash_factor"])


def test_generator_main_writes_a_resumable_manifest(tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(gen, "get_teacher", lambda name: replace(TEACHERS[name], factory=_lj))
    out = tmp_path / "t"
    assert gen.main(["--teacher", "chgnet", "--shards", "1", "--out", str(out), "--elements", "Cu", "Mg"]) == 0
    import json

    man = json.loads((out / "manifest.json").read_text())
    sub = man["subsets"]["chgnet"]
    assert sub["surrogate"] == "CHGNet 0.3.0" and "PBE" in sub["level_of_theory"] and man["complete"]
    assert man["totals"]["chgnet"] > 0 and set(man["elements"]) >= {"Cu", "Mg"}


def test_teacher_registry():
    with pytest.raises(ValueError, match="known"):
        get_teacher("mace")
    for t in TEACHERS.values():
        assert t.surrogate and t.level_of_theory and t.head_hint


def test_alignment_recovers_known_offsets(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator

    from gfm_ase.data import StoreWriter

    delta = {"Cu": -0.31, "Mg": 0.12}
    rng = np.random.default_rng(1)
    path = tmp_path / "dft.h5"
    with StoreWriter(path, name="dft", level_of_theory="PBE") as w:
        for k in range(12):
            n_cu = int(rng.integers(1, 4))
            atoms = P.binary("rocksalt", "Mg", "Cu", 2.6).repeat((1, 1, 2))
            atoms.set_chemical_symbols(["Cu"] * n_cu + ["Mg"] * (len(atoms) - n_cu))
            atoms.rattle(0.05, seed=k)
            ref = atoms.copy()
            ref.calc = _lj()
            e = ref.get_potential_energy() + n_cu * delta["Cu"] + (len(atoms) - n_cu) * delta["Mg"]
            atoms.calc = SinglePointCalculator(atoms, energy=e, forces=ref.get_forces(), stress=ref.get_stress())
            w.append_atoms(atoms)
    r = align_references.align(path, _lj(), max_structures=50)
    assert r["structures"] == 12
    for sym, v in delta.items():
        assert r["energy_offsets"][sym] == pytest.approx(v, abs=1e-5)
    assert r["teacher_energy_mae_meV_atom_after_offset"] < 1e-2 and r["teacher_force_mae_meV_A"] < 1e-6


def test_robust_offsets_ignore_structures_where_the_teacher_fails():
    rng = np.random.default_rng(0)
    n = 40
    A = rng.integers(1, 8, size=(n, 2)).astype(float)
    delta = np.array([0.2, -0.4])
    b = A @ delta + rng.normal(0, 1e-3, n)
    b[:5] += 30.0 * A[:5].sum(axis=1)  # a few compressed cells where the teacher is off by 30 eV/atom
    coef, keep = align_references.robust_offsets(A, b, A.sum(axis=1))
    np.testing.assert_allclose(coef, delta, atol=2e-3)
    assert not keep[:5].any() and keep[5:].all()
    plain, *_ = np.linalg.lstsq(A, b, rcond=None)
    assert np.abs(plain - delta).max() > 1.0  # plain least squares is dragged away by them
