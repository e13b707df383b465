"""GFN2-xTB corpus generator: parent pool, prototypes, labels (units, force and stress sign), resume, seeds."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tblite")

import ase.io  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402

from gfm_ase.pretraining.corpus import generate_xtb as gen  # noqa: E402
from gfm_ase.pretraining.corpus.corpus_io import run_shards  # noqa: E402
from gfm_ase.pretraining.corpus.xtb_common import xtb_calc  # noqa: E402

TINY = dict(gen.MOL_SETTINGS, nms_samples=1, rattles=1, md_snapshots=1, md_every_steps=2, molecules_per_shard=1)


def test_molecule_pool_is_deterministic_and_diverse():
    pool = gen.molecule_pool(0)
    assert [n for n, _ in pool] == [n for n, _ in gen.molecule_pool(0)]
    elements = {s for _, a in pool for s in a.get_chemical_symbols()}
    assert {"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Br"} <= elements
    assert all(int(a.numbers.sum()) % 2 == 0 for _, a in pool)  # closed-shell singlets only
    assert len({n for n, _ in pool}) == len(pool)


def test_crystal_prototypes_are_sane():
    protos = gen.crystal_prototypes()
    assert len(protos) >= 25
    for name, at in protos:
        assert at.pbc.all() and 4 <= len(at) <= 12, name
        assert len(neighbor_list("d", at, 1.2)) == 0, f"{name} has atoms closer than 1.2 A"


def _water_pool():
    return [p for p in gen.molecule_pool(0) if p[0] == "g2:H2O"]


def test_molecule_shard_labels_resume_and_seed(tmp_path):
    pool = _water_pool()
    run = lambda out, seed: run_shards(  # noqa: E731
        name="m", out=out, seed=seed, shards=[0], subsets=gen.MOL_SUBSETS, settings=TINY,
        make_shard=lambda k, rng: gen.make_molecule_shard(k, rng, pool, TINY), log=lambda m: None)
    m = run(tmp_path / "a", 1)
    assert m["totals"]["xtb_molecules"] == 5 and m["stats"]["parents"] == 1  # input, minimum, nms, rattle, md
    frames = ase.io.read(tmp_path / "a" / "xtb_molecules_0000.extxyz", ":")
    kinds = [a.info["config_type"] for a in frames]
    assert kinds == ["input", "minimum", "normal_mode", "rattle", "md"]
    assert all(a.info["group"] == "g2:H2O" and a.info["multiplicity"] == 1 for a in frames)
    assert all("stress" not in a.calc.results for a in frames)
    # stored labels are tblite's in eV and eV/A with forces = -dE/dx
    at = frames[2].copy()
    at.calc = xtb_calc()
    assert abs(at.get_potential_energy() - frames[2].get_potential_energy()) < 1e-6
    x = at.positions.copy()
    d = 1e-4
    at.positions = x + np.array([[0, 0, d], [0, 0, 0], [0, 0, 0]])
    ep = at.get_potential_energy()
    at.positions = x - np.array([[0, 0, d], [0, 0, 0], [0, 0, 0]])
    em = at.get_potential_energy()
    assert abs(-(ep - em) / (2 * d) - frames[2].get_forces()[0, 2]) < 2e-3

    stamp = (tmp_path / "a" / "xtb_molecules_0000.extxyz").stat().st_mtime_ns
    run(tmp_path / "a", 1)
    assert (tmp_path / "a" / "xtb_molecules_0000.extxyz").stat().st_mtime_ns == stamp
    run(tmp_path / "b", 1)
    assert (tmp_path / "b" / "xtb_molecules_0000.extxyz").read_bytes() == \
        (tmp_path / "a" / "xtb_molecules_0000.extxyz").read_bytes()


def test_crystal_shard_stress_is_tension_positive_voigt():
    protos = [p for p in gen.crystal_prototypes() if p[0] == "layered:hBN"]
    settings = dict(gen.CRYSTAL_SETTINGS, eos_scales=[0.98, 1.0, 1.02], samples=1)
    frames, stats = gen.make_crystal_shard(0, np.random.default_rng(0), protos, settings)
    frames = frames["xtb_crystals"]
    assert stats["scf_failed"] == 0 and stats["rejected_unphysical"] == 0 and len(frames) == 4
    sample = frames[-1]
    assert sample.info["config_type"] == "strain_rattle" and sample.info["kpoints"] == "gamma"
    stress = sample.get_stress()
    assert stress.shape == (6,)
    fresh = sample.copy()
    fresh.calc = xtb_calc()  # labels do not depend on what the calculator computed before
    assert abs(fresh.get_potential_energy() - sample.get_potential_energy()) < 1e-6
    # finite-difference check of xx and yz against stress = (1/V) dE/d(strain)
    calc = xtb_calc()
    v = sample.get_volume()
    for comp, (i, j) in ((0, (0, 0)), (3, (1, 2))):
        es = []
        for h in (1e-4, -1e-4):
            eps = np.eye(3)
            eps[i, j] += h / (2 if i != j else 1)
            eps[j, i] += h / 2 if i != j else 0
            at = sample.copy()
            at.calc = calc
            at.set_cell(sample.cell.array @ eps, scale_atoms=True)
            es.append(at.get_potential_energy())
        fd = (es[0] - es[1]) / (2e-4 * v)
        assert abs(fd - stress[comp]) < 2e-4 + 0.02 * abs(stress[comp]), (comp, fd, stress[comp])


def test_unstable_prototype_is_dropped_not_half_kept(monkeypatch):
    """When the undistorted cell's SCF keeps failing, the prototype yields no frames and is counted."""
    from ase.calculators.calculator import CalculationFailed
    from ase.calculators.emt import EMT

    class Flaky(EMT):
        calls = 0

        def calculate(self, *a, **k):
            Flaky.calls += 1
            if Flaky.calls % 2:  # every other cell fails: 2 of 5 E(V) points survive
                raise CalculationFailed("SCF not converged")
            super().calculate(*a, **k)

    monkeypatch.setattr(gen, "xtb_calc", Flaky)
    from ase.build import bulk
    frames, stats = gen.make_crystal_shard(0, np.random.default_rng(0), [("fcc:Cu", bulk("Cu", cubic=True))])
    assert frames == {"xtb_crystals": []}
    assert stats["prototype_dropped"] == 1 and stats["scf_failed"] == 3
