"""Formation energies and energy above the hull (pymatgen PhaseDiagram) against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from conftest import make_tiny_model

from gfm_ase.screening import FormationReference, HullReference, Screener, read_results, screen


def test_hull_distance_hand_computed_binary():
    # Li: -1 eV/atom, O: -2 eV/atom, LiO: -5 eV per 2 atoms = -2.5 eV/atom (formation -1.0 eV/atom)
    hull = HullReference([("Li", -1.0), ("O2", -4.0), ("LiO", -5.0), ("Li2O", -6.0)])
    # Li2O: -2 eV/atom; the hull at x_O = 1/3 between Li (x=0, -1) and LiO (x=1/2, -2.5) is -1 - 3 * (1/3) = -2
    # so Li2O lies exactly on the hull (a degenerate point): e_above_hull = 0
    formulas = ["Li3O", "LiO", "Li2O", "LiO2", "Li", "NaO"]
    e = np.array([-1.9, -2.5, -2.0, -2.0, -0.9, -3.0])
    got = hull.e_above_hull(formulas, e)
    # Li3O (x=1/4): hull -1 - 3 * 1/4 = -1.75 -> -1.9 is 0.15 below;  LiO2 (x=2/3): between LiO (-2.5) and
    # O (-2): -2.5 + (2/3 - 1/2) / (1/2) * 0.5 = -2.3333 -> -2.0 is 0.3333 above;  Li: 0.1 above its reference
    np.testing.assert_allclose(got[:5], [-0.15, 0.0, 0.0, 1 / 3, 0.1], atol=1e-12)
    assert np.isnan(got[5])  # Na is not in the diagram
    # formation energies against the elemental phases: x_Li * (-1) + x_O * (-2)
    form = hull.formation(formulas, e)
    np.testing.assert_allclose(form[:5], [-1.9 + 1.25, -2.5 + 1.5, -2.0 + 4 / 3, -2.0 + 5 / 3, 0.1], atol=1e-12)
    assert np.isnan(form[5])
    assert [name for name, _ in hull.stable()] == ["Li", "LiO", "O2"]  # Li2O is on the hull line, not a vertex


def test_hull_needs_elemental_references():
    with pytest.raises(ValueError, match="elemental reference"):
        HullReference([("LiO", -5.0), ("Li", -1.0)])


def test_formation_from_head_references():
    ref = FormationReference({"Si": -5.0, "O": -3.0}, source="head")
    got = ref(["SiO2", "Si", "SiC"], np.array([-4.0, -5.5, -1.0]))
    np.testing.assert_allclose(got[:2], [-4.0 + (5 + 6) / 3, -0.5])
    assert np.isnan(got[2])


def test_screen_with_model_evaluated_hull(tmp_path):
    """Reference phases evaluated with the same model: the stable ones are on the hull (0), every screened
    structure is at or above it, and formation energies use the lowest elemental phases."""
    model = make_tiny_model(seed=3, heads=("a",))
    na = bulk("Na", "bcc", a=4.23)
    cl = bulk("Cl", "fcc", a=4.0)
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    nacl2 = bulk("NaCl", "rocksalt", a=5.9)
    refs = [na, cl, nacl, nacl2]
    write(tmp_path / "refs.xyz", refs, format="extxyz")
    cands = [bulk("NaCl", "rocksalt", a=a) for a in (5.5, 5.64, 5.8)]
    for k, c in enumerate(cands):
        c.rattle(0.03, seed=k)
    cands += [na.repeat((2, 1, 1)), nacl.repeat((1, 1, 2))]
    write(tmp_path / "cands.xyz", cands, format="extxyz")
    out = tmp_path / "hull.h5"
    screen([tmp_path / "cands.xyz"], out, model=model, dtype="float64", hull_references=[tmp_path / "refs.xyz"],
           shortlist=2, log=None)
    res = read_results(out)
    sc = Screener(model, dtype="float64")
    from ase.io import read

    r = sc.evaluate(read(tmp_path / "refs.xyz", index=":"))
    c = sc.evaluate(read(tmp_path / "cands.xyz", index=":"))
    mu_na, mu_cl = r["energy_per_atom"][0], r["energy_per_atom"][1]
    e_nacl = min(r["energy_per_atom"][2], r["energy_per_atom"][3])
    hull_nacl = min(e_nacl, 0.5 * (mu_na + mu_cl))
    np.testing.assert_allclose(res["formation_energy_per_atom"][:3], c["energy_per_atom"][:3] - 0.5 * (mu_na + mu_cl),
                               atol=1e-9)
    np.testing.assert_allclose(res["e_above_hull"][:3], c["energy_per_atom"][:3] - hull_nacl, atol=1e-9)
    assert res["e_above_hull"][3] == pytest.approx(c["energy_per_atom"][3] - mu_na, abs=1e-9)  # Na supercell
    assert res["e_above_hull"][4] == pytest.approx(r["energy_per_atom"][2] - hull_nacl, abs=1e-9)
    shortlist = (tmp_path / "hull.h5.shortlist.csv").read_text().splitlines()
    best = np.argsort(res["e_above_hull"])[:2]
    assert [line.split(",")[1] for line in shortlist[1:]] == [res["id"][k] for k in best]


def test_stored_hull_energies(tmp_path):
    model = make_tiny_model(seed=3, heads=("a",))
    refs = []
    for a, e in ((bulk("Na", "bcc", a=4.23), -1.3), (bulk("Cl", "fcc", a=4.0), -1.8),
                 (bulk("NaCl", "rocksalt", a=5.64), -7.0)):
        a.calc = SinglePointCalculator(a, energy=e)
        refs.append(a)
    write(tmp_path / "refs.xyz", refs, format="extxyz")
    write(tmp_path / "c.xyz", [bulk("NaCl", "rocksalt", a=5.64)], format="extxyz")
    out = tmp_path / "s.h5"
    screen([tmp_path / "c.xyz"], out, model=model, dtype="float64", hull_references=[tmp_path / "refs.xyz"],
           hull_energies="stored", log=None)
    res = read_results(out)
    # NaCl (2 atoms) at -3.5 eV/atom is below Na + Cl (-1.55 eV/atom): the hull at NaCl is -3.5
    assert res["e_above_hull"][0] == pytest.approx(res["energy_per_atom"][0] + 3.5, abs=1e-9)
    assert res["formation_energy_per_atom"][0] == pytest.approx(res["energy_per_atom"][0] + 1.55, abs=1e-9)
