"""Verlet (skin) neighbor list: the same pairs as a fresh build, the same MD trajectory, rebuilt when it must be."""
from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from conftest import make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.graph import StructureError, VerletGraph, graph_from_atoms


def _pairs(edge_index, shifts):
    return sorted(zip(edge_index[0].tolist(), edge_index[1].tolist(), map(tuple, np.rint(shifts).astype(int))))


def _triclinic():
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] + np.array([[0.0, 0.2, 0.1], [0.3, 0.0, 0.0], [0.0, 0.4, 0.0]]),
                   scale_atoms=True)
    atoms.rattle(0.05, seed=3)
    return atoms


def test_kept_pairs_equal_a_fresh_build_until_a_rebuild_is_due():
    atoms = _triclinic()
    vg = VerletGraph(4.0, 0.6)
    rng = np.random.default_rng(0)
    for step in range(12):
        b = vg.batch(atoms)
        ref = graph_from_atoms(atoms, 4.0)
        assert _pairs(b.edge_index.numpy(), b.shifts.numpy()) == _pairs(ref.edge_index, ref.shifts)
        np.testing.assert_allclose(b.positions.numpy(), atoms.positions)
        atoms.positions += rng.normal(0, 0.04, atoms.positions.shape)  # ~0.07 A per step: rebuilds every few
    assert 1 < vg.builds < vg.calls == 12


def test_cell_numbers_or_pbc_changes_rebuild():
    atoms = _triclinic()
    vg = VerletGraph(4.0, 0.6)
    vg.batch(atoms)
    vg.batch(atoms)
    assert vg.builds == 1
    atoms.set_cell(atoms.cell[:] * 1.001, scale_atoms=True)
    b = vg.batch(atoms)
    assert vg.builds == 2
    ref = graph_from_atoms(atoms, 4.0)
    assert _pairs(b.edge_index.numpy(), b.shifts.numpy()) == _pairs(ref.edge_index, ref.shifts)
    atoms.numbers[0] = 79
    vg.batch(atoms)
    atoms.pbc = (True, True, False)
    vg.batch(atoms)
    assert vg.builds == 4


def test_atoms_moving_into_overlap_between_rebuilds_are_refused():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[1] = atoms.positions[0] + [0.0, 0.0, 0.45]
    vg = VerletGraph(4.0, 0.6, min_distance=0.4)
    vg.batch(atoms)
    atoms.positions[1, 2] -= 0.1  # 0.35 A apart, a move below skin / 2: no rebuild
    with pytest.raises(StructureError, match="overlapping"):
        vg.batch(atoms)
    assert vg.builds == 1


def test_md_with_a_skin_follows_the_same_trajectory():
    model = make_tiny_model(seed=2, heads=("a",), cutoff=4.0)
    start = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    start.rattle(0.05, seed=1)
    MaxwellBoltzmannDistribution(start, temperature_K=2000, rng=np.random.default_rng(0))
    runs = {}
    for skin in (0.0, 0.5):
        atoms = start.copy()
        atoms.set_velocities(start.get_velocities())
        atoms.calc = GFMCalculator(model, head="a", dtype="float64", skin=skin)
        energies, forces = [], []
        dyn = VelocityVerlet(atoms, timestep=2 * units.fs)
        dyn.attach(lambda a=atoms: (energies.append(a.get_potential_energy()), forces.append(a.get_forces())))
        dyn.run(40)
        runs[skin] = (np.array(energies), np.array(forces), atoms.calc)
    np.testing.assert_allclose(runs[0.5][0], runs[0.0][0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(runs[0.5][1], runs[0.0][1], rtol=0, atol=1e-9)
    vg = runs[0.5][2].verlet
    assert 1 < vg.builds < vg.calls  # it was reused and it was rebuilt
    assert runs[0.0][2].verlet is None


def test_skin_option_is_validated():
    model = make_tiny_model(seed=2, heads=("a",))
    with pytest.raises(ValueError, match="skin"):
        GFMCalculator(model, head="a", skin=-1.0)
    with pytest.raises(ValueError, match="skin"):
        VerletGraph(4.0, 0.0)
