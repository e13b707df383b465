"""Every converter, on a small file written here in that exact format, with a sheared cell where the format has
stress: the stored stress must equal ASE's EMT stress of the same cell (pins units, sign and component order)."""
from __future__ import annotations

import json
import zlib

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from gfm_ase.data import Store
from gfm_ase.data.converters import ConversionError, convert, detect_format
from gfm_ase.units import BAR, BOHR, HARTREE, KBAR


@pytest.fixture(scope="module")
def sheared():
    """Sheared, rattled Cu3Al-ish cell: all six stress components distinct and non-zero."""
    a = bulk("Cu", "fcc", a=3.7, cubic=True)
    a.numbers[1] = 13
    a.set_cell(a.cell.array @ np.array([[1.0, 0.04, 0.06], [0.0, 0.97, 0.08], [0.0, 0.0, 1.03]]), scale_atoms=True)
    a.rattle(0.04, seed=5)
    a.calc = EMT()
    e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
    assert np.all(np.abs(s) > 1e-4) and len(set(np.round(s, 6))) == 6
    return a, e, f, s


def tensor(s):
    """ASE Voigt (xx yy zz yz xz xy) -> full 3x3, written out explicitly (independent of gfm_ase.units)."""
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def check_one(path, atoms, e, f, s, *, stress=True):
    """Text formats print ~8 decimals: compare at 1e-6, far below the differences between stress components."""
    store = Store(path)
    assert len(store) >= 1
    r = store[0]
    np.testing.assert_allclose(r.positions, atoms.positions, atol=1e-6)
    np.testing.assert_allclose(r.cell, atoms.cell.array, atol=1e-6)
    np.testing.assert_array_equal(r.numbers, atoms.numbers)
    assert r.energy == pytest.approx(e, abs=1e-6)
    np.testing.assert_allclose(r.forces, f, atol=1e-6)
    if stress:
        np.testing.assert_allclose(r.stress, s, rtol=1e-6, atol=1e-9)
    return store


def pmg_structure_dict(atoms):
    """A pymatgen Structure.as_dict() (through pymatgen itself when installed)."""
    try:
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError:  # written by hand in the same layout
        return {"@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0,
                "lattice": {"matrix": atoms.cell.array.tolist()},
                "sites": [{"species": [{"element": s, "occu": 1}], "xyz": p.tolist(), "label": s}
                          for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)]}
    a = atoms.copy()
    a.calc = None
    return AseAtomsAdaptor.get_structure(a).as_dict()


# ------------------------------------------------------------------------------------------------------------ ase
def test_ase_extxyz_and_traj(tmp_path, sheared):
    import ase.io
    atoms, e, f, s = sheared
    ase.io.write(tmp_path / "x.extxyz", [atoms, atoms], format="extxyz")
    ase.io.write(tmp_path / "x.traj", atoms)
    for name in ("x.extxyz", "x.traj"):
        assert detect_format(tmp_path / name) == "ase"
        n, rep = convert([tmp_path / name], tmp_path / "o.h5")
        check_one(tmp_path / "o.h5", atoms, e, f, s)


def test_ase_extxyz_with_bar_compression_stress(tmp_path, sheared):
    """FitSNAP's extxyz files: stress="9 values" in bar, compression positive, under the ASE key."""
    atoms, e, f, s = sheared
    p = -tensor(s) / BAR
    lat = " ".join(f"{x:.12f}" for x in atoms.cell.array.ravel())
    lines = [str(len(atoms)),
             f'Lattice = "{lat}" Properties=species:S:1:pos:R:3:forces:R:3 energy={e:.12f} '
             f'stress="{" ".join(f"{x:.10f}" for x in p.ravel())}"']
    for sym, pos, ff in zip(atoms.get_chemical_symbols(), atoms.positions, f):
        lines.append(f"{sym} " + " ".join(f"{x:.12f}" for x in (*pos, *ff)))
    (tmp_path / "ta.xyz").write_text("\n".join(lines) + "\n")
    convert([tmp_path / "ta.xyz"], tmp_path / "o.h5", options=dict(stress_unit="bar", stress_sign="compression"))
    check_one(tmp_path / "o.h5", atoms, e, f, s)


def test_ase_db_energy_from_data_in_hartree(tmp_path):
    import ase.db
    m = molecule("CH4")
    with ase.db.connect(tmp_path / "q.db") as db:
        db.write(m, data={"energy_U0": -40.47893})
    convert([tmp_path / "q.db"], tmp_path / "o.h5", options=dict(energy_key="energy_U0", energy_unit="Hartree"))
    r = Store(tmp_path / "o.h5")[0]
    assert r.energy == pytest.approx(-40.47893 * HARTREE)
    assert not r.pbc.any() and r.forces is None


# --------------------------------------------------------------------------------------------------------- mlearn
def mlearn_entry(atoms, e, f, s, group="Elastic"):
    t = -tensor(s) / KBAR  # kbar, compression positive
    virial = [t[0, 0], t[1, 1], t[2, 2], t[0, 1], t[0, 2], t[1, 2]]  # mlearn order xx yy zz xy xz yz
    return {"structure": pmg_structure_dict(atoms), "num_atoms": len(atoms), "element": "Cu", "group": group,
            "tag": "train", "description": "sheared",
            "outputs": {"energy": e, "forces": f.tolist(), "virial_stress": virial}}


def test_mlearn(tmp_path, sheared):
    atoms, e, f, s = sheared
    (tmp_path / "training.json").write_text(json.dumps([mlearn_entry(atoms, e, f, s)] * 3))
    assert detect_format(tmp_path / "training.json") == "mlearn-json"
    n, _ = convert([tmp_path / "training.json"], tmp_path / "o.h5")
    store = check_one(tmp_path / "o.h5", atoms, e, f, s)
    assert n == 3 and store[2].group == "Cu/Elastic"


def test_mlearn_bad_record_named_and_skippable(tmp_path, sheared):
    atoms, e, f, s = sheared
    bad = mlearn_entry(atoms, e, f, s)
    bad["outputs"]["forces"] = f.tolist()[:-1]  # truncated
    nan = mlearn_entry(atoms, e, f, s)
    nan["outputs"]["energy"] = float("nan")
    (tmp_path / "t.json").write_text(json.dumps([mlearn_entry(atoms, e, f, s), bad, nan]))
    with pytest.raises(ConversionError, match=r"t\.json, record 1: forces have shape"):
        convert([tmp_path / "t.json"], tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()
    n, rep = convert([tmp_path / "t.json"], tmp_path / "o.h5", skip_bad=True)
    assert n == 1 and len(rep) == 2
    assert "record 1" in rep.lines()[0] and "record 2" in rep.lines()[1] and "NaN" in rep.lines()[1]
    assert Store(tmp_path / "o.h5").attrs["n_skipped"] == 2


# -------------------------------------------------------------------------------------------------------- fitsnap
def fitsnap_text(atoms, e, f, stress_tensor, stress_style="bar", comment="# A test JSON file for QM data"):
    ds = {"Dataset": {"Label": "test", "LatticeStyle": "angstrom", "EnergyStyle": "electronvolt",
                      "StressStyle": stress_style, "AtomTypeStyle": "chemicalsymbol", "PositionsStyle": "angstrom",
                      "ForcesStyle": "electronvoltperangstrom",
                      "Data": [{"NumAtoms": len(atoms), "Lattice": atoms.cell.array.tolist(), "Energy": e,
                                "Stress": stress_tensor.tolist(), "AtomTypes": atoms.get_chemical_symbols(),
                                "Positions": atoms.positions.tolist(), "Forces": f.tolist()}]}}
    return comment + "\n" + json.dumps(ds)


@pytest.mark.parametrize("style, unit", [("bar", BAR), ("kB", KBAR)])
def test_fitsnap(tmp_path, sheared, style, unit):
    atoms, e, f, s = sheared
    d = tmp_path / "JSON" / "Elastic_BCC"
    d.mkdir(parents=True)
    (d / "c1.json").write_text(fitsnap_text(atoms, e, f, -tensor(s) / unit, style))
    assert detect_format(d / "c1.json") == "fitsnap-json"
    convert([tmp_path / "JSON"], tmp_path / "o.h5")
    store = check_one(tmp_path / "o.h5", atoms, e, f, s)
    assert store[0].group == "Elastic_BCC" and store[0].id == "Elastic_BCC/c1.json#0"


def test_fitsnap_unknown_units_and_mismatch(tmp_path, sheared):
    atoms, e, f, s = sheared
    (tmp_path / "a.json").write_text(fitsnap_text(atoms, e, f, tensor(s), "psi"))
    with pytest.raises(ConversionError, match=r"a\.json.*unknown StressStyle 'psi'"):
        convert([tmp_path / "a.json"], tmp_path / "o.h5")
    doc = json.loads(fitsnap_text(atoms, e, f, tensor(s)).split("\n", 1)[1])
    doc["Dataset"]["Data"][0]["NumAtoms"] = len(atoms) + 1
    (tmp_path / "b.json").write_text("# c\n" + json.dumps(doc))
    with pytest.raises(ConversionError, match=r"b\.json, record 0: NumAtoms"):
        convert([tmp_path / "b.json"], tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


# --------------------------------------------------------------------------------------------------------- deepmd
def write_deepmd(folder, frames, type_map=("Cu", "Al"), virial=True):
    folder.mkdir(parents=True)
    atoms = frames[0][0]
    zs = {z: i for i, z in enumerate(type_map)}
    (folder / "type.raw").write_text("\n".join(str(zs[s]) for s in atoms.get_chemical_symbols()) + "\n")
    (folder / "type_map.raw").write_text("\n".join(type_map) + "\n")
    st = folder / "set.000"
    st.mkdir()
    np.save(st / "coord.npy", np.stack([a.positions.ravel() for a, *_ in frames]))
    np.save(st / "box.npy", np.stack([a.cell.array.ravel() for a, *_ in frames]))
    np.save(st / "energy.npy", np.array([e for _, e, _, _ in frames]))
    np.save(st / "force.npy", np.stack([f.ravel() for _, _, f, _ in frames]))
    if virial:  # W = -V * stress (eV)
        np.save(st / "virial.npy", np.stack([(-a.get_volume() * tensor(s)).ravel() for a, _, _, s in frames]))


def test_deepmd(tmp_path, sheared):
    atoms, e, f, s = sheared
    write_deepmd(tmp_path / "sys", [sheared, sheared])
    assert detect_format(tmp_path / "sys") == "deepmd"
    n, _ = convert([tmp_path], tmp_path / "o.h5")
    assert n == 2
    check_one(tmp_path / "o.h5", atoms, e, f, s)


def test_deepmd_truncated_array_named(tmp_path, sheared):
    write_deepmd(tmp_path / "sys", [sheared, sheared])
    f = np.load(tmp_path / "sys" / "set.000" / "force.npy")
    np.save(tmp_path / "sys" / "set.000" / "force.npy", f[:1])
    with pytest.raises(ConversionError, match=r"sys.*force\.npy has 1 frames but coord\.npy has 2"):
        convert([tmp_path / "sys"], tmp_path / "o.h5")


# -------------------------------------------------------------------------------------------------------- phonopy
def _phonopy(sheared):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    atoms = sheared[0]
    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions())
    ph = Phonopy(unit, supercell_matrix=np.diag([2, 1, 1]), primitive_matrix="P")
    ph.generate_displacements(distance=0.02)
    forces = []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, positions=sc.positions, cell=sc.cell, pbc=True)
        a.calc = EMT()
        forces.append(a.get_forces())
    return ph, np.array(forces)


def test_phonopy_force_sets(tmp_path, sheared):
    pytest.importorskip("phonopy")
    ph, forces = _phonopy(sheared)
    ph.save(tmp_path / "phonopy_disp.yaml")
    lines = [str(len(ph.supercell)), str(len(forces)), ""]
    for d, fs in zip(ph.dataset["first_atoms"], forces):
        lines += [str(d["number"] + 1), " ".join(f"{x:.16f}" for x in d["displacement"])]
        lines += [" ".join(f"{x:.16f}" for x in row) for row in fs]
        lines.append("")
    (tmp_path / "FORCE_SETS").write_text("\n".join(lines))
    assert detect_format(tmp_path) == "phonopy"
    n, _ = convert([tmp_path], tmp_path / "o.h5")
    store = Store(tmp_path / "o.h5")
    assert n == len(forces) == len(ph.supercells_with_displacements)
    for k, sc in enumerate(ph.supercells_with_displacements):
        r = store[k]
        np.testing.assert_allclose(r.positions, sc.positions, atol=1e-10)
        np.testing.assert_allclose(r.cell, sc.cell, atol=1e-12)
        np.testing.assert_allclose(r.forces, forces[k], atol=1e-12)
        assert r.energy is None and r.stress is None


def test_phonopy_params_yaml(tmp_path, sheared):
    pytest.importorskip("phonopy")
    ph, forces = _phonopy(sheared)
    ph.forces = forces
    ph.save(tmp_path / "phonopy_params.yaml")
    assert detect_format(tmp_path / "phonopy_params.yaml") == "phonopy"
    n, _ = convert([tmp_path / "phonopy_params.yaml"], tmp_path / "o.h5")
    np.testing.assert_allclose(Store(tmp_path / "o.h5")[n - 1].forces, forces[-1], atol=1e-10)


# ---------------------------------------------------------------------------------------------------------- mptrj
def mptrj_frame(atoms, e, f, s, mid="mp-1"):
    return {"structure": pmg_structure_dict(atoms), "uncorrected_total_energy": e,
            "corrected_total_energy": e - 1.0, "energy_per_atom": (e - 1.0) / len(atoms), "force": f.tolist(),
            "stress": (-tensor(s) / KBAR).tolist(), "magmom": [0.1] * len(atoms), "bandgap": 0.0, "mp_id": mid}


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_mptrj_streamed(tmp_path, sheared, chunk, monkeypatch):
    from gfm_ase.data.converters import mptrj
    atoms, e, f, s = sheared
    doc = {"mp-1": {"mp-1-0-0": mptrj_frame(atoms, e, f, s), "mp-1-0-1": mptrj_frame(atoms, e, f, s)},
           "mp-22": {"mp-22-1-0": mptrj_frame(atoms, e, f, s, "mp-22")}}
    (tmp_path / "MPtrj.json").write_text(json.dumps(doc, indent=1))
    assert detect_format(tmp_path / "MPtrj.json") == "mptrj"
    orig = mptrj.iter_object_items
    monkeypatch.setattr(mptrj, "iter_object_items", lambda fh: orig(fh, chunk_size=chunk))
    n, _ = convert([tmp_path / "MPtrj.json"], tmp_path / "o.h5")
    store = check_one(tmp_path / "o.h5", atoms, e, f, s)
    assert n == 3 and list(store.groups) == ["mp-1", "mp-1", "mp-22"] and list(store.ids)[2] == "mp-22-1-0"
    np.testing.assert_allclose(store[0].magmoms, 0.1)
    convert([tmp_path / "MPtrj.json"], tmp_path / "c.h5", options=dict(energy_key="corrected_total_energy"))
    assert Store(tmp_path / "c.h5")[0].energy == pytest.approx(e - 1.0)


def test_mptrj_truncated_and_missing_label(tmp_path, sheared):
    atoms, e, f, s = sheared
    text = json.dumps({"mp-1": {"mp-1-0-0": mptrj_frame(atoms, e, f, s)}})
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(ConversionError, match=r"cut\.json: .*truncated"):
        convert([tmp_path / "cut.json"], tmp_path / "o.h5", fmt="mptrj")
    fr = mptrj_frame(atoms, e, f, s)
    del fr["uncorrected_total_energy"]
    (tmp_path / "m.json").write_text(json.dumps({"mp-1": {"mp-1-0-0": fr}}))
    with pytest.raises(ConversionError, match=r"mp-1/mp-1-0-0: .*uncorrected_total_energy"):
        convert([tmp_path / "m.json"], tmp_path / "o.h5", fmt="mptrj")


# -------------------------------------------------------------------------------------------------------- aselmdb
def test_aselmdb(tmp_path, sheared):
    lmdb = pytest.importorskip("lmdb")
    atoms, e, f, s = sheared
    mol = molecule("H2O")
    rows = [
        {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(), "cell": atoms.cell.array.tolist(),
         "pbc": [True] * 3, "energy": e, "forces": f.tolist(), "stress": s.tolist(), "ctime": 1.0, "mtime": 1.0,
         "user": "x", "unique_id": "a"},
        {"numbers": mol.numbers.tolist(), "positions": mol.positions.tolist(), "cell": np.zeros((3, 3)).tolist(),
         "pbc": [False] * 3, "energy": -10.0, "forces": np.zeros((3, 3)).tolist(), "ctime": 1.0, "mtime": 1.0,
         "user": "x", "unique_id": "b", "data": {"charge": -1, "spin": 2}},
    ]
    env = lmdb.open(str(tmp_path / "d.aselmdb"), subdir=False, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, row in enumerate(rows, start=1):
            txn.put(str(i).encode("ascii"), zlib.compress(json.dumps(row).encode()))
        txn.put(b"nextid", zlib.compress(json.dumps(len(rows) + 1).encode()))
        txn.put(b"metadata", zlib.compress(json.dumps({}).encode()))
    env.close()
    assert detect_format(tmp_path / "d.aselmdb") == "aselmdb"
    n, _ = convert([tmp_path / "d.aselmdb"], tmp_path / "o.h5")
    store = check_one(tmp_path / "o.h5", atoms, e, f, s)
    assert n == 2 and store[1].charge == -1 and store[1].spin == 2 and not store[1].pbc.any()


# --------------------------------------------------------------------------------------------------------- ani-h5
def test_ani_spice_t1x_h5(tmp_path):
    rng = np.random.default_rng(0)
    mol = molecule("CH3OH")
    n = len(mol)
    coords = mol.positions[None] + rng.normal(scale=0.05, size=(4, n, 3))  # A
    e_ha = -115.0 + rng.normal(scale=0.01, size=4)
    f_ha_per_a = rng.normal(size=(4, n, 3))
    with h5py.File(tmp_path / "ani1x.h5", "w") as h:
        g = h.create_group("C1H4O1")
        g["atomic_numbers"] = mol.numbers
        g["coordinates"] = coords
        g["wb97x_dz.energy"] = np.concatenate([e_ha[:3], [np.nan]])  # last conformer not computed
        g["wb97x_dz.forces"] = f_ha_per_a
        g["ccsd(t)_cbs.energy"] = np.full(4, np.nan)
    with h5py.File(tmp_path / "spice.hdf5", "w") as h:
        g = h.create_group("methanol")
        g["atomic_numbers"] = mol.numbers
        g["conformations"] = coords / BOHR
        g["dft_total_energy"] = e_ha
        g["dft_total_gradient"] = -f_ha_per_a * BOHR  # Hartree/Bohr
        g["mbis_charges"] = np.zeros((4, n, 1))
        g["smiles"] = [b"CO"]
    with h5py.File(tmp_path / "t1x.h5", "w") as h:
        g = h.create_group("data/C1H4O1/rxn0001")
        g["atomic_numbers"] = mol.numbers
        g["positions"] = coords
        g["wB97x_6-31G(d).energy"] = e_ha * HARTREE
        g["wB97x_6-31G(d).forces"] = f_ha_per_a * HARTREE
    for name in ("ani1x.h5", "spice.hdf5", "t1x.h5"):
        assert detect_format(tmp_path / name) == "ani-h5"
        n_rec, _ = convert([tmp_path / name], tmp_path / "o.h5")
        store = Store(tmp_path / "o.h5")
        assert n_rec == 4
        for k in range(4):
            r = store[k]
            np.testing.assert_allclose(r.positions, coords[k], atol=1e-9)
            np.testing.assert_allclose(r.forces, f_ha_per_a[k] * HARTREE, rtol=1e-9)
            if name == "ani1x.h5" and k == 3:
                assert r.energy is None
            else:
                assert r.energy == pytest.approx(e_ha[k] * HARTREE, rel=1e-12)
            assert not r.pbc.any()
        if name == "spice.hdf5":
            assert store[0].charge == 0.0
    assert Store(tmp_path / "o.h5")[0].group == "data/C1H4O1/rxn0001"


def test_ani_h5_shape_mismatch_named(tmp_path):
    mol = molecule("H2O")
    with h5py.File(tmp_path / "a.h5", "w") as h:
        g = h.create_group("H2O1")
        g["atomic_numbers"] = mol.numbers
        g["coordinates"] = mol.positions[None].repeat(2, 0)
        g["wb97x_dz.energy"] = np.zeros(3)
    with pytest.raises(ConversionError, match=r"a\.h5: .*wb97x_dz\.energy has shape \(3,\), expected \(2,\)"):
        convert([tmp_path / "a.h5"], tmp_path / "o.h5")


# ---------------------------------------------------------------------------------------------------------- misc
def test_auto_walks_mixed_folder(tmp_path, sheared):
    import ase.io
    atoms, e, f, s = sheared
    (tmp_path / "src" / "a").mkdir(parents=True)
    ase.io.write(tmp_path / "src" / "a" / "x.extxyz", atoms)
    (tmp_path / "src" / "m.json").write_text(json.dumps([mlearn_entry(atoms, e, f, s)]))
    (tmp_path / "src" / "README.md").write_text("not data")
    write_deepmd(tmp_path / "src" / "sys", [sheared])
    n, rep = convert([tmp_path / "src"], tmp_path / "o.h5")
    assert n == 3 and rep.formats == {"ase", "mlearn-json", "deepmd"}
    store = Store(tmp_path / "o.h5")
    for k in range(3):
        np.testing.assert_allclose(store[k].stress, s, rtol=1e-7)
    with pytest.raises(ConversionError, match="cannot detect the format"):
        convert([tmp_path / "src" / "README.md"], tmp_path / "p.h5")
