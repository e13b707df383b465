"""Shard/manifest machinery of the corpus generators: atomic writes, resume, settings guard, labels in ASE units."""
from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from gfm_ase.pretraining.corpus.corpus_io import (ManifestMismatch, attach_labels, count_frames, label_with, run_shards,
                                          shard_path)

SUBSETS = {"a": {"level_of_theory": "EMT"}, "b": {"level_of_theory": "EMT"}}


def _maker(calls):
    def make(k, rng):
        calls.append(k)
        frames = []
        for _ in range(2):
            at = bulk("Cu", cubic=True)
            at.positions += rng.normal(0, 0.05, at.positions.shape)
            frames.append(label_with(at, EMT()))
        return {"a": frames, "b": frames[:1]}, {"failed": 1}
    return make


def _run(out, calls, **kw):
    kw.setdefault("settings", {"x": 1})
    return run_shards(name="t", out=out, seed=3, shards=range(3), subsets=SUBSETS, make_shard=_maker(calls),
                      log=lambda m: None, **kw)


def test_writes_shards_manifest_and_resumes(tmp_path):
    calls = []
    m = _run(tmp_path, calls)
    assert calls == [0, 1, 2]
    assert m["complete"] and m["totals"] == {"a": 6, "b": 3} and m["stats"] == {"failed": 3}
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["seed"] == 3 and on_disk["elements"] == ["Cu"] and "ase" in on_disk["packages"]
    assert on_disk["units"]["stress"].startswith("eV/A^3")
    assert count_frames(shard_path(tmp_path, "a", 1)) == 2
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.extxyz")}

    # a lost subset file makes only that shard unfinished
    shard_path(tmp_path, "b", 1).unlink()
    calls2 = []
    m2 = _run(tmp_path, calls2)
    assert calls2 == [1] and m2["complete"] and m2["totals"] == {"a": 6, "b": 3}
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.extxyz")} == before  # regenerated bit-for-bit


def test_settings_change_refuses_to_mix(tmp_path):
    _run(tmp_path, [])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ManifestMismatch, match="other settings"):
        _run(tmp_path, [], settings={"x": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_time_budget_stops_between_shards(tmp_path):
    calls = []
    m = _run(tmp_path, calls, max_minutes=0.0)
    assert calls == [0] and not m["complete"]  # the first shard always runs, then the budget is spent
    m = _run(tmp_path, calls)
    assert calls == [0, 1, 2] and m["complete"]


def test_labels_roundtrip_in_ase_units(tmp_path):
    cell = bulk("Cu", cubic=True)
    cell.set_cell(cell.cell.array @ [[1.0, 0.03, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.98]], scale_atoms=True)
    cell.rattle(0.05, seed=1)
    slab = cell.copy()
    slab.pbc = (True, True, False)
    mol = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.4]])
    frames = [label_with(a, EMT()) for a in (cell, slab, mol)]
    p = tmp_path / "x.extxyz"
    from gfm_ase.pretraining.corpus.corpus_io import write_frames
    write_frames(p, frames)
    back = ase.io.read(p, ":")
    ref = cell.copy()
    ref.calc = EMT()
    np.testing.assert_allclose(back[0].get_stress(), ref.get_stress(), atol=1e-10)  # full Voigt-6 incl. shears
    np.testing.assert_allclose(back[0].get_forces(), ref.get_forces(), atol=1e-10)
    assert "stress" not in back[1].calc.results and "stress" not in back[2].calc.results
    assert list(back[1].pbc) == [True, True, False]
    with pytest.raises(ValueError, match="Voigt-6"):
        attach_labels(cell, 0.0, np.zeros((4, 3)), np.zeros((3, 3)))
