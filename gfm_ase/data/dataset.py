"""Torch map-style dataset of :class:`~gfm_ase.graph.AtomicGraph` read from a store, and a batching loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gfm_ase.data.store import Store
from gfm_ase.graph.batch import AtomicGraph, GraphBatch, collate, graph_from_arrays


class GraphDataset(Dataset):
    """Structures of a store (optionally a subset ``indices``) as radius graphs for one head.

    ``head`` is the head index written into every graph (the trainer maps dataset -> head); ``weight`` the
    per-structure loss weight. Graphs are built on access (in DataLoader workers when ``num_workers > 0``).
    """

    def __init__(
        self,
        store_or_path: Store | str | Path,
        cutoff: float,
        indices: Sequence[int] | np.ndarray | None = None,
        head: int = 0,
        max_neighbors: int | None = None,
        *,
        weight: float = 1.0,
        min_distance: float | None = None,
        in_memory: bool = False,
    ) -> None:
        self.store = (
            store_or_path if isinstance(store_or_path, Store) else Store(Path(store_or_path), in_memory=in_memory)
        )
        if indices is None:
            self.indices = np.arange(len(self.store), dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(self.store)):
                raise IndexError(f"indices out of range for a store of {len(self.store)} structures")
        self.cutoff = float(cutoff)
        self.head = int(head)
        self.max_neighbors = max_neighbors
        self.min_distance = min_distance
        self.weight = float(weight)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> AtomicGraph:
        r = self.store.labels_and_structure(int(self.indices[k]))
        return graph_from_arrays(
            r.positions,
            r.numbers,
            r.cell,
            np.asarray(r.pbc),  # set by the store (typed Optional for the record's constructor)
            self.cutoff,
            max_neighbors=self.max_neighbors,
            min_distance=self.min_distance,
            energy=r.energy,
            forces=r.forces,
            stress=r.stress,
            head=self.head,
            weight=self.weight,
        )


class _Collate:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __call__(self, graphs: Sequence[AtomicGraph]) -> GraphBatch:
        return collate(graphs, dtype=self.dtype)


def graph_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    num_workers: int = 0,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    drop_last: bool = False,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader yielding :class:`~gfm_ase.graph.GraphBatch` (graphs built in the workers)."""
    gen = None
    if seed is not None:
        gen = torch.Generator()
        gen.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=_Collate(dtype),
        generator=gen,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        **kwargs,
    )


__all__ = ["GraphDataset", "graph_loader"]
