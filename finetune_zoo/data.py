"""The data of a fine-tuning task: training/validation/test structures from stores, as the trainer's
:class:`gfm_ase.pretraining.data.DatasetSplits`.

A selection is a store and optionally the store indices to use. Without validation data, ``val_fraction`` of the
training selection is split off (seeded). ``n_train`` keeps the first ``n_train`` structures of a seeded
permutation of the training selection, so the subsets of a learning curve are nested (10 within 30 within 100).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from ase.data import chemical_symbols

from gfm_ase.pretraining.data import CachedGraphs, DatasetSplits, Graphs

if TYPE_CHECKING:
    from gfm_ase.data import Store
    from gfm_ase.graph import AtomicGraph


@dataclass
class Selection:
    """A store (file or shard folder) and the indices to use (None: all)."""

    path: str | os.PathLike[str]
    indices: Sequence[int] | np.ndarray | None = None

    def resolved(self, store: Store) -> np.ndarray:
        if self.indices is None:
            return np.arange(len(store), dtype=np.int64)
        idx = np.asarray(self.indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(store)):
            raise IndexError(f"indices out of range for {self.path} ({len(store)} structures)")
        return idx


class _Subset:
    """A fixed subset of a map-style dataset."""

    def __init__(self, base: Graphs, positions: np.ndarray) -> None:
        self.base = base
        self.positions = np.asarray(positions, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> AtomicGraph:
        return self.base[int(self.positions[k])]


def capped(graphs: Graphs, cap: int | None, seed: int) -> Graphs:
    """At most ``cap`` graphs of ``graphs`` (a seeded subset, in index order); all when cap is None."""
    n = len(graphs)
    if cap is None or n <= cap:
        return graphs
    keep = np.sort(np.random.default_rng([seed, 23]).permutation(n)[:cap])
    return _Subset(graphs, keep)


def nested_subset(indices: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """The first ``n`` of a seeded permutation of ``indices`` (sorted); nested in ``n`` for a fixed seed."""
    indices = np.asarray(indices, dtype=np.int64)
    if n is None or n >= len(indices):
        return indices
    if n < 1:
        raise ValueError(f"n_train must be >= 1, got {n}")
    order = np.random.default_rng([seed, 31]).permutation(len(indices))
    return np.sort(indices[order[:n]])


def _sha(idx: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()


class StoreCache:
    """Opens each store once."""

    def __init__(self) -> None:
        self._stores: dict[str, Store] = {}

    def get(self, path: str | os.PathLike[str]) -> Store:
        from gfm_ase.data import Store

        key = str(Path(path).resolve())
        if key not in self._stores:
            if not Path(key).exists():
                raise FileNotFoundError(f"store {path} does not exist")
            self._stores[key] = Store(key)
        return self._stores[key]


def cached_graphs(store: Store, cutoff: float, indices: np.ndarray, max_neighbors: int | None) -> Graphs:
    """The radius graphs of the structures ``indices`` of ``store``, each built once."""
    from gfm_ase.data import GraphDataset

    # GraphDataset takes any integer array (np.asarray inside) but annotates indices as Sequence[int]
    gd = GraphDataset(store, cutoff, indices=indices, max_neighbors=max_neighbors)
    return CachedGraphs(gd)


def elements_of(store: Store, indices: Sequence[int] | np.ndarray) -> list[str]:
    if len(indices) == 0:
        return []
    zs, counts = store.composition(np.asarray(indices, dtype=np.int64))
    present = counts.sum(axis=0) > 0
    return [chemical_symbols[int(z)] for z in zs[present]]


def task_datasets(
    name: str,
    head: str,
    train: Selection,
    val: Selection | None = None,
    test: Selection | None = None,
    *,
    cutoff: float,
    max_neighbors: int | None = None,
    n_train: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    eval_max_structures: int | None = None,
    stores: StoreCache | None = None,
) -> DatasetSplits:
    """The task as one :class:`DatasetSplits` for head ``head``; its ``provenance`` goes into the head metadata."""
    stores = stores or StoreCache()
    tr_store = stores.get(train.path)
    tr_idx = train.resolved(tr_store)
    if val is None:
        if len(tr_idx) < 2:
            raise ValueError(
                f"{train.path}: {len(tr_idx)} structure(s) cannot be split into training and "
                "validation; give validation data"
            )
        perm = np.random.default_rng([split_seed, 5]).permutation(len(tr_idx))
        n_val = max(1, int(round(val_fraction * len(tr_idx))))
        val = Selection(train.path, np.sort(tr_idx[perm[:n_val]]))
        tr_idx = np.sort(tr_idx[perm[n_val:]])
    full_train = tr_idx
    tr_idx = nested_subset(tr_idx, n_train, split_seed)
    if len(tr_idx) == 0:
        raise ValueError(f"task {name!r}: the training selection is empty")
    va_store = stores.get(val.path)
    va_idx = val.resolved(va_store)
    graphs: dict[str, Graphs] = {"train": cached_graphs(tr_store, cutoff, tr_idx, max_neighbors)}
    va = cached_graphs(va_store, cutoff, va_idx, max_neighbors)
    graphs["val"] = capped(va, eval_max_structures, split_seed)
    if test is not None:
        te_store = stores.get(test.path)
        te_idx = test.resolved(te_store)
        te = cached_graphs(te_store, cutoff, te_idx, max_neighbors)
        graphs["test"] = capped(te, eval_max_structures, split_seed + 1)
    else:
        te_idx = np.zeros(0, dtype=np.int64)
        graphs["test"] = []
    attrs = {k: v for k, v in tr_store.attrs.items() if isinstance(v, (str, int, float, bool))}
    prov = {
        "name": name,
        "role": "finetune",
        "path": str(Path(train.path).resolve()),
        "store": attrs,
        "n_structures": len(tr_store),
        "n_train": int(len(tr_idx)),
        "n_train_available": int(len(full_train)),
        "n_val": int(len(graphs["val"])),
        "n_test": int(len(graphs["test"])),
        "train_indices_sha256": _sha(tr_idx),
        "val": {"path": str(Path(val.path).resolve()), "indices": va_idx.tolist() if len(va_idx) <= 5000 else None},
        "test": None
        if test is None
        else {"path": str(Path(test.path).resolve()), "indices": te_idx.tolist() if len(te_idx) <= 5000 else None},
        "label_counts": tr_store.label_counts(),
    }
    return DatasetSplits(
        name=name,
        head=head,
        train=graphs["train"],
        val=graphs["val"],
        test=graphs["test"],
        elements=elements_of(tr_store, tr_idx),
        provenance=prov,
        store=tr_store,
        split_indices={"train": tr_idx, "val": va_idx, "test": te_idx},
    )
