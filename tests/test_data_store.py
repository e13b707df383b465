"""The HDF5 store: round trips, random access, append, atomic writes, schema check, dataset/loader."""
from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from ase.build import bulk, molecule

from gfm_ase.data import GraphDataset, RecordError, Store, StoreError, StoreWriter, StructureRecord, graph_loader
from gfm_ase.graph import collate, graph_from_atoms


def random_record(rng, n=None, periodic=True, labels=True, group="", id=""):
    n = int(rng.integers(1, 9)) if n is None else n
    cell = np.eye(3) * 6.0 + rng.normal(scale=0.3, size=(3, 3))
    return StructureRecord(
        positions=rng.uniform(0, 5, size=(n, 3)),
        numbers=rng.integers(1, 30, size=n),
        cell=cell if periodic else None,
        pbc=periodic,
        energy=float(rng.normal()) if labels else None,
        forces=rng.normal(size=(n, 3)) if labels else None,
        stress=rng.normal(size=6) if (labels and periodic) else None,
        charge=float(rng.integers(-1, 2)) if not periodic else None,
        spin=1.0 if not periodic else None,
        magmoms=rng.normal(size=n) if (labels and periodic) else None,
        group=group,
        id=id,
    )


def assert_same(a: StructureRecord, b: StructureRecord):
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    for name in ("energy", "charge", "spin"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("forces", "stress", "magmoms"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert a.group == b.group and a.id == b.id


@pytest.fixture
def records():
    rng = np.random.default_rng(0)
    recs = []
    for k in range(57):
        recs.append(random_record(rng, periodic=k % 3 != 0, labels=k % 5 != 0, group=f"g{k % 7}", id=f"s{k}"))
    return recs


def write(path, recs, **kw):
    with StoreWriter(path, name="toy", level_of_theory="PBE", code="VASP", source="test", license="CC0",
                     buffer=10, **kw) as w:
        for r in recs:
            w.append(r)
    return path


def test_round_trip_random_access(tmp_path, records):
    path = write(tmp_path / "toy.h5", records, extra={"note": [1, 2]})
    store = Store(path)
    assert len(store) == len(records)
    for i in [56, 0, 31, 7, 7, 55, -1]:  # arbitrary order, negative index
        assert_same(store[i], records[i])
    np.testing.assert_array_equal(store.n_atoms, [r.n_atoms for r in records])
    assert store.attrs["name"] == "toy" and store.attrs["level_of_theory"] == "PBE"
    assert store.attrs["extra"] == {"note": [1, 2]}
    assert store.attrs["units"]["stress"].startswith("eV/Angstrom^3")
    assert store.attrs["schema_version"] == 1
    zs = sorted(set(np.concatenate([r.numbers for r in records]).tolist()))
    from ase.data import chemical_symbols
    assert store.elements == [chemical_symbols[z] for z in zs]
    counts = store.label_counts()
    assert counts["energy"] == sum(r.energy is not None for r in records)
    assert counts["stress"] == sum(r.stress is not None for r in records)
    assert counts["magmoms"] == sum(r.magmoms is not None for r in records)
    assert list(store.groups) == [r.group for r in records]
    with pytest.raises(IndexError):
        store[len(records)]
    # in-memory mode gives identical records
    mem = Store(path, in_memory=True)
    for i in (3, 40):
        assert_same(mem[i], records[i])


def test_compressed_chunked_layout(tmp_path, records):
    path = write(tmp_path / "toy.h5", records)
    with h5py.File(path) as f:
        for name in ("positions", "numbers", "forces", "cell", "energy", "offsets"):
            assert f[name].compression == "gzip" and f[name].chunks is not None, name
            assert f[name].maxshape[0] is None, name  # appendable


def test_to_atoms_carries_labels(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    from ase.calculators.emt import EMT
    atoms.calc = EMT()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    with StoreWriter(tmp_path / "cu.h5", name="cu") as w:
        w.append_atoms(atoms, group="md", id="frame0")
    back = Store(tmp_path / "cu.h5").to_atoms(0)
    assert back.get_potential_energy() == pytest.approx(e, abs=0)
    np.testing.assert_array_equal(back.get_forces(), f)
    np.testing.assert_array_equal(back.get_stress(), s)
    np.testing.assert_array_equal(back.cell.array, atoms.cell.array)
    assert back.info["group"] == "md" and back.info["id"] == "frame0"


def test_append_is_atomic_and_keeps_metadata(tmp_path, records):
    path = write(tmp_path / "toy.h5", records[:20])
    with StoreWriter(path, mode="a", buffer=7) as w:
        for r in records[20:]:
            w.append(r)
    store = Store(path)
    assert len(store) == len(records)
    assert store.attrs["level_of_theory"] == "PBE" and store.attrs["name"] == "toy"
    assert len(store.attrs["append_commands"]) == 1
    for i in (0, 19, 20, 56):
        assert_same(store[i], records[i])
    # an append that fails half-way leaves the store exactly as it was
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with StoreWriter(path, mode="a", buffer=2) as w:
            for r in records[:9]:
                w.append(r)
            raise RuntimeError("interrupted")
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    # appending a different level of theory is refused
    with pytest.raises(StoreError, match="level_of_theory"):
        with StoreWriter(path, mode="a", level_of_theory="SCAN") as w:
            w.append(records[0])


def test_interrupted_write_leaves_no_file(tmp_path, records):
    path = tmp_path / "new.h5"
    with pytest.raises(KeyboardInterrupt):
        with StoreWriter(path, buffer=5) as w:
            for r in records:
                w.append(r)
            raise KeyboardInterrupt
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
    # an existing store is not replaced by a failed rewrite
    write(path, records[:3])
    before = path.read_bytes()
    with pytest.raises(ValueError):
        with StoreWriter(path) as w:
            w.append(records[5])
            raise ValueError("bad record later")
    assert path.read_bytes() == before


def test_schema_version_and_format_checked(tmp_path, records):
    path = write(tmp_path / "toy.h5", records[:3])
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1]
    with pytest.raises(StoreError, match="not a gfm-ase store"):
        Store(tmp_path / "other.h5")
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "missing.h5")


def test_truncated_columns_detected(tmp_path, records):
    path = write(tmp_path / "toy.h5", records[:10])
    with h5py.File(path, "a") as f:
        f["numbers"].resize(f["numbers"].shape[0] - 2, axis=0)
    with pytest.raises(StoreError, match="truncated"):
        Store(path)


def test_shard_folder(tmp_path, records):
    (tmp_path / "ds").mkdir()
    write(tmp_path / "ds" / "part-000.h5", records[:30])
    write(tmp_path / "ds" / "part-001.h5", records[30:])
    store = Store(tmp_path / "ds")
    assert len(store) == len(records)
    for i in (0, 29, 30, 56):
        assert_same(store[i], records[i])
    np.testing.assert_array_equal(store.n_atoms, [r.n_atoms for r in records])


@pytest.mark.parametrize("bad, match", [
    (dict(positions=np.zeros((3, 3)), numbers=[1, 1]), "mismatched atom counts"),
    (dict(positions=[[0, 0, np.nan]], numbers=[1]), "NaN"),
    (dict(positions=[[0, 0, 0]], numbers=[1], forces=np.zeros((2, 3))), "forces have shape"),
    (dict(positions=[[0, 0, 0]], numbers=[1], energy=float("nan")), "energy is NaN"),
    (dict(positions=[[0, 0, 0]], numbers=[1], stress=np.zeros(6)), "not periodic"),
    (dict(positions=[[0, 0, 0]], numbers=[0]), "1..118"),
    (dict(positions=np.zeros((0, 3)), numbers=[]), "no atoms"),
    (dict(positions=[[0, 0, 0]], numbers=[1], pbc=True, cell=np.diag([3.0, 3.0, 0.0])), "cell vector 2 is zero"),
])
def test_bad_records_rejected(bad, match):
    with pytest.raises(RecordError, match=match):
        StructureRecord(**bad)


def test_graph_dataset_matches_direct_graph(tmp_path):
    from ase.calculators.emt import EMT
    structs = [bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2)), bulk("Al", "fcc", a=4.05, cubic=True)]
    cu = structs[0]
    cu.set_cell(cu.cell.array + [[0, 0, 0], [0.4, 0, 0], [0.2, 0.3, 0]], scale_atoms=True)
    for a in structs:
        a.rattle(0.05, seed=3)
        a.calc = EMT()
        a.get_stress()
    with StoreWriter(tmp_path / "s.h5", name="s") as w:
        for a in structs:
            w.append_atoms(a)
    ds = GraphDataset(tmp_path / "s.h5", cutoff=4.0, head=2)
    assert len(ds) == 2
    for k, a in enumerate(structs):
        g = ds[k]
        ref = graph_from_atoms(a, 4.0, with_labels=True)
        np.testing.assert_array_equal(g.edge_index, ref.edge_index)
        np.testing.assert_array_equal(g.shifts, ref.shifts)
        np.testing.assert_allclose(g.stress, ref.stress)
        assert g.energy == ref.energy and g.head == 2
    sub = GraphDataset(Store(tmp_path / "s.h5"), cutoff=4.0, indices=[1])
    assert len(sub) == 1 and sub[0].n_atoms == 4
    batches = list(graph_loader(ds, batch_size=2))
    assert len(batches) == 1 and batches[0].num_graphs == 2
    ref_batch = collate([ds[0], ds[1]], dtype=batches[0].positions.dtype)
    assert batches[0].num_edges == ref_batch.num_edges
    with pytest.raises(IndexError):
        GraphDataset(tmp_path / "s.h5", cutoff=4.0, indices=[5])


def test_store_pickles_for_workers(tmp_path, records):
    path = write(tmp_path / "toy.h5", records[:5])
    store = Store(path)
    store[0]  # opens a handle
    clone = pickle.loads(pickle.dumps(store))
    assert_same(clone[4], records[4])


def test_molecule_without_cell(tmp_path):
    m = molecule("H2O")
    with StoreWriter(tmp_path / "m.h5") as w:
        w.append(StructureRecord(m.positions, m.numbers, energy=-10.0, charge=0.0, spin=1.0))
    r = Store(tmp_path / "m.h5")[0]
    assert not r.pbc.any() and r.stress is None and r.charge == 0.0 and r.spin == 1.0
    assert Store(tmp_path / "m.h5").attrs["name"] == "m"  # defaults to the file stem


def test_loader_with_worker_process(tmp_path, records):
    """The store re-opens its HDF5 handle inside DataLoader workers (h5py handles must not cross a fork)."""
    path = write(tmp_path / "toy.h5", [r for r in records if r.pbc.all()][:8])
    store = Store(path)
    store[0]  # the parent holds an open handle before the workers start
    ds = GraphDataset(store, cutoff=3.0)
    got = [b.num_graphs for b in graph_loader(ds, batch_size=3, num_workers=1)]
    assert got == [3, 3, 2]


def test_store_package_keeps_its_public_names_and_layers():
    """gfm_ase.data.store is a package (schema / writer / shard / reader / columns) that still exports the names
    the single module did; the schema imports no other store module, and writing never imports reading."""
    import ast
    from pathlib import Path

    import gfm_ase.data.store as store

    for name in ("FORMAT", "SCHEMA_VERSION", "UNITS", "Store", "StoreError", "StoreWriter", "RecordError",
                 "read_store_attrs"):
        assert name in store.__all__ and hasattr(store, name), name
    base = Path(store.__file__).parent
    allowed = {"schema": set(), "writer": {"schema"}, "shard": {"schema"}, "columns": {"shard"},
               "reader": {"schema", "shard", "columns"}}
    found = {}
    for path in sorted(base.glob("*.py")):
        if path.stem == "__init__":
            continue
        mods = {n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom) and n.module}
        found[path.stem] = {m.rsplit(".", 1)[1] for m in mods if m.startswith("gfm_ase.data.store.")}
    assert found == allowed


def test_fast_path_is_a_record_with_the_stored_labels(tmp_path):
    """labels_and_structure (GraphDataset's read) gives a StructureRecord equal to store[i] in the structure and
    the energy/forces/stress/charge/spin labels; magmoms, group and id stay at the defaults it documents."""
    rng = np.random.default_rng(5)
    recs = [random_record(rng, periodic=k % 2 == 0, labels=k % 3 != 1, group=f"g{k}", id=f"i{k}") for k in range(9)]
    with StoreWriter(tmp_path / "s.h5", name="s") as w:
        w.extend(recs)
    store = Store(tmp_path / "s.h5")
    for i in range(len(store)):
        fast, full = store.labels_and_structure(i), store[i]
        assert isinstance(fast, StructureRecord) and fast.numbers.dtype == np.int64
        for name in ("positions", "numbers", "cell", "pbc", "energy", "forces", "stress", "charge", "spin"):
            a, b = getattr(fast, name), getattr(full, name)
            assert (a is None and b is None) or np.array_equal(a, b), (i, name)
        assert (fast.magmoms, fast.group, fast.id) == (None, "", "")
    with pytest.raises(TypeError, match="no fields"):
        StructureRecord.trusted(positions=np.zeros((1, 3)), numbrs=np.ones(1))
