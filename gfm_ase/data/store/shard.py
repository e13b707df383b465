"""One store file of a (possibly sharded) store: header checks, the per-structure columns in memory, the per-atom
columns read lazily through an h5py handle that is re-opened after a fork."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gfm_ase.data.store.schema import (
    ATOM_COLUMNS,
    STRING_COLUMNS,
    STRUCT_COLUMNS,
    StoreError,
    check_header,
    h5_problem,
    read_attrs,
)


class Shard:
    """One store file, opened lazily (and re-opened after a fork, as h5py handles must not cross processes)."""

    def __init__(self, path: Path, in_memory: bool) -> None:
        self.path = path
        self._f: h5py.File | None = None
        self._pid: int | None = None
        self._ds: dict[str, h5py.Dataset] = {}
        self._strings: dict[str, np.ndarray] = {}
        try:
            self._read_header(path, in_memory)
        except StoreError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
            raise StoreError(f"{path}: {h5_problem(exc)}") from exc
        self.n = len(self.offsets) - 1

    def _read_header(self, path: Path, in_memory: bool) -> None:
        with h5py.File(path, "r") as f:
            self.version = check_header(f, path)
            self.attrs: dict[str, Any] = read_attrs(f)
            self.offsets: np.ndarray = f["offsets"][:].astype(np.int64)
            missing = [c for c in (*ATOM_COLUMNS, *STRUCT_COLUMNS, *STRING_COLUMNS) if c not in f]
            if missing:
                raise StoreError(f"{path}: store is missing columns {missing}")
            n = len(self.offsets) - 1
            for c in STRUCT_COLUMNS:
                if c != "offsets" and f[c].shape[0] != n:
                    raise StoreError(f"{path}: column {c!r} has {f[c].shape[0]} rows for {n} structures")
            if self.offsets[-1] != f["numbers"].shape[0]:
                raise StoreError(
                    f"{path}: offsets end at {self.offsets[-1]} but there are "
                    f"{f['numbers'].shape[0]} atoms (truncated file?)"
                )
            # per-structure columns are small: keep them in memory
            self.cols: dict[str, np.ndarray] = {c: f[c][:] for c in STRUCT_COLUMNS if c != "offsets"}
            self.mem: dict[str, np.ndarray] | None = {c: f[c][:] for c in ATOM_COLUMNS} if in_memory else None

    def h5(self) -> h5py.File:
        if self._f is None or self._pid != os.getpid():
            try:
                self._f = h5py.File(self.path, "r", rdcc_nbytes=16 * 1024 * 1024)
            except OSError as exc:
                raise StoreError(f"{self.path}: {h5_problem(exc)}") from exc
            self._pid = os.getpid()
            # dataset handles are looked up once: h5py's name lookup costs far more than a small slice read
            self._ds = {name: self._f[name] for name in (*ATOM_COLUMNS, *STRING_COLUMNS)}
        return self._f

    def dataset(self, name: str) -> h5py.Dataset:
        self.h5()
        return self._ds[name]

    def atom_column(self, name: str, a: int, b: int) -> np.ndarray:
        if self.mem is not None:
            return self.mem[name][a:b]
        try:
            return self.dataset(name)[a:b]
        except OSError as exc:
            raise StoreError(f"{self.path}: column {name!r}: {h5_problem(exc)}") from exc

    def full_column(self, name: str) -> np.ndarray:
        if self.mem is not None:
            return self.mem[name]
        try:
            return self.dataset(name)[:]
        except OSError as exc:
            raise StoreError(f"{self.path}: column {name!r}: {h5_problem(exc)}") from exc

    def strings(self, name: str) -> np.ndarray:
        try:
            raw = self.dataset(name)[:]
        except OSError as exc:
            raise StoreError(f"{self.path}: column {name!r}: {h5_problem(exc)}") from exc
        return np.array([s.decode() if isinstance(s, bytes) else s for s in raw], dtype=object)

    def string_column(self, name: str) -> np.ndarray:
        """The whole group/id column, read once (a single vlen string read costs a chunk decompression)."""
        col = self._strings.get(name)
        if col is None:
            col = self._strings[name] = self.strings(name)
        return col

    def detached(self) -> "Shard":
        """A copy without the open h5py handle (for pickling; the copy re-opens the file when it is read)."""
        out = copy.copy(self)
        out._f, out._pid, out._ds = None, None, {}
        return out

    def close(self) -> None:
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f = None
        self._ds = {}


def shard_paths(path: Path) -> list[Path]:
    """The files of a store: the file itself, or the ``*.h5`` / ``*.hdf5`` files of a folder in name order."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".h5", ".hdf5") and not p.name.startswith("."))
        if not files:
            raise StoreError(f"{path}: folder contains no store shards (*.h5)")
        return files
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    return [path]
