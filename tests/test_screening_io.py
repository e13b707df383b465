"""Screening inputs (extxyz, ASE db, CIF/POSCAR folders, store) and outputs (HDF5, Parquet)."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write
from conftest import make_tiny_model

from gfm_ase.screening import OutputError, Screener, read_metadata, read_results, screen
from gfm_ase.screening.benchset import benchmark_structures
from gfm_ase.screening.output import PartWriter, done_ids, list_parts
from gfm_ase.screening.readers import InputError, iter_units, open_sources


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(seed=0, heads=("a",))


def _ids(paths):
    out = []
    for u in iter_units(open_sources(paths)):
        try:
            out += [it.id for it in u.load()]
        except Exception:
            out.append("ERR:" + u.error_id)
    return out


def test_extxyz_units_and_ids(tmp_path):
    s = benchmark_structures(5)
    p = tmp_path / "a.xyz"
    write(p, s, format="extxyz")
    with open(p, "a") as f:
        f.write("\n\n")  # trailing blank lines are fine
    units = list(iter_units(open_sources([p])))
    assert [u.index for u in units] == list(range(5))
    assert [u.ids for u in units] == [(f"a.xyz:{k}",) for k in range(5)]
    item = units[3].load()[0]
    np.testing.assert_allclose(item.positions, s[3].positions, atol=1e-7)  # extxyz keeps 8 decimals
    np.testing.assert_array_equal(item.numbers, s[3].numbers)
    np.testing.assert_allclose(item.cell, s[3].cell.array, atol=1e-7)


def test_malformed_extxyz_keeps_good_frames(tmp_path):
    p = tmp_path / "bad.xyz"
    write(p, benchmark_structures(2), format="extxyz")
    with open(p, "a") as f:
        f.write("not-a-count\nfoo\n")
    ids = _ids([p])
    assert ids == ["bad.xyz:0", "bad.xyz:1", "ERR:bad.xyz:2"]


def test_ase_db_folder_and_duplicate_names(tmp_path):
    import ase.db

    s = benchmark_structures(6)
    db = ase.db.connect(tmp_path / "x.db")
    for a in s[:3]:
        db.write(a)
    folder = tmp_path / "cifs"
    (folder / "sub").mkdir(parents=True)
    write(folder / "two.cif", s[3:5], format="cif")  # two data blocks in one file
    write(folder / "sub" / "POSCAR", s[5], format="vasp")
    (folder / "notes.txt").write_text("ignored")
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 3\n")
    ids = _ids([tmp_path / "x.db", folder])
    assert ids == ["x.db:0", "x.db:1", "x.db:2", "ERR:cifs/broken.cif:0", "cifs/sub/POSCAR:0", "cifs/two.cif:0",
                   "cifs/two.cif:1"]
    # the same file name in two folders: the paths as given disambiguate
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    write(tmp_path / "d1" / "s.xyz", s[:1], format="extxyz")
    write(tmp_path / "d2" / "s.xyz", s[:1], format="extxyz")
    srcs = open_sources([tmp_path / "d1" / "s.xyz", tmp_path / "d2" / "s.xyz"])
    assert srcs[0].label != srcs[1].label
    with pytest.raises(InputError, match="does not exist"):
        open_sources([tmp_path / "missing.xyz"])


def test_store_input(tmp_path):
    data = pytest.importorskip("gfm_ase.data")
    s = benchmark_structures(3)
    path = tmp_path / "store.h5"
    with data.StoreWriter(path, name="t", level_of_theory="none", code="none", source="test", license="CC0") as w:
        for a in s:
            w.append_atoms(a)
    units = list(iter_units(open_sources([path])))
    assert [u.ids for u in units] == [("store.h5:0",), ("store.h5:1",), ("store.h5:2",)]
    np.testing.assert_allclose(units[2].load()[0].positions, s[2].positions, atol=1e-12)


@pytest.mark.parametrize("suffix", [".h5", ".parquet"])
def test_output_roundtrip(tmp_path, model, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    s = benchmark_structures(7, seed=2)
    mol = bulk("Si", "diamond", a=5.43)
    mol.pbc = False
    s.append(mol)
    write(tmp_path / "in.xyz", s, format="extxyz")
    out = tmp_path / f"out{suffix}"
    props = ["forces", "stress", "energies"]
    summary = screen([tmp_path / "in.xyz"], out, model=model, dtype="float64", properties=props, chunk_rows=3,
                     max_atoms=100, log=None)
    assert summary["complete"] and summary["rows"] == len(s)
    res = read_results(out)
    s = read(tmp_path / "in.xyz", index=":")  # what the file holds (8 decimals)
    ref = Screener(model, dtype="float64", properties=props).evaluate(s, ids=[f"in.xyz:{k}" for k in range(len(s))])
    assert list(res["id"]) == list(ref["id"])
    for k in ("energy", "energy_per_atom", "forces", "energies", "n_atoms"):
        np.testing.assert_allclose(res[k], ref[k], atol=1e-12, rtol=0)
    np.testing.assert_allclose(res["stress"], ref["stress"], atol=1e-12, rtol=0)  # NaN rows equal too
    assert np.isnan(res["stress"][-1]).all()
    assert "unit" not in res and "sub" not in res  # bookkeeping columns stay internal
    meta = read_metadata(out)
    assert meta["n_rows"] == len(s) and meta["precision"] == "float64"
    assert not out.with_name(out.name + ".parts").exists()
    # a rerun of the same call is a no-op; a different run refuses to touch the file unless asked
    assert screen([tmp_path / "in.xyz"], out, model=model, dtype="float64", properties=props, max_atoms=100,
                  log=None)["evaluated"] == 0
    with pytest.raises(OutputError, match="different run"):
        screen([tmp_path / "in.xyz"], out, model=model, dtype="float32", log=None)
    summary = screen([tmp_path / "in.xyz"], out, model=model, dtype="float32", overwrite=True, log=None)
    assert summary["rows"] == len(s) and read_metadata(out)["precision"] == "float32"


def test_unknown_output_suffix(tmp_path, model):
    write(tmp_path / "in.xyz", benchmark_structures(1), format="extxyz")
    with pytest.raises(OutputError, match="must end with"):
        screen([tmp_path / "in.xyz"], tmp_path / "out.csv", model=model, log=None)


def test_part_writer_is_atomic_and_numbered(tmp_path):
    w = PartWriter(tmp_path, rank=3)
    block = {"id": np.array(["a", "b"], dtype=object), "unit": np.array([0, 1]), "sub": np.array([0, 0]),
             "unit_size": np.array([1, 1]), "n_atoms": np.array([1, 2]), "energy": np.array([1.0, 2.0]),
             "error": np.array(["", ""], dtype=object), "formula": np.array(["H", "H2"], dtype=object)}
    w.commit(block)
    (tmp_path / ".part-r0003-leftover.tmp").write_bytes(b"junk")  # a killed write of this rank
    (tmp_path / ".part-r0001-other.tmp").write_bytes(b"junk")  # another rank's write in progress
    w2 = PartWriter(tmp_path, rank=3)
    assert w2.seq == 1
    assert not (tmp_path / ".part-r0003-leftover.tmp").exists()
    assert (tmp_path / ".part-r0001-other.tmp").exists()
    assert [p.name for p in list_parts(tmp_path)] == ["part-r0003-000000.h5"]
    assert done_ids(tmp_path) == {"a", "b"}


def test_unreadable_database_is_a_clear_input_error(tmp_path, model):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read it as an ASE database"):
        screen([tmp_path / "bad.json"], tmp_path / "o.h5", model=model, log=None)
    (tmp_path / "plain.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a gfm-ase store"):
        screen([tmp_path / "plain.h5"], tmp_path / "o2.h5", model=model, log=None)
