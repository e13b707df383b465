"""`gfm data convert|info|check|split` as scripts use it."""
from __future__ import annotations

import json

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from gfm_ase.cli import main
from gfm_ase.data import Store, StoreWriter, StructureRecord


def _extxyz(path, n=6, bad_index=None):
    import ase.io
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        a.get_stress()
        frames.append(a)
    ase.io.write(path, frames, format="extxyz")
    if bad_index is not None:  # corrupt one frame's force by hand: a NaN in the text
        lines = path.read_text().splitlines()
        per = len(frames[0]) + 2
        row = bad_index * per + 2
        parts = lines[row].split()
        parts[-1] = "nan"
        lines[row] = " ".join(parts)
        path.write_text("\n".join(lines) + "\n")
    return frames


def test_convert_info_json(tmp_path, capsys):
    _extxyz(tmp_path / "cu.extxyz")
    rc = main(["data", "convert", str(tmp_path / "cu.extxyz"), "-o", str(tmp_path / "cu.h5"), "--name", "cu",
               "--level-of-theory", "EMT", "--no-progress"])
    assert rc == 0
    assert "wrote 6 structures" in capsys.readouterr().out
    assert main(["data", "info", str(tmp_path / "cu.h5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_structures"] == 6 and info["n_atoms"] == 48 and info["elements"] == ["Cu"]
    assert info["has"]["energy"] == 6 and info["has"]["forces"] == 6 and info["has"]["stress"] == 6
    assert info["level_of_theory"] == "EMT" and info["name"] == "cu"
    assert main(["data", "info", str(tmp_path / "cu.h5")]) == 0
    out = capsys.readouterr().out
    assert "6 structures, 48 atoms" in out and "energy/atom" in out


def test_convert_bad_record_and_skip_bad(tmp_path, capsys):
    _extxyz(tmp_path / "cu.extxyz", bad_index=2)
    rc = main(["data", "convert", str(tmp_path / "cu.extxyz"), "-o", str(tmp_path / "cu.h5"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "cu.extxyz, frame 2: NaN or inf in forces" in err
    assert not (tmp_path / "cu.h5").exists()
    rc = main(["data", "convert", str(tmp_path / "cu.extxyz"), "-o", str(tmp_path / "cu.h5"), "--skip-bad",
               "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0 and "skipped: " in cap.err and "frame 2" in cap.err and "1 bad records skipped" in cap.out
    assert len(Store(tmp_path / "cu.h5")) == 5


def test_convert_append(tmp_path, capsys):
    _extxyz(tmp_path / "cu.extxyz")
    args = ["data", "convert", str(tmp_path / "cu.extxyz"), "-o", str(tmp_path / "cu.h5"), "--no-progress"]
    assert main(args) == 0 and main(args + ["--append"]) == 0
    assert len(Store(tmp_path / "cu.h5")) == 12


def test_check_flags_overlap_and_split(tmp_path, capsys):
    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "s.h5", name="s") as w:
        for k in range(20):
            pos = rng.uniform(0, 6, (4, 3))
            if k == 7:
                pos[1] = pos[0] + 0.1  # overlapping atoms
            w.append(StructureRecord(pos, [6] * 4, np.eye(3) * 6, True, energy=-4.0 + 0.01 * rng.normal(),
                                     group=f"traj{k // 4}", id=str(k)))
    assert main(["data", "check", str(tmp_path / "s.h5"), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "error: structure 7" in out and "overlapping" in out and "1 error(s)" in out
    assert main(["data", "split", str(tmp_path / "s.h5"), "-o", str(tmp_path / "sp.json"), "--by", "group",
                 "--fractions", "0.6", "0.2", "0.2", "--seed", "3"]) == 0
    sp = json.loads((tmp_path / "sp.json").read_text())
    assert sorted(sp["train"] + sp["val"] + sp["test"]) == list(range(20))
    groups = {name: {k // 4 for k in sp[name]} for name in ("train", "val", "test")}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert sp["by"] == "group" and sp["seed"] == 3


def test_info_refuses_non_store(tmp_path, capsys):
    import h5py
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = [1]
    assert main(["data", "info", str(tmp_path / "x.h5")]) == 2
    assert "not a gfm-ase store" in capsys.readouterr().err
