"""Writing a store: :class:`StoreWriter` creates a store or appends to one, atomically.

It writes to a temporary file next to the target and renames it over the target only when the ``with`` block
exits without an exception, so an interrupted conversion never leaves a file that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable

import h5py
import numpy as np

from gfm_ase.data.record import StructureRecord
from gfm_ase.data.store.schema import (
    ATOM_CHUNK,
    ATOM_COLUMNS,
    FORMAT,
    RESERVED_ATTRS,
    SCHEMA_VERSION,
    STRING_COLUMNS,
    STRING_DTYPE,
    STRUCT_CHUNK,
    STRUCT_COLUMNS,
    UNITS,
    StoreError,
    check_header,
    compression,
    encode_attr,
    h5_problem,
    read_attrs,
)
from gfm_ase.fileio import publish


class StoreWriter:
    """Write (or append to) a store atomically.

    >>> with StoreWriter("water.h5", name="water", level_of_theory="SCAN", code="VASP", source=..., license=...) as w:
    ...     w.append(record)          # or w.append_atoms(atoms, group="traj-3")

    ``mode="w"`` creates (replacing an existing file only on success); ``mode="a"`` appends to an existing store
    (copied to a temporary file first, so a failed append leaves the original untouched). On exit with an
    exception nothing is written. ``buffer`` structures are collected in memory before each write to the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        level_of_theory: str = "",
        code: str = "",
        source: str = "",
        license: str = "",
        mode: str = "w",
        command: str | None = None,
        buffer: int = 2048,
        **attrs: Any,
    ) -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._buffer_size = int(buffer)
        self._attrs = dict(attrs)
        self._meta: dict[str, Any] = dict(
            name=name if name is not None else self.path.stem,
            level_of_theory=level_of_theory,
            code=code,
            source=source,
            license=license,
            command=command if command is not None else " ".join(sys.argv),
        )
        self._tmp: Path | None = None
        self._f: h5py.File | None = None
        self._buf: list[StructureRecord] = []
        self._n_structures = 0
        self._n_atoms = 0
        self._elements: set[int] = set()

    # -- lifecycle
    def __enter__(self) -> "StoreWriter":
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        if self._f is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial")
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            if self.mode == "a":
                self._open_for_append(self._tmp)
            else:
                self._f = h5py.File(self._tmp, "w")
                self._create_layout(self._f)
        except BaseException:
            self.abort()
            raise

    def _open_for_append(self, tmp: Path) -> None:
        if not self.path.is_file():
            raise StoreError(f"{self.path}: cannot append, no such store")
        try:
            with h5py.File(self.path, "r") as f:
                check_header(f, self.path)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot append, {h5_problem(exc)}") from exc
        shutil.copyfile(self.path, tmp)
        self._f = f = h5py.File(tmp, "a")
        self._n_structures = int(f["offsets"].shape[0] - 1)
        self._n_atoms = int(f["numbers"].shape[0])
        self._elements = set(int(z) for z in json.loads(f.attrs.get("elements", "[]")))
        # metadata given explicitly on append must agree with the store
        old = read_attrs(f)
        for key in ("name", "level_of_theory", "code"):
            given = self._meta[key]
            if given and old.get(key) and given != old[key] and not (key == "name" and given == self.path.stem):
                raise StoreError(f"{self.path}: appending {key}={given!r} to a store with {key}={old[key]!r}")
        history = list(old.get("append_commands", []))
        history.append(self._meta["command"])
        self._attrs = {"append_commands": history, **self._attrs}

    @staticmethod
    def _create_layout(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["units"] = json.dumps(UNITS)
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        for name, (dtype, shape) in ATOM_COLUMNS.items():
            f.create_dataset(
                name,
                shape=(0,) + shape,
                maxshape=(None,) + shape,
                dtype=dtype,
                chunks=(ATOM_CHUNK,) + shape,
                **compression(),
            )
        for name, (dtype, shape) in STRUCT_COLUMNS.items():
            n0 = 1 if name == "offsets" else 0
            f.create_dataset(
                name,
                shape=(n0,) + shape,
                maxshape=(None,) + shape,
                dtype=dtype,
                chunks=(STRUCT_CHUNK,) + shape,
                **compression(),
            )
        for name in STRING_COLUMNS:
            f.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=STRING_DTYPE, chunks=(STRUCT_CHUNK,), **compression()
            )

    def append(self, record: StructureRecord) -> int:
        """Add one record; returns its index in the store."""
        if self._f is None:
            self.open()
        if not isinstance(record, StructureRecord):
            raise TypeError(f"expected a StructureRecord, got {type(record).__name__}")
        self._buf.append(record)
        idx = self._n_structures + len(self._buf) - 1
        if len(self._buf) >= self._buffer_size:
            self.flush()
        return idx

    def extend(self, records: Iterable[StructureRecord]) -> None:
        for r in records:
            self.append(r)

    def append_atoms(self, atoms: Any, *, group: str = "", id: str = "", energy_key: str = "energy") -> int:
        return self.append(StructureRecord.from_atoms(atoms, group=group, id=id, energy_key=energy_key))

    def __len__(self) -> int:
        return self._n_structures + len(self._buf)

    def extra_attrs(self, **attrs: Any) -> None:
        """Set further file attributes (written on close)."""
        self._attrs.update(attrs)

    def flush(self) -> None:
        if not self._buf or self._f is None:
            return
        recs, self._buf = self._buf, []
        f = self._f
        n_new = np.array([r.n_atoms for r in recs], dtype=np.int64)
        a0, s0 = self._n_atoms, self._n_structures
        a1, s1 = a0 + int(n_new.sum()), s0 + len(recs)

        def put(name: str, start: int, stop: int, values: np.ndarray) -> None:
            ds = f[name]
            ds.resize(stop, axis=0)
            ds[start:stop] = values

        nan = np.nan
        put("positions", a0, a1, np.concatenate([r.positions for r in recs]))
        put("numbers", a0, a1, np.concatenate([r.numbers for r in recs]).astype(np.int16))
        put("forces", a0, a1, np.concatenate([_or_nan(r.forces, (r.n_atoms, 3)) for r in recs]))
        put("magmoms", a0, a1, np.concatenate([_or_nan(r.magmoms, (r.n_atoms,)) for r in recs]))
        put("offsets", s0 + 1, s1 + 1, a0 + np.cumsum(n_new))
        put("cell", s0, s1, np.stack([np.asarray(r.cell) for r in recs]))  # set by the record: never None
        put("pbc", s0, s1, np.stack([np.asarray(r.pbc) for r in recs]))
        put("energy", s0, s1, np.array([nan if r.energy is None else r.energy for r in recs]))
        put("stress", s0, s1, np.stack([_or_nan(r.stress, (6,)) for r in recs]))
        put("charge", s0, s1, np.array([nan if r.charge is None else r.charge for r in recs]))
        put("spin", s0, s1, np.array([nan if r.spin is None else r.spin for r in recs]))
        put("has_forces", s0, s1, np.array([r.forces is not None for r in recs]))
        put("has_magmoms", s0, s1, np.array([r.magmoms is not None for r in recs]))
        put("group", s0, s1, np.array([r.group for r in recs], dtype=object))
        put("id", s0, s1, np.array([r.id for r in recs], dtype=object))
        for r in recs:
            self._elements.update(np.unique(r.numbers).tolist())
        self._n_atoms, self._n_structures = a1, s1

    def _write_attrs(self, f: h5py.File) -> None:
        json_keys: list[str] = []
        meta = {**self._meta, **self._attrs}
        if self.mode == "a":  # keep the original metadata unless a new non-empty value was given
            old = read_attrs(f)
            meta = {k: v for k, v in meta.items() if not (v in ("", None) and k in old)}
            meta.pop("command", None)  # the creation command stays; appends are in append_commands
            if old.get("name") and meta.get("name") == self.path.stem:
                meta.pop("name")
            json_keys = json.loads(f.attrs.get("_json_attrs", "[]"))
        for k, v in meta.items():
            if k in RESERVED_ATTRS:
                raise StoreError(f"attribute name {k!r} is reserved by the store format")
            enc, is_json = encode_attr(v)
            f.attrs[k] = enc
            if is_json and k not in json_keys:
                json_keys.append(k)
        f.attrs["_json_attrs"] = json.dumps(json_keys)
        f.attrs["n_structures"] = self._n_structures
        f.attrs["n_atoms"] = self._n_atoms
        f.attrs["elements"] = json.dumps(sorted(self._elements))

    def close(self) -> None:
        """Flush, write metadata and move the file into place (atomic rename)."""
        if self._f is None or self._tmp is None:
            return
        try:
            self.flush()
            self._write_attrs(self._f)
            self._f.flush()
            self._f.close()
            self._f = None
            with open(self._tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            publish(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Discard everything written since :meth:`open`; the target path is left as it was."""
        self._buf = []
        if self._f is not None:
            try:
                self._f.close()
            except Exception:
                pass
            self._f = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None


def _or_nan(values: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """A label's values, or NaN of its shape where the record does not have it."""
    return values if values is not None else np.full(shape, np.nan)
