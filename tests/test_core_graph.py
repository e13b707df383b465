import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list

from gfm_ase.graph import StructureError, collate, graph_from_atoms, radius_graph


def _sorted_dists(atoms, cutoff):
    g = graph_from_atoms(atoms, cutoff)
    i, j = g.edge_index
    vec = atoms.positions[j] - atoms.positions[i] + g.shifts @ atoms.cell.array
    return np.sort(np.linalg.norm(vec, axis=1)), g


@pytest.mark.parametrize(
    "atoms",
    [
        bulk("Cu", "fcc", a=3.6),  # 1-atom cell much smaller than the cutoff
        bulk("Si", "diamond", a=5.43),
        fcc111("Al", (2, 2, 3), vacuum=6.0),  # slab: mixed pbc
        molecule("CH3CH2OH"),
    ],
    ids=["fcc-1atom", "si-prim", "slab", "molecule"],
)
def test_graph_matches_ase_neighbor_list(atoms):
    cutoff = 6.0
    d, g = _sorted_dists(atoms, cutoff)
    d_ref = np.sort(neighbor_list("d", atoms, cutoff))
    assert len(d) == len(d_ref)
    np.testing.assert_allclose(d, d_ref, atol=1e-10)
    assert np.all(d > 0)


def test_triclinic_cell_graph():
    a = bulk("Cu", "fcc", a=3.6)
    a.set_cell(a.cell.array @ np.array([[1, 0.3, 0], [0, 1, 0.2], [0.1, 0, 1]]), scale_atoms=True)
    d, _ = _sorted_dists(a, 5.0)
    np.testing.assert_allclose(d, np.sort(neighbor_list("d", a, 5.0)), atol=1e-10)


def test_slab_with_zero_vacuum_vector():
    a = fcc111("Al", (2, 2, 2), vacuum=None, periodic=False)
    a.pbc = [True, True, False]
    a.cell[2] = 0.0
    d, _ = _sorted_dists(a, 5.0)
    ref = a.copy()
    ref.cell[2] = [0, 0, 50]
    np.testing.assert_allclose(d, np.sort(neighbor_list("d", ref, 5.0)), atol=1e-10)


def test_max_neighbors_keeps_nearest():
    a = bulk("Cu", "fcc", a=3.6).repeat(2)
    ei, _ = radius_graph(a.positions, a.cell.array, a.pbc, 6.0, max_neighbors=12)
    counts = np.bincount(ei[0], minlength=len(a))
    assert counts.max() == 12
    g = graph_from_atoms(a, 6.0, max_neighbors=12)
    i, j = g.edge_index
    d = np.linalg.norm(a.positions[j] - a.positions[i] + g.shifts @ a.cell.array, axis=1)
    np.testing.assert_allclose(d, 3.6 / np.sqrt(2), atol=1e-8)  # exactly the 12 nearest neighbours


def test_bad_structures_raise():
    with pytest.raises(StructureError, match="empty"):
        radius_graph(np.zeros((0, 3)), np.eye(3), [True] * 3, 5.0)
    with pytest.raises(StructureError, match="NaN"):
        radius_graph(np.array([[0, 0, np.nan]]), np.eye(3) * 5, [True] * 3, 5.0)
    with pytest.raises(StructureError, match="overlapping"):
        radius_graph(np.array([[0, 0, 0], [0, 0, 0.05]]), np.zeros((3, 3)), [False] * 3, 5.0, min_distance=0.3)


def test_collate_offsets_and_labels():
    a = bulk("Cu", "fcc", a=3.6)
    m = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    g1, g2 = graph_from_atoms(a, 4.0), graph_from_atoms(m, 4.0)
    g1.energy = -1.0
    b = collate([g1, g2])
    assert b.num_graphs == 2 and b.num_atoms == 3
    assert b.batch.tolist() == [0, 1, 1]
    assert b.edge_index[:, g1.edge_index.shape[1]:].min() == 1  # second graph's edges are offset
    assert b.energy[0] == -1.0 and np.isnan(b.energy[1].item())
