"""``gfm screen --dispersion`` / ``Screener(dispersion=...)``: the D3 term of GFMCalculator(dispersion=...) in
screening results (energy, forces, stress, per-atom energies), in the resume signature and the metadata, and
refused for heads without D3 parameters before any output exists."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write
from ase.lattice.hexagonal import Graphite
from ase.spacegroup import crystal
from conftest import make_tiny_model

pytest.importorskip("dftd3", reason="the d3 extra (dftd3, simple-dftd3's Python API) is not installed")

from gfm_ase.calculator import GFMCalculator  # noqa: E402
from gfm_ase.dispersion import DispersionError  # noqa: E402
from gfm_ase.screening import OutputError, Screener, read_metadata, read_results, screen  # noqa: E402
from gfm_ase.screening.output import parts_dir  # noqa: E402
from gfm_ase.screening.rows import split_per_atom  # noqa: E402


def _tiny(family: str):
    """A tiny one-head model whose head belongs to ``family`` (head name = family)."""
    return make_tiny_model(heads=(family,), elements=("C", "O"), cutoff=4.0, family=family)


@pytest.fixture(scope="module")
def pbe():
    return _tiny("pbe")


def _structures():
    graphite = Graphite(symbol="C", latticeconstant={"a": 2.46, "c": 6.7}, size=(1, 1, 1))
    graphite.rattle(0.03, seed=3)
    graphite.set_cell(graphite.cell.array @ np.array([[1.0, 0.01, 0.0], [0.0, 0.99, 0.02], [0.0, 0.0, 1.01]]),
                      scale_atoms=True)  # sheared: every stress component is non-zero
    co2 = crystal(["C", "O"], basis=[(0, 0, 0), (0.1185, 0.1185, 0.1185)], spacegroup=205,
                  cellpar=[5.624] * 3 + [90] * 3)
    co2.rattle(0.02, seed=4)
    mol = molecule("CO2")
    mol.center(vacuum=4.0)
    mol.pbc = False
    sheet = graphite.copy()  # periodic in two directions: no stress, forces and energy with D3
    sheet.pbc = (True, True, False)
    return [graphite, co2, mol, sheet, graphite.repeat((2, 1, 1))]


@pytest.mark.parametrize("method", ["d3bj", "d3zero"])
def test_screened_d3_equals_the_calculators(pbe, method):
    structures = _structures()
    sc = Screener(pbe, head="pbe", dtype="float64", properties=["forces", "stress", "energies"], max_atoms=20,
                  uncertainty=False, dispersion=method, workers=2)
    plain = Screener(pbe, head="pbe", dtype="float64", properties=["forces"], uncertainty=False).evaluate(structures)
    res = sc.evaluate(structures)
    assert (res["error"] == "").all(), res["error"]
    forces, energies = split_per_atom(res, "forces"), split_per_atom(res, "energies")
    calc = GFMCalculator(model=pbe, head="pbe", dtype="float64", device="cpu", dispersion=method)
    for k, atoms in enumerate(structures):
        atoms = atoms.copy()
        atoms.calc = calc
        e = atoms.get_potential_energy()
        assert res["energy"][k] == pytest.approx(e, abs=1e-9)
        assert res["energy_per_atom"][k] == pytest.approx(e / len(atoms), abs=1e-9)
        assert res["dispersion_energy"][k] == pytest.approx(calc.results["dispersion_energy"], abs=1e-9)
        assert res["energy"][k] - plain["energy"][k] == pytest.approx(calc.results["dispersion_energy"], abs=1e-9)
        assert abs(calc.results["dispersion_energy"]) > 1e-3  # the test sees the term
        np.testing.assert_allclose(forces[k], atoms.get_forces(), atol=1e-9)
        np.testing.assert_allclose(energies[k], atoms.get_potential_energies(), atol=1e-9)
        if atoms.pbc.all():
            np.testing.assert_allclose(res["stress"][k], atoms.get_stress(), atol=1e-10)
        else:
            assert np.isnan(res["stress"][k]).all()


def test_energy_only_screen_adds_the_d3_energy(pbe):
    """Without forces or stress asked for, the D3 energy is still added (and no gradient is needed)."""
    structures = _structures()[:2]
    res = Screener(pbe, head="pbe", dtype="float64", uncertainty=False, dispersion="d3bj").evaluate(structures)
    calc = GFMCalculator(model=pbe, head="pbe", dtype="float64", device="cpu", dispersion="d3bj")
    for k, atoms in enumerate(structures):
        atoms.calc = calc
        assert res["energy"][k] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    assert "forces" not in res and "stress" not in res


def test_heads_without_d3_parameters_are_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(DispersionError, match="head 'xtb'.*D4"):
        Screener(_tiny("xtb"), head="xtb", dispersion="d3bj")
    with pytest.raises(DispersionError, match="head 'emt'.*not a density functional"):
        Screener(_tiny("emt"), head="emt", dispersion="d3zero")
    # an unknown variant fails before the model is resolved
    with pytest.raises(ValueError, match="dispersion: unknown dispersion 'd4'"):
        Screener("no-such-model", head="pbe", dispersion="d4")
    # from the CLI: one line naming the head, no output and no partial results
    from gfm_ase.cli import main

    write(tmp_path / "in.xyz", _structures()[:2], format="extxyz")
    out = tmp_path / "out.h5"
    argv = ["screen", str(tmp_path / "in.xyz"), "-o", str(out), "--model", "gfm-mini", "--head", "gfn2",
            "--dispersion", "d3bj", "--quiet"]
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "head 'gfn2'" in err[0], err
    assert not out.exists() and not parts_dir(out).exists()


def test_dispersion_is_in_the_resume_signature_and_the_metadata(pbe, tmp_path):
    write(tmp_path / "in.xyz", _structures(), format="extxyz")
    out = tmp_path / "d3.h5"
    screen([tmp_path / "in.xyz"], out, model=pbe, head="pbe", dtype="float64", dispersion="d3bj", log=None)
    meta = read_metadata(out)
    assert meta["dispersion"]["method"] == "d3bj" and meta["dispersion"]["functional"] == "pbe"
    assert meta["signature"]["screener"]["dispersion"]["method"] == "d3bj"
    assert "dispersion_energy" in meta["columns"]
    res = read_results(out)
    assert np.isfinite(res["dispersion_energy"]).all()
    # the same run again: recognised as complete; another dispersion (or none): a different run, refused
    again = screen([tmp_path / "in.xyz"], out, model=pbe, head="pbe", dtype="float64", dispersion="d3bj", log=None)
    assert again["evaluated"] == 0 and again["complete"]
    for other in ("d3zero", None):
        with pytest.raises(OutputError, match="different run"):
            screen([tmp_path / "in.xyz"], out, model=pbe, head="pbe", dtype="float64", dispersion=other, log=None)
    # without dispersion: no column, no metadata entry
    plain = tmp_path / "plain.h5"
    screen([tmp_path / "in.xyz"], plain, model=pbe, head="pbe", dtype="float64", log=None)
    assert read_metadata(plain)["dispersion"] is None
    assert "dispersion_energy" not in read_results(plain)
    np.testing.assert_allclose(read_results(plain)["energy"] + res["dispersion_energy"], res["energy"], atol=1e-9)


def test_elements_without_d3_data_are_refused_not_left_out():
    """simple-dftd3 returns no dispersion (0 eV) for atoms beyond its reference data (Z > 103) instead of an
    error: the D3 term refuses them, and screening turns that into an error row."""
    from ase import Atoms

    from gfm_ase.dispersion import D3_MAX_Z, D3Dispersion

    d3 = D3Dispersion("d3bj", "pbe")
    pair = [[0, 0, 0], [0, 0, 3.0]]
    assert d3.compute([D3_MAX_Z, D3_MAX_Z], pair).energy < -1e-3  # the last covered element has a D3 term
    with pytest.raises(DispersionError, match=rf"atomic numbers \[{D3_MAX_Z + 1}\]"):
        d3.compute([D3_MAX_Z + 1, 6], pair)
    model = make_tiny_model(heads=("pbe",), family="pbe")  # no element list: any element is evaluated
    sc = Screener(model, "pbe", dtype="float64", dispersion="d3bj", uncertainty=False)
    res = sc.evaluate([Atoms(numbers=[6, 8], positions=pair, cell=[9, 9, 9], pbc=True),
                       Atoms(numbers=[D3_MAX_Z + 1, 6], positions=pair, cell=[9, 9, 9], pbc=True)])
    assert res["error"][0] == "" and "no reference data" in res["error"][1]
