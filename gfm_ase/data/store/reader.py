"""Reading a store: :class:`Store` (random access to the structures of a file or a folder of shards) and
:func:`read_store_attrs` (the metadata alone)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, overload

import h5py
import numpy as np

from gfm_ase.data.record import StructureRecord
from gfm_ase.data.store.columns import StoreColumns
from gfm_ase.data.store.schema import StoreError, check_header, h5_problem, read_attrs
from gfm_ase.data.store.shard import Shard, shard_paths


class Store(StoreColumns):
    """Read-only random access to a store file or a folder of shard files (concatenated in name order).

    ``store[i]`` -> :class:`StructureRecord`; ``len(store)``; ``store.attrs``; ``store.to_atoms(i)``;
    ``store.elements`` (symbols); ``store.n_atoms`` (per-structure atom counts). ``in_memory=True`` loads the
    per-atom columns into RAM (fastest random access for stores that fit). Whole-column views (energies, element
    counts, label coverage) come from :class:`~gfm_ase.data.store.columns.StoreColumns`.
    """

    def __init__(self, path: str | os.PathLike[str], *, in_memory: bool = False) -> None:
        self.path = Path(path)
        self._shards = [Shard(p, in_memory) for p in shard_paths(self.path)]
        self.attrs = dict(self._shards[0].attrs)
        for s in self._shards[1:]:
            if s.attrs.get("name") != self.attrs.get("name"):
                raise StoreError(
                    f"{s.path}: shard of dataset {s.attrs.get('name')!r} in a store of {self.attrs.get('name')!r}"
                )
        counts = np.array([s.n for s in self._shards], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._len = int(self._starts[-1])
        self.attrs["n_structures"] = self._len
        self._n_atoms = np.concatenate([np.diff(s.offsets) for s in self._shards]).astype(np.int64)
        self.attrs["n_atoms"] = int(self._n_atoms.sum())
        self._groups = None

    # -- basics
    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return (
            f"Store({str(self.path)!r}, name={self.attrs.get('name')!r}, n_structures={self._len}, "
            f"n_atoms={int(self._n_atoms.sum())})"
        )

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for s in self._shards:
            s.close()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for DataLoader workers: h5py handles are dropped and re-opened lazily."""
        state = self.__dict__.copy()
        state["_shards"] = [s.detached() for s in self._shards]
        return state

    def _locate(self, i: int) -> tuple[Shard, int]:
        i = int(i)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"structure index {i} out of range for a store of {self._len}")
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        return self._shards[k], i - int(self._starts[k])

    @overload
    def __getitem__(self, i: int) -> StructureRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[StructureRecord]: ...

    def __getitem__(self, i: int | slice) -> StructureRecord | list[StructureRecord]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._len))]
        sh, j = self._locate(i)
        a, b = int(sh.offsets[j]), int(sh.offsets[j + 1])
        c = sh.cols
        e = c["energy"][j]
        st = c["stress"][j]
        ch = c["charge"][j]
        sp = c["spin"][j]
        return StructureRecord(
            positions=sh.atom_column("positions", a, b),
            numbers=sh.atom_column("numbers", a, b),
            cell=c["cell"][j],
            pbc=c["pbc"][j],
            energy=None if np.isnan(e) else float(e),
            forces=sh.atom_column("forces", a, b) if c["has_forces"][j] else None,
            stress=None if np.isnan(st).any() else st,
            charge=None if np.isnan(ch) else float(ch),
            spin=None if np.isnan(sp) else float(sp),
            magmoms=sh.atom_column("magmoms", a, b) if c["has_magmoms"][j] else None,
            group=sh.string_column("group")[j],
            id=sh.string_column("id")[j],
        )

    def labels_and_structure(self, i: int) -> StructureRecord:
        """Structure ``i`` with its energy, forces, stress, charge and spin, read without validation (the columns
        were checked when they were written) and without magmoms, group and id (left at their defaults): the fast
        path of :class:`~gfm_ase.data.dataset.GraphDataset`. ``store[i]`` reads and checks everything."""
        sh, j = self._locate(i)
        a, b = int(sh.offsets[j]), int(sh.offsets[j + 1])
        c = sh.cols
        e = c["energy"][j]
        st = c["stress"][j]
        ch = c["charge"][j]
        sp = c["spin"][j]
        return StructureRecord.trusted(
            positions=sh.atom_column("positions", a, b),
            numbers=sh.atom_column("numbers", a, b).astype(np.int64),
            cell=c["cell"][j],
            pbc=c["pbc"][j],
            energy=None if np.isnan(e) else float(e),
            forces=sh.atom_column("forces", a, b) if c["has_forces"][j] else None,
            stress=None if np.isnan(st).any() else st,
            charge=None if np.isnan(ch) else float(ch),
            spin=None if np.isnan(sp) else float(sp),
        )

    def __iter__(self) -> Iterator[StructureRecord]:
        for i in range(self._len):
            yield self[i]

    def to_atoms(self, i: int) -> Any:
        """``ase.Atoms`` of structure ``i`` with a SinglePointCalculator holding its labels."""
        return self[i].to_atoms()


def read_store_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a store without opening its columns."""
    p = shard_paths(Path(path))[0]
    try:
        with h5py.File(p, "r") as f:
            check_header(f, p)
            return read_attrs(f)
    except StoreError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise StoreError(f"{p}: {h5_problem(exc)}") from exc
