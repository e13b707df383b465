"""`gfm eval INPUT... -o OUT`: batched predictions equal the calculator's one-by-one results, labels survive beside
them, the prefix is honoured, stress is Voigt-6 with ASE's sign, per-element error tables are right, and bad input
is one line with nothing written."""
from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.checkpoint import save_model
from gfm_ase.cli import main
from gfm_ase.evaluation.errors import ErrorTable
from gfm_ase.evaluation.run import evaluate_files


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model(make_tiny_model(seed=3, heads=("a",), elements=("Cu", "O", "H"), dtype=torch.float64),
                      tmp_path_factory.mktemp("m") / "tiny")


def _sheared_cu():
    a = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 1))
    a.set_cell(a.cell.array @ np.array([[1.0, 0.07, 0.0], [0.0, 1.0, -0.05], [0.03, 0.0, 1.0]]), scale_atoms=True)
    a.rattle(0.04, seed=1)
    return a


def _structures():
    """Labelled frames: sheared Cu, a rattled CuO-like cell, a molecule (no stress), a slab (no stress), one
    unlabelled frame."""
    rng = np.random.default_rng(11)
    cu = _sheared_cu()
    cuo = bulk("Cu", "fcc", a=3.7).repeat((2, 1, 1))
    cuo.symbols[1] = "O"
    cuo.rattle(0.05, seed=2)
    h2o = molecule("H2O")
    h2o.center(vacuum=3.0)
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = (True, True, False)
    slab.center(vacuum=3.0, axis=2)
    frames = []
    for k, a in enumerate([cu, cuo, h2o, slab]):
        n = len(a)
        results = {"energy": -3.0 * n + 0.2 * k, "forces": rng.normal(size=(n, 3))}
        if a.pbc.all():
            results["stress"] = rng.normal(size=6) * 0.01
        if k == 0:  # a second energy label (VASP's free energy): kept beside the energy
            results["free_energy"] = results["energy"] - 0.05
        a.calc = SinglePointCalculator(a, **results)
        a.info["config_type"] = f"c{k}"
        a.arrays["REF_forces"] = 2 * results["forces"]  # a label under another name: carried as it is
        frames.append(a)
    bare = bulk("Cu", "fcc", a=3.62)
    frames.append(bare)
    return frames


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "labelled.extxyz"
    ase.io.write(path, _structures(), format="extxyz")
    return path


def _eval(args, capsys=None):
    rc = main(["eval", *[str(a) for a in args]])
    out = capsys.readouterr() if capsys is not None else None
    return rc, out


def test_predictions_equal_the_calculator_one_by_one(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "pred.extxyz"
    rc, _ = _eval([inputs, "-o", out, "--model", model_dir, "--dtype", "float64", "--max-atoms", "9"], capsys)
    assert rc == 0
    calc = GFMCalculator(model_dir, dtype="float64")
    frames = ase.io.read(out, ":")
    originals = ase.io.read(inputs, ":")
    assert len(frames) == len(originals) == 5
    chunked = tmp_path / "chunked.extxyz"  # the same in chunks of 2 structures (the last one alone)
    evaluate_files([inputs], chunked, model=model_dir, dtype="float64", chunk=2)
    assert [f.info["gfm_energy"] for f in ase.io.read(chunked, ":")] == pytest.approx(
        [f.info["gfm_energy"] for f in frames], abs=1e-9)
    for got, ref in zip(frames, originals):
        ref = ref.copy()
        ref.calc = calc
        assert got.info["gfm_energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(got.arrays["gfm_forces"], ref.get_forces(), rtol=0, atol=1e-8)
        if ref.pbc.all():
            np.testing.assert_allclose(got.info["gfm_stress"], ref.get_stress(voigt=True), rtol=0, atol=1e-10)
        else:
            assert "gfm_stress" not in got.info


def test_stress_is_voigt_in_ase_sign_on_a_sheared_cell(model_dir, tmp_path, capsys):
    """gfm_stress[k] = (1/V) dE/d(strain) for the six Voigt components xx yy zz yz xz xy (tension positive),
    checked by finite differences of the model energy."""
    atoms = _sheared_cu()
    src = tmp_path / "one.extxyz"
    ase.io.write(src, atoms, format="extxyz")
    out = tmp_path / "one.out.extxyz"
    assert _eval([src, "-o", out, "--model", model_dir, "--dtype", "float64"], capsys)[0] == 0
    stress = np.asarray(ase.io.read(out).info["gfm_stress"])
    calc = GFMCalculator(model_dir, dtype="float64")
    pairs = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    h, vol = 1e-5, atoms.get_volume()
    for k, (i, j) in enumerate(pairs):
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] += sign * h / (1 if i == j else 2)
            eps[j, i] += sign * h / 2 if i != j else 0.0
            a = atoms.copy()
            a.set_cell(a.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            a.calc = calc
            energies.append(a.get_potential_energy())
        assert stress[k] == pytest.approx((energies[0] - energies[1]) / (2 * h * vol), abs=1e-6), (k, i, j)
    assert np.abs(stress[3:]).max() > 1e-4  # the shear components are there to be checked


def test_labels_and_ids_survive_beside_the_predictions(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "pred.extxyz"
    assert _eval([inputs, "-o", out, "--model", model_dir], capsys)[0] == 0
    for k, (got, ref) in enumerate(zip(ase.io.read(out, ":"), ase.io.read(inputs, ":"))):
        assert got.info["id"].endswith(f"labelled.extxyz#{k}")
        if ref.calc is None:
            assert got.calc is None
            continue
        # the labels are what ASE reads back as the frame's calculator; predictions are separate keys
        assert got.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(got.get_forces(), ref.get_forces(), atol=1e-8)
        if "stress" in ref.calc.results:
            np.testing.assert_allclose(got.get_stress(), ref.get_stress(), atol=1e-12)
        assert got.info["gfm_energy"] != pytest.approx(ref.get_potential_energy(), abs=1e-6)
        assert got.info["config_type"] == ref.info["config_type"]  # the frame's other keys are kept
        if "free_energy" in ref.calc.results:
            assert got.get_potential_energy(force_consistent=True) == pytest.approx(
                ref.calc.results["free_energy"], abs=1e-9)
        np.testing.assert_allclose(got.arrays["REF_forces"], ref.arrays["REF_forces"], rtol=0, atol=1e-8)


def test_prefix_is_honoured_and_db_output_matches(model_dir, inputs, tmp_path, capsys):
    import ase.db

    xyz, db = tmp_path / "p.extxyz", tmp_path / "p.db"
    assert _eval([inputs, "-o", xyz, "--model", model_dir, "--prefix", "ml_"], capsys)[0] == 0
    assert _eval([inputs, "-o", db, "--model", model_dir, "--prefix", "ml_"], capsys)[0] == 0
    frames = ase.io.read(xyz, ":")
    assert all("ml_energy" in f.info and "gfm_energy" not in f.info for f in frames)
    assert all("ml_forces" in f.arrays and "gfm_forces" not in f.arrays for f in frames)
    with ase.db.connect(db) as con:
        rows = list(con.select())
    assert len(rows) == len(frames)
    for row, f in zip(rows, frames):
        assert row.key_value_pairs["ml_energy"] == pytest.approx(f.info["ml_energy"], abs=1e-6)
        np.testing.assert_allclose(row.data["ml_forces"], f.arrays["ml_forces"], atol=1e-6)
        assert ("ml_stress" in row.data) == ("ml_stress" in f.info)
        if f.calc is not None:  # labels: the row's calculator columns
            assert row.energy == pytest.approx(f.get_potential_energy(), abs=1e-7)


@pytest.mark.parametrize("prefix", ["", "a b"])
def test_bad_prefix_is_refused(model_dir, inputs, tmp_path, capsys, prefix):
    rc, out = _eval([inputs, "-o", tmp_path / "x.extxyz", "--model", model_dir, "--prefix", prefix], capsys)
    assert rc == 2 and "prefix" in out.err
    assert not (tmp_path / "x.extxyz").exists()


def test_error_tables_per_element(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "pred.db"
    js, md = tmp_path / "errors.json", tmp_path / "errors.md"
    rc, cap = _eval([inputs, "-o", out, "--model", model_dir, "--dtype", "float64", "--errors-json", js,
                     "--errors-md", md], capsys)
    assert rc == 0
    doc = json.loads(js.read_text())
    assert md.read_text().strip() in cap.out
    calc = GFMCalculator(model_dir, dtype="float64")
    e_err, f_err, s_err = {}, {}, {}
    for ref in ase.io.read(inputs, ":"):
        if ref.calc is None:
            continue
        labels = dict(ref.calc.results)
        ref.calc = calc
        symbols = set(ref.get_chemical_symbols())
        for el in symbols | {"all"}:
            e_err.setdefault(el, []).append((ref.get_potential_energy() - labels["energy"]) / len(ref))
            if "stress" in labels:
                s_err.setdefault(el, []).append(ref.get_stress() - labels["stress"])
        d = ref.get_forces() - labels["forces"]
        f_err.setdefault("all", []).append(d.ravel())
        for el in symbols:
            f_err.setdefault(el, []).append(d[np.array(ref.get_chemical_symbols()) == el].ravel())
    assert set(doc["rows"]) == {"all", "Cu", "O", "H"}
    gpa = 1 / 160.21766208
    for el, row in doc["rows"].items():
        e = np.array(e_err[el])
        assert row["energy_per_atom"]["mae"] == pytest.approx(1000 * np.abs(e).mean(), rel=1e-9)
        assert row["energy_per_atom"]["rmse"] == pytest.approx(1000 * np.sqrt((e ** 2).mean()), rel=1e-9)
        assert row["energy_per_atom"]["n_structures"] == len(e)
        f = np.concatenate(f_err[el])
        assert row["forces"]["mae"] == pytest.approx(1000 * np.abs(f).mean(), rel=1e-9)
        assert row["forces"]["n_values"] == f.size
        if el in s_err:
            s = np.concatenate(s_err[el])
            assert row["stress"]["mae"] == pytest.approx(np.abs(s).mean() / gpa, rel=1e-6)
        else:
            assert row["stress"]["mae"] is None
    assert doc["units"] == {"energy_per_atom": "meV/atom", "forces": "meV/A", "stress": "GPa"}


def test_error_table_rows_by_element():
    """Unit check of the attribution: energies and stress count for every element of a structure, forces only
    for the atoms of that element."""
    t = ErrorTable()
    t.add([29, 8], {"energy": 0.0, "forces": np.zeros((2, 3))},
          {"energy": 0.2, "forces": np.array([[1.0, 0, 0], [0, 0, 3.0]])})
    t.add([29, 29], {"energy": 0.0}, {"energy": -0.4, "forces": np.ones((2, 3))})
    rows = t.to_dict()["rows"]
    assert rows["O"]["energy_per_atom"]["mae"] == pytest.approx(100.0)
    assert rows["Cu"]["energy_per_atom"]["mae"] == pytest.approx(150.0)
    assert rows["Cu"]["forces"]["mae"] == pytest.approx(1000 / 3)
    assert rows["O"]["forces"]["mae"] == pytest.approx(1000.0)
    assert rows["all"]["forces"]["n_values"] == 6


def test_stores_are_inputs_and_ids_are_kept(model_dir, tmp_path, capsys):
    from gfm_ase.data import StoreWriter, StructureRecord

    store = tmp_path / "s.h5"
    a = _sheared_cu()
    with StoreWriter(store, name="s") as w:
        w.append(StructureRecord(a.positions, a.numbers, a.cell.array, a.pbc, energy=-10.0, id="mp-1:0"))
    out = tmp_path / "s.extxyz"
    assert _eval([store, "-o", out, "--model", model_dir], capsys)[0] == 0
    got = ase.io.read(out)
    assert got.info["id"] == "mp-1:0" and got.get_potential_energy() == -10.0 and "gfm_stress" in got.info
    # converter options cannot apply to a store: refused, not ignored
    rc, cap = _eval([store, "-o", tmp_path / "t.extxyz", "--model", model_dir, "--option", "stress_unit=bar"], capsys)
    assert rc == 2 and "--option" in _one_line(cap.err) and not (tmp_path / "t.extxyz").exists()


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_existing_output_is_refused_and_untouched(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "x.extxyz"
    out.write_text("keep\n")
    rc, cap = _eval([inputs, "-o", out, "--model", model_dir], capsys)
    assert rc == 2 and "exists" in _one_line(cap.err) and "--overwrite" in cap.err
    assert out.read_text() == "keep\n"
    rc, cap = _eval([inputs, "-o", out, "--model", model_dir, "--overwrite"], capsys)
    assert rc == 0 and len(ase.io.read(out, ":")) == 5


@pytest.mark.parametrize("case", ["unknown-suffix", "no-inputs", "unknown-input", "missing-input",
                                  "existing-table"])
def test_bad_input_is_one_line_exit_2(model_dir, inputs, tmp_path, capsys, case):
    out = tmp_path / "x.extxyz"
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "e.json").write_text("{}")
    argv, fragment = {
        "unknown-suffix": ([inputs, "-o", tmp_path / "x.cif"], "unknown export format"),
        "no-inputs": (["-o", out], "no input"),
        "unknown-input": ([tmp_path / "notes.txt", "-o", out], "cannot detect the format"),
        "missing-input": ([tmp_path / "nope.extxyz", "-o", out], "nope.extxyz"),
        "existing-table": ([inputs, "-o", out, "--errors-json", tmp_path / "e.json"], "e.json exists"),
    }[case]
    rc, cap = _eval([*argv, "--model", model_dir], capsys)
    assert rc == 2
    assert fragment in _one_line(cap.err) and cap.err.startswith("gfm eval: error:")
    assert not out.exists() and not (tmp_path / "x.cif").exists()
    assert (tmp_path / "e.json").read_text() == "{}"


def test_failure_midway_writes_nothing(model_dir, tmp_path):
    """A structure the head cannot evaluate (an element it was not trained on) after good ones: an error naming
    it, no OUT, no temporary file, no tables."""
    good = _structures()[:2]
    bad = bulk("Si", "diamond", a=5.43)
    src = tmp_path / "mixed.extxyz"
    ase.io.write(src, [*good, bad], format="extxyz")
    out = tmp_path / "out" / "x.extxyz"
    out.parent.mkdir()
    with pytest.raises(ValueError, match=r"mixed.extxyz#2: .*Si"):
        evaluate_files([src], out, model=model_dir, chunk=1, errors_json=out.parent / "e.json")
    assert list(out.parent.iterdir()) == []
