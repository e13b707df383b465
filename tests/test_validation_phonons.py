"""Phonon suite: references written by EMT in several layouts compare to EMT with zero error; scaled forces give
the predicted error; our reading of the shared phonopy examples agrees with phonopy's own readers."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

pytest.importorskip("phonopy")

from gfm_ase.validation.phonons import ReferenceError, load_references, run_phonons  # noqa: E402
from gfm_ase.validation.phonons.compute import reference_phonopy  # noqa: E402
from gfm_ase.validation.phonons.qha import EVReference, ThermalReference  # noqa: E402
from gfm_ase.validation.phonons.reference import PhononReference  # noqa: E402

A_EMT_CU = 3.5898  # close to EMT's own Cu lattice constant (tests do not rely on it being exact)
MESH = [6, 6, 6]


def _emt_phonopy(a=A_EMT_CU, dim=3, force_scale=1.0):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    cu = bulk("Cu", "fcc", a=a)  # primitive cell, 3x3x3 supercell: 27 atoms, one displacement
    unit = PhonopyAtoms(symbols=cu.get_chemical_symbols(), cell=cu.cell.array,
                        scaled_positions=cu.get_scaled_positions())
    ph = Phonopy(unit, supercell_matrix=np.diag([dim] * 3), primitive_matrix="auto")
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        from ase import Atoms

        at = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        at.calc = EMT()
        forces.append(at.get_forces() * force_scale)
    ph.forces = forces
    return ph, cu


def _write_yaml_force_sets(folder, **kw):
    from phonopy.file_IO import write_FORCE_SETS

    ph, cu = _emt_phonopy(**kw)
    folder.mkdir(parents=True, exist_ok=True)
    ph.save(folder / "phonopy_disp.yaml", settings={"force_sets": False})
    write_FORCE_SETS(ph.dataset, folder / "FORCE_SETS")
    return ph, cu


def _assert_zero(result, tol=1e-5):
    s = result.summary
    assert s["n_failed"] == 0, result.details["failed"]
    assert s["n_compared"] >= 1
    assert s["mesh_mae_THz"] < tol and s["band_mae_THz"] < tol and abs(s["max_freq_abs_err_THz"]) < tol
    assert s["fc_rel_error"] < tol


def test_yaml_and_force_sets_from_same_calculator_give_zero_error(tmp_path):
    _write_yaml_force_sets(tmp_path / "ref")
    res = run_phonons(EMT(), tmp_path / "ref", mesh=MESH, band_points=11, outdir=tmp_path / "out")
    _assert_zero(res)
    row = res.details["phonons"]["ref"]
    assert row["max_freq_ref_THz"] > 5  # Cu phonons reach ~7 THz: a real comparison, not of zeros
    assert not row["imaginary_calc"] and not row["imaginary_ref"]
    out = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert out["suite"] == "phonons" and out["summary"]["mesh_mae_THz"] < 1e-6
    assert (tmp_path / "out" / "report.md").is_file()
    assert (tmp_path / "out" / "phonons_ref.png").stat().st_size > 1000


def test_scaled_reference_forces_give_the_predicted_error(tmp_path):
    scale = 1.1
    _write_yaml_force_sets(tmp_path / "ref", force_scale=scale)
    res = run_phonons(EMT(), tmp_path / "ref", mesh=MESH, band_points=11)
    row = res.details["phonons"]["ref"]
    ph_ref = reference_phonopy(load_references(tmp_path / "ref")[0])
    ph_ref.run_mesh(MESH, is_gamma_center=True)
    f, w = np.asarray(ph_ref.mesh.frequencies), np.asarray(ph_ref.mesh.weights)
    factor = 1 - 1 / np.sqrt(scale)  # frequencies scale with the square root of the force constants
    expected_mae = np.sum(w[:, None] * np.abs(f)) / (w.sum() * f.shape[1]) * factor
    assert row["mesh_mae_THz"] == pytest.approx(expected_mae, rel=1e-5)
    assert row["max_freq_err_THz"] == pytest.approx(-f.max() * factor, rel=1e-5)
    assert row["fc_rel_error"] == pytest.approx(1 - 1 / scale, rel=1e-6)


def test_unit_cell_and_force_sets_without_yaml_infers_supercell(tmp_path):
    ph, cu = _write_yaml_force_sets(tmp_path / "tmp")
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "FORCE_SETS").write_bytes((tmp_path / "tmp" / "FORCE_SETS").read_bytes())
    write(ref / "POSCAR-unitcell", cu, format="vasp", direct=True)
    refs = load_references(ref)
    assert len(refs) == 1 and np.diag(refs[0].supercell_matrix).tolist() == [3, 3, 3]
    assert any("inferred" in n for n in refs[0].notes)
    _assert_zero(run_phonons(EMT(), refs, mesh=MESH, band_points=11))


def test_force_files_in_an_archive_are_matched_by_geometry(tmp_path):
    """Extended-XYZ force files with shuffled atom order, arbitrary names, packed in a tar.xz, plus the
    undisplaced supercell: each is recognised by its geometry."""
    from ase import Atoms

    ph, _ = _write_yaml_force_sets(tmp_path / "ref")
    (tmp_path / "ref" / "FORCE_SETS").unlink()
    rng = np.random.default_rng(1)
    cells = list(ph.supercells_with_displacements) + [ph.supercell]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for k, sc in enumerate(cells):
            at = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
            perm = rng.permutation(len(at))
            at = at[perm]
            at.positions += np.array([0.3, -0.2, 0.1])  # a rigid shift must not matter
            at.calc = EMT()
            at.get_forces()
            s = io.StringIO()
            write(s, at, format="extxyz")
            data = s.getvalue().encode()
            info = tarfile.TarInfo(f"run_{'xyz'[k % 3]}{k}/calc.xyz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "ref" / "forces.tar.xz").write_bytes(buf.getvalue())
    refs = load_references(tmp_path / "ref")
    assert any("undisplaced" in n for n in refs[0].notes)
    # extxyz keeps 8 decimals of force; sqrt() amplifies that noise near the zero acoustic modes at Gamma
    _assert_zero(run_phonons(EMT(), refs, mesh=MESH, band_points=11), tol=1e-3)


def test_random_displacement_dataset_type2(tmp_path):
    """FORCE_SETS of type 2 (every atom displaced, e.g. random snapshots): force constants by symfc, same answer."""
    pytest.importorskip("symfc")
    from ase import Atoms
    from phonopy import Phonopy
    from phonopy.file_IO import write_FORCE_SETS
    from phonopy.structure.atoms import PhonopyAtoms

    cu = bulk("Cu", "fcc", a=A_EMT_CU)
    ph = Phonopy(PhonopyAtoms(symbols=["Cu"], cell=cu.cell.array, scaled_positions=[[0, 0, 0]]),
                 supercell_matrix=np.diag([3, 3, 3]), primitive_matrix="P")
    ph.generate_displacements(distance=0.02, number_of_snapshots=2, random_seed=3)
    forces = []
    for sc in ph.supercells_with_displacements:
        at = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        at.calc = EMT()
        forces.append(at.get_forces())
    ph.forces = forces
    ref = tmp_path / "ref"
    ref.mkdir()
    ph.save(ref / "phonopy_disp.yaml", settings={"force_sets": False})
    write_FORCE_SETS(ph.dataset, ref / "FORCE_SETS")
    refs = load_references(ref)
    assert "displacements" in refs[0].dataset and len(refs[0].dataset["displacements"]) == 2
    _assert_zero(run_phonons(EMT(), refs, mesh=MESH, band_points=11))


def test_force_constants_only_reference(tmp_path):
    from phonopy.file_IO import write_FORCE_CONSTANTS

    ph, _ = _emt_phonopy()
    ph.produce_force_constants()
    ref = tmp_path / "ref"
    ref.mkdir()
    ph.save(ref / "phonopy_disp.yaml", settings={"force_sets": False, "displacements": False})
    write_FORCE_CONSTANTS(ph.force_constants, ref / "FORCE_CONSTANTS")
    refs = load_references(ref)
    assert refs[0].force_constants is not None and refs[0].dataset is None
    _assert_zero(run_phonons(EMT(), refs, mesh=MESH, band_points=11), tol=1e-4)


def test_relax_first_on_a_strained_reference(tmp_path):
    """A reference built by EMT at a 3% expanded lattice: at the reference geometry EMT reproduces it exactly;
    relaxed first, EMT contracts the cell (phonons stiffen) and the comparison shows it."""
    _write_yaml_force_sets(tmp_path / "ref", a=A_EMT_CU * 1.03)
    fixed = run_phonons(EMT(), tmp_path / "ref", mesh=MESH, band_points=11)
    _assert_zero(fixed)
    relaxed = run_phonons(EMT(), tmp_path / "ref", relax=True, mesh=MESH, band_points=11)
    row = relaxed.details["phonons"]["ref"]
    assert relaxed.summary["mode"] == "relax-first"
    assert row["relax_converged"] and row["volume_change_pct"] < -5
    assert row["max_freq_err_THz"] > 0.3 and row["mesh_mae_THz"] > 0.1


def test_uncovered_elements_are_skipped_and_bad_folders_explained(tmp_path):
    _write_yaml_force_sets(tmp_path / "ref")

    class OnlyAl(EMT):
        elements = ["Al"]

    res = run_phonons(OnlyAl(), tmp_path / "ref", mesh=MESH)
    assert res.summary["n_skipped"] == 1 and res.summary["n_compared"] == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReferenceError, match="no phonon reference"):
        load_references(tmp_path / "empty")
    (tmp_path / "ref" / "FORCE_SETS").write_text("garbage\n")
    with pytest.raises(ReferenceError, match="FORCE_SETS"):
        load_references(tmp_path / "ref")


def test_cli_phonons_emt(tmp_path):
    from gfm_ase.cli import main

    _write_yaml_force_sets(tmp_path / "ref")
    rc = main(["validate", "phonons", "--calculator", "emt", "--reference", str(tmp_path / "ref"),
               "--mesh", "6", "6", "6", "--band-points", "11", "-o", str(tmp_path / "out")])
    assert rc == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    assert s["mesh_mae_THz"] < 1e-6
    assert "Phonons" in (tmp_path / "out" / "report.md").read_text()


# ---- shared phonopy examples ----------------------------------------------------------------------------------
EXPECTED = {  # example -> (reference kinds, count)
    "Si": ("PhononReference", 1), "NaCl": ("PhononReference", 1), "SnO2": ("PhononReference", 1),
    "ZnO": ("PhononReference", 1), "Cr": ("PhononReference", 1), "NaCl-QE": ("PhononReference", 1),
    "Si-QE": ("PhononReference", 1), "NaCl-gruneisen": ("PhononReference", 3),
    "Si-QHA": ("PhononReference", 11), "Cu-QHA": ("ThermalReference", 11), "Al-QHA": ("ThermalReference", 11),
}


@pytest.mark.shared
def test_every_shared_phonopy_example_layout_parses(shared_data):
    root = shared_data / "phonopy_examples"
    if not root.is_dir():
        pytest.skip("phonopy_examples absent")
    seen = set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        refs = load_references(folder)
        kinds = {}
        for r in refs:
            kinds[type(r).__name__] = kinds.get(type(r).__name__, 0) + 1
        if folder.name in EXPECTED:
            kind, count = EXPECTED[folder.name]
            assert kinds.get(kind) == count, (folder.name, kinds)
            seen.add(folder.name)
        first = next((r for r in refs if isinstance(r, PhononReference)), None)
        if first is not None and first.has_nac:  # BORN is parsed lazily: parse one per folder here
            first.phonopy()
            assert first.nac["born"].shape == (len(first.phonopy().primitive), 3, 3)
            assert np.all(np.linalg.eigvalsh(first.nac["dielectric"]) > 1)
        for r in refs:
            if isinstance(r, PhononReference):
                assert r.dataset is not None or r.force_constants is not None
                if r.dataset is not None:  # forces present and finite, one per displaced supercell
                    for d in r.dataset["first_atoms"]:
                        assert d["forces"].shape == (r.n_supercell_atoms, 3) and np.isfinite(d["forces"]).all()
                        assert 0.005 < np.linalg.norm(d["displacement"]) < 0.05  # A (QE bohr converted)
            elif isinstance(r, ThermalReference):
                assert r.temperatures[0] == 0 and len(r.temperatures) > 10
            else:
                assert isinstance(r, EVReference) and len(r.volumes) >= 5
    assert seen == set(EXPECTED) & {p.name for p in root.iterdir()}


def _phonopy_own(folder, calculator, force_files):
    """phonopy's own reading of the same folder (its yaml loader and force-file parser)."""
    import phonopy
    from phonopy.interface.calculator import get_calc_dataset

    ph = phonopy.load(folder / "phonopy_disp.yaml", produce_fc=False, is_nac=False)
    data = get_calc_dataset(calculator, len(ph.supercell), [str(folder / f) for f in force_files], verbose=False)
    ph.forces = np.asarray(data["forces"])
    ph.produce_force_constants()
    return ph


@pytest.mark.shared
@pytest.mark.parametrize("name,calculator,files", [
    ("Si", "vasp", ["vasprun.xml"]),
    ("NaCl-QE", "qe", ["NaCl-001.out", "NaCl-002.out"]),
    ("Si-QE", "qe", ["supercell-001.out"]),
])
def test_frequencies_agree_with_phonopys_own_readers(shared_data, name, calculator, files):
    folder = shared_data / "phonopy_examples" / name
    if not folder.is_dir():
        pytest.skip(f"{name} absent")
    pytest.importorskip("phonopy.interface.calculator")
    ours = reference_phonopy(load_references(folder)[0], nac=False)
    try:
        theirs = _phonopy_own(folder, calculator, files)
    except (ImportError, AttributeError, TypeError) as exc:  # pragma: no cover - phonopy API drift
        pytest.skip(f"phonopy's force-file API unavailable: {exc}")
    q = [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0.3, 0.1, 0.2], [0.5, 0.5, 0.5]]
    ours.run_qpoints(q)
    theirs.run_qpoints(q)
    f_ours, f_theirs = ours.qpoints.frequencies, theirs.qpoints.frequencies  # THz: phonopy converts its units
    assert np.abs(f_theirs).max() > 5
    # at Gamma the acoustic modes are ~0 in both, up to how each removes the net force (we remove it from every
    # force file like `phonopy -f`; a single-displacement fit does not enforce the acoustic sum rule)
    optical = np.abs(f_theirs) > 0.5
    np.testing.assert_allclose(f_ours[optical], f_theirs[optical], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(f_ours[~optical], f_theirs[~optical], atol=0.1)


class _Harmonic:
    """An ASE calculator replaying a reference's own force constants: F_i = -sum_j Phi_ij u_j."""

    def __new__(cls, ph):
        from ase.calculators.calculator import Calculator, all_changes

        perfect = ph.supercell
        fc = ph.force_constants
        cell0 = np.asarray(perfect.cell)

        class Harmonic(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                d = self.atoms.get_scaled_positions(wrap=False) - perfect.scaled_positions
                u = (d - np.round(d)) @ self.atoms.cell.array
                if np.abs(self.atoms.cell.array - cell0).max() > 1e-6:
                    raise ValueError("harmonic replay only at the reference cell")
                f = -np.einsum("ijab,jb->ia", fc, u)
                self.results = {"energy": float(-0.5 * np.sum(f * u)), "forces": f}

        return Harmonic()


@pytest.mark.shared
@pytest.mark.parametrize("name", ["NaCl", "ZnO"])
def test_shared_reference_replayed_by_its_own_force_constants_gives_zero(shared_data, name):
    """Full pipeline on real data (BORN/NAC, hexagonal band path): a calculator built from the reference's force
    constants must reproduce the reference."""
    folder = shared_data / "phonopy_examples" / name
    if not folder.is_dir():
        pytest.skip(f"{name} absent")
    ref = load_references(folder)[0]
    res = run_phonons(_Harmonic(reference_phonopy(ref, nac=False)), [ref], mesh=[8, 8, 8], band_points=21)
    row = res.details["phonons"][name]
    assert row["nac"] and row["max_freq_ref_THz"] > 5
    # not bit-exact: the refit removes the net force of the replayed forces, which the reference force constants
    # (acoustic sum rule not enforced) do not give exactly zero: ~1e-4 THz on average, a few 1e-3 at most
    assert row["mesh_mae_THz"] < 1e-3 and row["band_mae_THz"] < 1e-3 and abs(row["max_freq_err_THz"]) < 1e-2


@pytest.mark.shared
def test_emt_on_shared_cu_qha_thermodynamics_and_ev(shared_data, tmp_path):
    folder = shared_data / "phonopy_examples" / "Cu-QHA"
    if not folder.is_dir():
        pytest.skip("Cu-QHA absent")
    refs = load_references(folder)
    picked = [r for r in refs if isinstance(r, EVReference) or r.name.endswith("POSCAR-05")]
    res = run_phonons(EMT(), picked, mesh=20.0, outdir=tmp_path)
    th = res.details["thermal"]["Cu-QHA/POSCAR-05"]
    ev = res.details["eos"]["Cu-QHA/e-v.dat"]
    # EMT is a fair model of Cu: free energies within a few kJ/mol/atom, Cv at high T -> 3R both, V0 within 5%
    assert th["F_mae_kJ_mol_atom"] < 5 and th["Cv_mae_J_K_mol_atom"] < 1 and not th["imaginary_calc"]
    assert abs(ev["v0_err_pct"]) < 5 and ev["delta_meV"] < 30
    assert (tmp_path / "thermal_Cu-QHA.png").is_file()


def test_compare_table_marks_imaginary_modes_the_reference_lacks():
    from gfm_ase.validation.suites.phonons import compare_table

    def run(**rows):
        return {"details": {"phonons": rows}}

    ok = {"band_mae_THz": 0.1, "mesh_mae_THz": 0.1, "imaginary_calc": False, "imaginary_ref": False}
    bad = {"band_mae_THz": 2.0, "mesh_mae_THz": 2.1, "imaginary_calc": True, "imaginary_ref": False,
           "min_freq_calc_THz": -2.24}
    both = {**bad, "imaginary_ref": True}  # the DFT is unstable too: not marked
    lines = compare_table({"a": run(NaCl=ok, X=both), "b": run(NaCl=bad, X=both)})
    nacl = next(r for r in lines if r.startswith("| NaCl |"))
    assert nacl == "| NaCl | 0.10 / 0.10 | 2.00 / 2.10 (imaginary, min -2.2) |"
    assert "imaginary" not in next(r for r in lines if r.startswith("| X |"))
    assert lines[-1] == "| references with imaginary modes the DFT does not have | 0 | 1 |"
