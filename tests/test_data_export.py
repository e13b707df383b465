"""`gfm data export STORE -o OUT.extxyz|OUT.db`: every label in ASE units, read back by `gfm data convert` into the
same store; existing targets and unknown formats refused; nothing half-written."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule

from gfm_ase.cli import main
from gfm_ase.data import Store, StoreWriter, StructureRecord
from gfm_ase.data.export import ExportError, export_records

FIELDS = ("positions", "numbers", "cell", "pbc", "forces", "stress", "magmoms")


def _records():
    rng = np.random.default_rng(7)
    out = []
    for k in range(3):
        a = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 1))
        a.set_cell(a.cell.array + np.array([[0, 0, 0], [0.3 * k, 0, 0], [0, 0.2, 0]]), scale_atoms=True)
        a.rattle(0.05, seed=k)
        n = len(a)
        out.append(StructureRecord(a.positions, a.numbers, a.cell.array, a.pbc, energy=-3.7 * n + 0.1 * k,
                                   forces=rng.normal(size=(n, 3)), stress=rng.normal(size=6) * 0.01,
                                   magmoms=rng.normal(size=n), charge=float(k - 1), spin=1.0 + k,
                                   group=f"traj-{k}", id=f"mp-{k}/frame-{k}"))
    h2o = molecule("H2O")
    out.append(StructureRecord(h2o.positions, h2o.numbers, energy=-14.2, forces=rng.normal(size=(3, 3)),
                               group="mol", id="water"))
    return out


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "src.h5"
    with StoreWriter(path, name="src", level_of_theory="PBE") as w:
        w.extend(_records())
    return path


@pytest.mark.parametrize("suffix, atol", [(".extxyz", 1e-8), (".db", 0.0)])  # extxyz: ASE writes 8 decimals
def test_round_trip_store_to_file_to_store(store, tmp_path, capsys, suffix, atol):
    out = tmp_path / f"exported{suffix}"
    assert main(["data", "export", str(store), "-o", str(out)]) == 0
    assert "wrote 4 structures" in capsys.readouterr().out
    back = tmp_path / "back.h5"
    assert main(["data", "convert", str(out), "-o", str(back), "--no-progress"]) == 0
    a, b = Store(store), Store(back)
    assert len(a) == len(b) == 4
    for x, y in zip(a, b):
        assert (x.id, x.group, x.charge, x.spin) == (y.id, y.group, y.charge, y.spin)
        assert (x.energy is None) == (y.energy is None)
        if x.energy is not None:
            assert y.energy == pytest.approx(x.energy, abs=max(atol, 1e-12))
        for name in FIELDS:
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), name
            if u is not None:
                np.testing.assert_allclose(v, u, rtol=0, atol=atol, err_msg=name)


def test_extxyz_labels_are_what_ase_reads_as_labels(store, tmp_path):
    """ASE's own reader sees the exported labels as the frame's calculator results, stress Voigt-6 in ASE sign."""
    import ase.io

    out = tmp_path / "x.extxyz"
    assert main(["data", "export", str(store), "-o", str(out)]) == 0
    frames = ase.io.read(out, ":")
    for rec, atoms in zip(Store(store), frames):
        assert atoms.get_potential_energy() == pytest.approx(rec.energy, abs=1e-9)
        np.testing.assert_allclose(atoms.get_forces(), rec.forces, atol=1e-8)
        if rec.stress is not None:
            np.testing.assert_allclose(atoms.get_stress(voigt=True), rec.stress, atol=1e-12)
        assert atoms.info["id"] == rec.id


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_existing_target_is_refused_and_kept(store, tmp_path, capsys):
    out = tmp_path / "x.extxyz"
    out.write_text("keep me\n")
    assert main(["data", "export", str(store), "-o", str(out)]) == 2
    line = _one_line(capsys)
    assert "exists" in line and "x.extxyz" in line and "--overwrite" in line
    assert out.read_text() == "keep me\n"
    assert main(["data", "export", str(store), "-o", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("4\n")


@pytest.mark.parametrize("name", ["x.cif", "x", "x.h5"])
def test_unknown_export_format_is_one_line(store, tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["data", "export", str(store), "-o", str(out)]) == 2
    line = _one_line(capsys)
    assert "unknown export format" in line and name in line
    assert not out.exists()


def test_missing_store_is_one_line(tmp_path, capsys):
    assert main(["data", "export", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "x.db")]) == 2
    assert "nope.h5" in _one_line(capsys)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("suffix", [".extxyz", ".db"])
def test_failure_midway_leaves_nothing(tmp_path, suffix):
    def records():
        recs = _records()
        yield recs[0]
        yield recs[1]
        raise RuntimeError("source broke")

    out = tmp_path / f"x{suffix}"
    with pytest.raises(RuntimeError, match="source broke"):
        export_records(records(), out)
    assert list(tmp_path.iterdir()) == []


def test_existing_target_refused_by_the_api(tmp_path):
    out = tmp_path / "x.db"
    out.write_bytes(b"")
    with pytest.raises(ExportError, match="exists"):
        export_records(_records(), out)
