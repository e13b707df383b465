"""Verlet (skin) neighbor list for one structure that moves a little between calls: MD and relaxations.

The candidate pairs are built once with ``cutoff + skin`` and kept on the model's device; each call only moves the
new positions there and keeps the candidates closer than ``cutoff``. The list is rebuilt when an atom has moved
more than ``skin / 2`` since the last build (two atoms farther apart than ``cutoff + skin`` then cannot have come
within ``cutoff``: the kept pairs are exactly those of a fresh build, in another order), or when the atomic
numbers, the periodicity or the cell changed (NPT: every step).

What it saves per call: the CPU neighbor search and collation, and the host-to-device copy of the edge list
(28 bytes per edge in float32); the filter is one gather and a comparison per candidate. Measured times are in
docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch

from gfm_ase.graph.batch import GraphBatch, collate, graph_from_atoms
from gfm_ase.graph.neighbors import StructureError

if TYPE_CHECKING:
    from ase import Atoms


class VerletGraph:
    """``batch(atoms)`` -> a one-structure :class:`GraphBatch` on ``device``, reusing the last candidate list."""

    def __init__(
        self,
        cutoff: float,
        skin: float,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        min_distance: float | None = None,
    ) -> None:
        if skin <= 0:
            raise ValueError(f"skin must be positive, got {skin}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.device = torch.device(device)
        self.dtype = dtype
        self.min_distance = min_distance
        self.builds = 0  # neighbor searches done
        self.calls = 0
        self._base: GraphBatch | None = None
        self._offset: torch.Tensor | None = None
        self._ref: tuple | None = None

    def _stale(self, atoms: Atoms) -> bool:
        if self._ref is None:
            return True
        positions, numbers, cell, pbc = self._ref
        if (
            len(numbers) != len(atoms)
            or not np.array_equal(numbers, atoms.numbers)
            or not np.array_equal(pbc, atoms.pbc)
            or not np.array_equal(cell, atoms.cell.array)
        ):
            return True
        moved = np.sqrt(((atoms.positions - positions) ** 2).sum(axis=1)).max()
        return not moved < 0.5 * self.skin  # NaN positions rebuild (and are refused there)

    def _build(self, atoms: Atoms) -> None:
        graph = graph_from_atoms(atoms, self.cutoff + self.skin, min_distance=self.min_distance)
        self._base = collate([graph], dtype=self.dtype).to(self.device)
        self._offset = self._base.shifts @ self._base.cell[0]  # the cell is fixed until the next build
        self._ref = (atoms.positions.copy(), atoms.numbers.copy(), atoms.cell.array.copy(), atoms.pbc.copy())
        self.builds += 1

    def batch(self, atoms: Atoms) -> GraphBatch:
        self.calls += 1
        if self._stale(atoms):
            self._build(atoms)
        base, offset = self._base, self._offset
        assert base is not None and offset is not None  # set by _build
        pos = torch.as_tensor(atoms.positions, dtype=self.dtype).to(self.device, non_blocking=True)
        i, j = base.edge_index[0], base.edge_index[1]
        vec = pos.index_select(0, j) - pos.index_select(0, i) + offset
        r2 = (vec * vec).sum(-1)
        keep = (r2 < self.cutoff**2).nonzero().squeeze(1)
        if self.min_distance is not None and bool((r2 < self.min_distance**2).any()):
            k = int(torch.argmin(r2))
            raise StructureError(
                f"atoms {int(i[k])} and {int(j[k])} are {float(r2[k].sqrt()):.3f} A apart "
                f"(< min_distance {self.min_distance} A): overlapping atoms"
            )
        return dataclasses.replace(
            base,
            positions=pos,
            edge_index=base.edge_index.index_select(1, keep),
            shifts=base.shifts.index_select(0, keep),
        )


__all__ = ["VerletGraph"]
