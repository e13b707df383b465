"""Spatial atom order (gfm_ase.graph.locality): a permutation that keeps structures contiguous, brings edge partners
closer in memory, and leaves every result of a model call unchanged once the per-atom rows are put back."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from gfm_ase.graph import locality
from gfm_ase.graph.batch import collate, graph_from_atoms
from gfm_ase.runtime import InferenceRuntime
from tests.conftest import make_tiny_model


def _structures():
    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat((4, 3, 3))  # 288 atoms, made by repetition
    si.rattle(0.05, seed=1)
    si.set_cell(si.cell.array + np.array([[0, 0, 0], [0.7, 0, 0], [0.3, -0.4, 0]]), scale_atoms=True)  # sheared
    mol = molecule("CH3CH2OH")
    slab = bulk("Si", "diamond", a=5.43, cubic=True).repeat((3, 3, 1))
    slab.pbc = (True, True, False)
    slab.center(vacuum=4.0, axis=2)
    rng = np.random.default_rng(0)
    for a in (mol, slab):
        a.positions += rng.normal(scale=0.03, size=a.positions.shape)
    return [si, mol, slab]


def _batch(structures, cutoff=4.0):
    return collate([graph_from_atoms(a, cutoff) for a in structures])


def test_spatial_order_is_a_permutation_that_keeps_structures_contiguous():
    batch = _batch(_structures())
    perm = locality.spatial_order(batch, bin_size=2.0)
    assert sorted(perm.tolist()) == list(range(batch.num_atoms))
    assert torch.equal(batch.batch[perm], batch.batch)  # same structure blocks, same order
    assert not torch.equal(perm, torch.arange(batch.num_atoms))  # the repeated cell is not already in curve order


def _median_reuse_span(batch) -> float:
    """Median over atoms of how many edges lie between the first and the last edge that gathers the atom as a
    neighbour: how long its features must stay in cache."""
    j = batch.edge_index[1]
    pos = torch.arange(j.numel())
    first = torch.full((batch.num_atoms,), j.numel()).scatter_reduce(0, j, pos, "amin")
    last = torch.zeros(batch.num_atoms, dtype=torch.long).scatter_reduce(0, j, pos, "amax")
    return float((last - first).double().median())


def test_reorder_shortens_reuse_distances_and_keeps_the_graph():
    # a large cell made by repetition (32^3 simple cubic, 6 neighbours each): in file order the neighbours of an
    # atom are gathered over two slabs of the cell, in curve order over a few nearby bins
    cell = Atoms("H", cell=np.eye(3), pbc=True).repeat((32, 32, 32))
    cell.rattle(0.02, seed=0)
    batch = collate([graph_from_atoms(cell, 1.2)])
    perm = locality.spatial_order(batch, bin_size=1.2)
    new = locality.reorder(batch, perm)
    before, after = _median_reuse_span(batch), _median_reuse_span(new)
    assert after < 0.6 * before, (before, after)
    # the same edges, relabelled: every (old i, old j, shift) triple is still there
    old = set(zip(batch.edge_index[0].tolist(), batch.edge_index[1].tolist(), map(tuple, batch.shifts.tolist())))
    back = set(zip(perm[new.edge_index[0]].tolist(), perm[new.edge_index[1]].tolist(), map(tuple, new.shifts.tolist())))
    assert old == back and new.num_edges == batch.num_edges
    assert bool((new.edge_index[0][1:] >= new.edge_index[0][:-1]).all())  # sorted by centre atom
    assert torch.equal(new.positions, batch.positions[perm]) and torch.equal(new.numbers, batch.numbers[perm])


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_runtime_results_unchanged_by_reordering(mode):
    model = make_tiny_model(heads=("a",))
    plain = InferenceRuntime(model, "a", device="cpu", dtype="float64", copy_model=True, reorder_min_atoms=None)
    ordered = InferenceRuntime(model, "a", device="cpu", dtype="float64", copy_model=True, reorder_min_atoms=1)
    structures = _structures() if mode == "batch" else _structures()[:1]
    batch = plain.batch_from_atoms(structures)
    stress = mode == "single"  # stress of the open molecule is undefined; the Si cell checks it
    want = plain.evaluate(batch, forces=True, stress=stress)
    got = ordered.evaluate(batch, forces=True, stress=stress)
    assert set(got) == set(want)
    for key in want:
        w, g = want[key].detach(), got[key].detach()
        assert g.shape == w.shape, key
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=key)
    assert float(want["forces"].abs().max()) > 1e-3  # non-trivial forces: a wrong un-permutation shows


def test_default_threshold_leaves_small_batches_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(locality, "spatial_order", lambda *a, **k: calls.append(1) or torch.arange(0))
    rt = InferenceRuntime(make_tiny_model(heads=("a",)), "a", device="cpu", dtype="float64")
    rt.evaluate(rt.batch_from_atoms([Atoms("H2", positions=[[0, 0, 0], [0.8, 0, 0]])]), forces=True)
    assert rt.reorder_min_atoms == locality.MIN_ATOMS and calls == []
