"""The one graph type of gfm-ase.

:class:`AtomicGraph` is a single structure as numpy arrays (what loaders and converters produce);
:func:`collate` turns a list of them into a :class:`GraphBatch`, the disjoint batched graph that the model, the
calculator, the trainer and screening all consume.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from gfm_ase.graph.neighbors import StructureError, radius_graph
from gfm_ase.units import to_voigt

if TYPE_CHECKING:
    from ase import Atoms


@dataclass
class AtomicGraph:
    """One structure with its radius graph (numpy). Labels in ASE units: energy eV, forces eV/A, ``stress``
    Voigt-6 (xx yy zz yz xz xy) in eV/A^3, tension positive."""

    positions: np.ndarray  # [n, 3] float64, Angstrom
    numbers: np.ndarray  # [n] int64
    cell: np.ndarray  # [3, 3] float64
    pbc: np.ndarray  # [3] bool
    edge_index: np.ndarray  # [2, E] int64
    shifts: np.ndarray  # [E, 3] float64 integer cell shifts
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    head: int = 0  # index of the head (dataset) this structure belongs to
    weight: float = 1.0  # per-structure loss weight
    fidelity: int = -1  # index into the model's fidelities (set by the trainer); -1: its head's

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)


def graph_from_arrays(
    positions: ArrayLike,
    numbers: ArrayLike,
    cell: ArrayLike | None,
    pbc: ArrayLike,
    cutoff: float,
    *,
    max_neighbors: int | None = None,
    min_distance: float | None = None,
    energy: float | None = None,
    forces: ArrayLike | None = None,
    stress: ArrayLike | None = None,
    head: int = 0,
    weight: float = 1.0,
) -> AtomicGraph:
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    if len(numbers) != len(positions):
        raise StructureError(f"{len(numbers)} atomic numbers but {len(positions)} positions")
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    edge_index, shifts = radius_graph(positions, cell, pbc, cutoff, max_neighbors, min_distance)
    return AtomicGraph(
        positions=positions,
        numbers=numbers,
        cell=cell,
        pbc=pbc,
        edge_index=edge_index,
        shifts=shifts,
        energy=None if energy is None else float(energy),
        forces=None if forces is None else np.asarray(forces, dtype=np.float64).reshape(-1, 3),
        stress=None if stress is None else np.asarray(stress, dtype=np.float64).reshape(6),
        head=int(head),
        weight=float(weight),
    )


def graph_from_atoms(
    atoms: Atoms,
    cutoff: float,
    *,
    max_neighbors: int | None = None,
    min_distance: float | None = None,
    head: int = 0,
    with_labels: bool = False,
) -> AtomicGraph:
    """Build the graph of an ``ase.Atoms``. With ``with_labels`` the attached calculator's results are used."""
    energy = forces = stress = None
    if with_labels and atoms.calc is not None:
        res = atoms.calc.results
        energy = res.get("energy")
        forces = res.get("forces")
        st = res.get("stress")
        if st is not None:
            st = np.asarray(st)
            if st.shape == (3, 3):
                st = to_voigt(st)
            stress = st
    return graph_from_arrays(
        atoms.positions,
        atoms.numbers,
        atoms.cell.array,
        atoms.pbc,
        cutoff,
        max_neighbors=max_neighbors,
        min_distance=min_distance,
        energy=energy,
        forces=forces,
        stress=stress,
        head=head,
    )


@dataclass
class GraphBatch:
    """A disjoint union of graphs. ``batch[a]`` is the structure of atom ``a``; edges index the whole batch."""

    positions: torch.Tensor  # [N, 3]
    numbers: torch.Tensor  # [N] long
    cell: torch.Tensor  # [B, 3, 3]
    pbc: torch.Tensor  # [B, 3] bool
    batch: torch.Tensor  # [N] long
    n_atoms: torch.Tensor  # [B] long
    edge_index: torch.Tensor  # [2, E] long
    shifts: torch.Tensor  # [E, 3]
    head: torch.Tensor  # [B] long
    weight: torch.Tensor  # [B]
    energy: torch.Tensor | None = None  # [B]  (NaN where missing)
    forces: torch.Tensor | None = None  # [N, 3] (NaN where missing)
    stress: torch.Tensor | None = None  # [B, 6] (NaN where missing)
    fidelity: torch.Tensor | None = None  # [B] long, index into the model's fidelities; -1 or None: the head's

    @property
    def num_graphs(self) -> int:
        return int(self.cell.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GraphBatch":
        """Move to ``device``; floating tensors are cast to ``dtype`` when given."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                if dtype is not None and v.is_floating_point():
                    v = v.to(device=device, dtype=dtype)
                else:
                    v = v.to(device=device)
            out[f.name] = v
        return replace(self, **out)

    def pin_memory(self) -> "GraphBatch":
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).pin_memory()
                for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            },
        )


def collate(graphs: Sequence[AtomicGraph], dtype: torch.dtype = torch.float64) -> GraphBatch:
    """Concatenate graphs into one :class:`GraphBatch` (no per-edge Python work)."""
    if len(graphs) == 0:
        raise ValueError("cannot collate an empty list of graphs")
    n_atoms = np.array([g.n_atoms for g in graphs], dtype=np.int64)
    n_edges = np.array([g.edge_index.shape[1] for g in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
    edge_index = np.concatenate([g.edge_index for g in graphs], axis=1) + np.repeat(offsets, n_edges)[None, :]
    batch = np.repeat(np.arange(len(graphs)), n_atoms)

    def t(x: ArrayLike, dt: torch.dtype = dtype) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dt)

    energy = forces = stress = None
    if any(g.energy is not None for g in graphs):
        energy = t([np.nan if g.energy is None else g.energy for g in graphs])
    if any(g.forces is not None for g in graphs):
        forces = t(
            np.concatenate([g.forces if g.forces is not None else np.full((g.n_atoms, 3), np.nan) for g in graphs])
        )
    if any(g.stress is not None for g in graphs):
        stress = t(np.stack([g.stress if g.stress is not None else np.full(6, np.nan) for g in graphs]))
    return GraphBatch(
        positions=t(np.concatenate([g.positions for g in graphs])),
        numbers=t(np.concatenate([g.numbers for g in graphs]), torch.long),
        cell=t(np.stack([g.cell for g in graphs])),
        pbc=t(np.stack([g.pbc for g in graphs]), torch.bool),
        batch=t(batch, torch.long),
        n_atoms=t(n_atoms, torch.long),
        edge_index=t(edge_index, torch.long),
        shifts=t(np.concatenate([g.shifts for g in graphs])),
        head=t([g.head for g in graphs], torch.long),
        weight=t([g.weight for g in graphs]),
        energy=energy,
        forces=forces,
        stress=stress,
        fidelity=t([g.fidelity for g in graphs], torch.long),
    )


__all__ = ["AtomicGraph", "GraphBatch", "StructureError", "collate", "graph_from_arrays", "graph_from_atoms"]
