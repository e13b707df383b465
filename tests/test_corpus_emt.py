"""EMT corpus generator: structure kinds, labels (units, sign), resume and seeded reproducibility."""
from __future__ import annotations

import json

import ase.io
import numpy as np
from ase.calculators.emt import EMT

from gfm_ase.pretraining.corpus import generate_emt as gen


def test_every_structure_kind_is_valid():
    rng = np.random.default_rng(0)
    for kind in gen.KIND_WEIGHTS:
        for _ in range(4):
            at = gen.make_structure(kind, rng)
            assert 2 <= len(at) <= 64, (kind, len(at))
            if kind in ("surface", "adsorbate"):
                assert list(at.pbc) == [True, True, False]
            elif kind == "cluster":
                assert not at.pbc.any()
            else:
                assert at.pbc.all()
            metals = set(at.get_chemical_symbols()) - set(gen.LIGHT)
            assert metals and metals <= set(gen.METALS)
            if kind in ("interstitial", "adsorbate"):
                assert set(at.get_chemical_symbols()) & set(gen.LIGHT)


def test_generate_resume_and_reproduce(tmp_path):
    out = tmp_path / "emt"
    assert gen.main(["--out", str(out), "--shards", "2", "--per-shard", "3", "--seed", "5"]) == 0
    files = sorted(out.glob("emt_*.extxyz"))
    assert [f.name for f in files] == ["emt_0000.extxyz", "emt_0001.extxyz"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["totals"] == {"emt": 6} and man["complete"] and man["seed"] == 5
    assert "EMT" in man["subsets"]["emt"]["level_of_theory"] and man["units"]["energy"] == "eV"

    frames = [a for f in files for a in ase.io.read(f, ":")]
    for at in frames:  # stored labels are EMT's, in eV, eV/A, eV/A^3; stress only when 3D-periodic
        ref = at.copy()
        ref.calc = EMT()
        assert abs(at.get_potential_energy() - ref.get_potential_energy()) < 1e-6  # extxyz keeps 8 decimals
        np.testing.assert_allclose(at.get_forces(), ref.get_forces(), atol=1e-6)
        assert ("stress" in at.calc.results) == bool(at.pbc.all())
        if at.pbc.all():
            np.testing.assert_allclose(at.get_stress(), ref.get_stress(), atol=1e-7)
        assert at.info["config_type"] and at.info["group"].startswith("emt:")
    # forces are -dE/dx (sign check by finite differences on one atom)
    at = frames[0].copy()
    f = frames[0].get_forces()[0, 0]
    at.calc = EMT()
    at.positions[0, 0] += 1e-4
    ep = at.get_potential_energy()
    at.positions[0, 0] -= 2e-4
    em = at.get_potential_energy()
    assert abs(-(ep - em) / 2e-4 - f) < 1e-4 * max(1.0, abs(f))

    stamp = {f.name: f.stat().st_mtime_ns for f in files}
    assert gen.main(["--out", str(out), "--shards", "3", "--per-shard", "3", "--seed", "5"]) == 0
    assert {f.name: f.stat().st_mtime_ns for f in files} == stamp  # finished shards were skipped
    assert json.loads((out / "manifest.json").read_text())["totals"] == {"emt": 9}

    again = tmp_path / "again"
    gen.main(["--out", str(again), "--shards", "1", "--per-shard", "3", "--seed", "5"])
    assert (again / "emt_0000.extxyz").read_bytes() == files[0].read_bytes()
    other = tmp_path / "other"
    gen.main(["--out", str(other), "--shards", "1", "--per-shard", "3", "--seed", "6"])
    assert (other / "emt_0000.extxyz").read_bytes() != files[0].read_bytes()
