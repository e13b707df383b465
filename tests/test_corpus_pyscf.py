"""PySCF PBE/def2-SVP + paired GFN2-xTB generator: pairing, units and force sign, resume, seeded geometries."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyscf")
pytest.importorskip("tblite")

import ase.io  # noqa: E402

from gfm_ase.pretraining.corpus import generate_pyscf as gen  # noqa: E402
from gfm_ase.pretraining.corpus.corpus_io import run_shards  # noqa: E402

WATER_SHARD = gen.SCHEDULE.index("water")


def _run(out, make=None):
    make = make or (lambda k, rng: gen.make_shard(k, rng, n=2))
    return run_shards(name="p", out=out, seed=0, shards=[WATER_SHARD], subsets=gen.SUBSETS,
                      settings=dict(gen.SETTINGS, structures_per_shard=2), make_shard=make, log=lambda m: None)


def test_paired_labels_units_and_resume(tmp_path):
    m = _run(tmp_path)
    assert m["totals"] == {"gfn2": 2, "pbe": 2} and m["stats"]["pbe_failed"] == 0
    assert "PBE/def2-SVP" in m["subsets"]["pbe"]["level_of_theory"]
    g = ase.io.read(tmp_path / f"gfn2_{WATER_SHARD:04d}.extxyz", ":")
    p = ase.io.read(tmp_path / f"pbe_{WATER_SHARD:04d}.extxyz", ":")
    for a, b in zip(g, p):
        assert a.info["pair_id"] == b.info["pair_id"] and a.get_chemical_formula() == "H2O"
        np.testing.assert_array_equal(a.positions, b.positions)
        assert "stress" not in b.calc.results
    # PBE/def2-SVP total energy of water is about -76.3 Ha; stored in eV
    assert -2080 < p[0].get_potential_energy() < -2070
    # forces in eV/A, = -dE/dx: finite difference of one component
    at = p[0].copy()
    d = 1e-3
    at.positions[1, 0] += d
    ep, _ = gen.pbe_label(at)
    at.positions[1, 0] -= 2 * d
    em, _ = gen.pbe_label(at)
    assert abs(-(ep - em) / (2 * d) - p[0].get_forces()[1, 0]) < 5e-3

    def boom(k, rng):
        raise AssertionError("finished shard was recomputed")
    assert _run(tmp_path, boom)["complete"]


def test_geometries_are_seeded():
    a = gen.sample_geometries("water", np.random.default_rng([0, 2]), 4)
    b = gen.sample_geometries("water", np.random.default_rng([0, 2]), 4)
    c = gen.sample_geometries("water", np.random.default_rng([1, 2]), 4)
    assert [x.info["config_type"] for x in a] == ["normal_mode"] * 2 + ["md"] * 2
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.positions, y.positions)
    assert not np.allclose(a[0].positions, c[0].positions)
