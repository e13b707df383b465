"""The gfm-ase structure store: one HDF5 file (or a folder of shard files) per dataset.

Columnar layout (schema in ``docs/data-format.md``): per-atom columns (positions, numbers, forces, magmoms) are
concatenated over structures and sliced with per-structure ``offsets``, so reading structure ``i`` costs O(1)
chunk reads whatever the store size. Every column is chunked and compressed and resizable (appendable).

:class:`StoreWriter` writes to a temporary file next to the target and renames it over the target only when the
``with`` block exits without an exception, so an interrupted conversion never leaves a file that looks complete.
:class:`Store` refuses files with another format tag or an unknown schema version.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from gfm_ase.fileio import publish

from gfm_ase.data.record import RecordError, StructureRecord

FORMAT = "gfm-ase-store"
SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)

UNITS = {
    "positions": "Angstrom",
    "cell": "Angstrom",
    "energy": "eV",
    "forces": "eV/Angstrom",
    "stress": "eV/Angstrom^3, positive = tension (ASE), Voigt order xx yy zz yz xz xy",
    "charge": "e",
    "spin": "spin multiplicity 2S+1",
    "magmoms": "Bohr magneton",
}

# column name -> (dtype, trailing shape per atom / per structure); a missing label is stored as NaN, and the
# per-atom ones are also flagged per structure (has_forces / has_magmoms = False)
ATOM_COLUMNS = {
    "positions": (np.float64, (3,)),
    "numbers": (np.int16, ()),
    "forces": (np.float64, (3,)),
    "magmoms": (np.float64, ()),
}
STRUCT_COLUMNS = {
    "offsets": (np.int64, ()),  # start of each structure in the per-atom columns (length S + 1 on disk)
    "cell": (np.float64, (3, 3)),
    "pbc": (np.bool_, (3,)),
    "energy": (np.float64, ()),  # NaN = missing
    "stress": (np.float64, (6,)),  # NaN = missing
    "charge": (np.float64, ()),  # NaN = missing
    "spin": (np.float64, ()),  # NaN = missing
    "has_forces": (np.bool_, ()),
    "has_magmoms": (np.bool_, ()),
}
STRING_COLUMNS = ("group", "id")
ATOM_CHUNK = 4096
STRUCT_CHUNK = 1024
_STR = h5py.string_dtype("utf-8")
RESERVED_ATTRS = {"format", "schema_version", "units", "created", "n_structures", "n_atoms", "elements",
                  "_json_attrs"}


class StoreError(RuntimeError):
    """A store file that is missing, of an unknown format or schema version, or inconsistent."""


def _compression() -> dict:
    return dict(compression="gzip", compression_opts=4, shuffle=True)


def _encode_attr(value):
    if isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return value, False
    if value is None:
        return json.dumps(None), True
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)), True


def _read_attrs(f: h5py.File) -> dict:
    json_keys = set(json.loads(f.attrs.get("_json_attrs", "[]")))
    out = {}
    for k, v in f.attrs.items():
        if k == "_json_attrs":
            continue
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.generic):
            v = v.item()
        if k in json_keys or k in ("units", "elements"):
            v = json.loads(v)
        out[k] = v
    return out


def _check_header(f: h5py.File, path) -> int:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT:
        raise StoreError(f"{path}: not a gfm-ase store (format attribute {fmt!r}, expected {FORMAT!r})")
    version = int(f.attrs.get("schema_version", -1))
    if version not in SUPPORTED_VERSIONS:
        raise StoreError(f"{path}: store schema version {version} is not supported by this gfm-ase "
                         f"(supported: {SUPPORTED_VERSIONS}); upgrade gfm-ase or re-convert the data")
    return version


# --------------------------------------------------------------------------------------------------------- writer
class StoreWriter:
    """Write (or append to) a store atomically.

    >>> with StoreWriter("water.h5", name="water", level_of_theory="SCAN", code="VASP", source=..., license=...) as w:
    ...     w.append(record)          # or w.append_atoms(atoms, group="traj-3")

    ``mode="w"`` creates (replacing an existing file only on success); ``mode="a"`` appends to an existing store
    (copied to a temporary file first, so a failed append leaves the original untouched). On exit with an
    exception nothing is written. ``buffer`` structures are collected in memory before each write to the file.
    """

    def __init__(self, path, *, name: str | None = None, level_of_theory: str = "", code: str = "",
                 source: str = "", license: str = "", mode: str = "w", command: str | None = None,
                 buffer: int = 2048, **attrs):
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._buffer_size = int(buffer)
        self._attrs = dict(attrs)
        self._meta = dict(name=name if name is not None else self.path.stem, level_of_theory=level_of_theory,
                          code=code, source=source, license=license,
                          command=command if command is not None else " ".join(sys.argv))
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

    def __exit__(self, exc_type, exc, tb) -> None:
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
                if not self.path.is_file():
                    raise StoreError(f"{self.path}: cannot append, no such store")
                try:
                    with h5py.File(self.path, "r") as f:
                        _check_header(f, self.path)
                except OSError as exc:
                    raise StoreError(f"{self.path}: cannot append, {_h5_problem(exc)}") from exc
                shutil.copyfile(self.path, self._tmp)
                self._f = h5py.File(self._tmp, "a")
                self._n_structures = int(self._f["offsets"].shape[0] - 1)
                self._n_atoms = int(self._f["numbers"].shape[0])
                self._elements = set(int(z) for z in json.loads(self._f.attrs.get("elements", "[]")))
                # metadata given explicitly on append must agree with the store
                old = _read_attrs(self._f)
                for key in ("name", "level_of_theory", "code"):
                    given = self._meta[key]
                    if given and old.get(key) and given != old[key] and not (key == "name" and given == self.path.stem):
                        raise StoreError(f"{self.path}: appending {key}={given!r} to a store with {key}={old[key]!r}")
                history = list(old.get("append_commands", []))
                history.append(self._meta["command"])
                self._attrs = {"append_commands": history, **self._attrs}
            else:
                self._f = h5py.File(self._tmp, "w")
                self._create_layout()
        except BaseException:
            self.abort()
            raise

    def _create_layout(self) -> None:
        f = self._f
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["units"] = json.dumps(UNITS)
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        for name, (dtype, shape) in ATOM_COLUMNS.items():
            f.create_dataset(name, shape=(0,) + shape, maxshape=(None,) + shape, dtype=dtype,
                             chunks=(ATOM_CHUNK,) + shape, **_compression())
        for name, (dtype, shape) in STRUCT_COLUMNS.items():
            n0 = 1 if name == "offsets" else 0
            f.create_dataset(name, shape=(n0,) + shape, maxshape=(None,) + shape, dtype=dtype,
                             chunks=(STRUCT_CHUNK,) + shape, **_compression())
        for name in STRING_COLUMNS:
            f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=_STR, chunks=(STRUCT_CHUNK,),
                             **_compression())

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

    def append_atoms(self, atoms, *, group: str = "", id: str = "", energy_key: str = "energy") -> int:
        return self.append(StructureRecord.from_atoms(atoms, group=group, id=id, energy_key=energy_key))

    def __len__(self) -> int:
        return self._n_structures + len(self._buf)

    def extra_attrs(self, **attrs) -> None:
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

        def put(name, start, stop, values):
            ds = f[name]
            ds.resize(stop, axis=0)
            ds[start:stop] = values

        put("positions", a0, a1, np.concatenate([r.positions for r in recs]))
        put("numbers", a0, a1, np.concatenate([r.numbers for r in recs]).astype(np.int16))
        put("forces", a0, a1, np.concatenate(
            [r.forces if r.forces is not None else np.full((r.n_atoms, 3), np.nan) for r in recs]))
        put("magmoms", a0, a1, np.concatenate(
            [r.magmoms if r.magmoms is not None else np.full(r.n_atoms, np.nan) for r in recs]))
        put("offsets", s0 + 1, s1 + 1, a0 + np.cumsum(n_new))
        put("cell", s0, s1, np.stack([r.cell for r in recs]))
        put("pbc", s0, s1, np.stack([r.pbc for r in recs]))
        nan = np.nan
        put("energy", s0, s1, np.array([nan if r.energy is None else r.energy for r in recs]))
        put("stress", s0, s1, np.stack([np.full(6, nan) if r.stress is None else r.stress for r in recs]))
        put("charge", s0, s1, np.array([nan if r.charge is None else r.charge for r in recs]))
        put("spin", s0, s1, np.array([nan if r.spin is None else r.spin for r in recs]))
        put("has_forces", s0, s1, np.array([r.forces is not None for r in recs]))
        put("has_magmoms", s0, s1, np.array([r.magmoms is not None for r in recs]))
        put("group", s0, s1, np.array([r.group for r in recs], dtype=object))
        put("id", s0, s1, np.array([r.id for r in recs], dtype=object))
        for r in recs:
            self._elements.update(np.unique(r.numbers).tolist())
        self._n_atoms, self._n_structures = a1, s1

    def _write_attrs(self) -> None:
        f = self._f
        json_keys = []
        meta = {**self._meta, **self._attrs}
        if self.mode == "a":  # keep the original metadata unless a new non-empty value was given
            old = _read_attrs(f)
            meta = {k: v for k, v in meta.items() if not (v in ("", None) and k in old)}
            meta.pop("command", None)  # the creation command stays; appends are in append_commands
            if old.get("name") and meta.get("name") == self.path.stem:
                meta.pop("name")
            json_keys = json.loads(f.attrs.get("_json_attrs", "[]"))
        for k, v in meta.items():
            if k in RESERVED_ATTRS:
                raise StoreError(f"attribute name {k!r} is reserved by the store format")
            enc, is_json = _encode_attr(v)
            f.attrs[k] = enc
            if is_json and k not in json_keys:
                json_keys.append(k)
        f.attrs["_json_attrs"] = json.dumps(json_keys)
        f.attrs["n_structures"] = self._n_structures
        f.attrs["n_atoms"] = self._n_atoms
        f.attrs["elements"] = json.dumps(sorted(self._elements))

    def close(self) -> None:
        """Flush, write metadata and move the file into place (atomic rename)."""
        if self._f is None:
            return
        try:
            self.flush()
            self._write_attrs()
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


# --------------------------------------------------------------------------------------------------------- reader
def _h5_problem(exc: BaseException) -> str:
    """What an h5py error says about a damaged file, in one line."""
    text = " ".join(str(exc).split())
    if "file signature not found" in text:
        return f"not an HDF5 file (empty, truncated at the start or another format; {text})"
    if "truncated file" in text:
        return f"truncated HDF5 file ({text})"
    return f"damaged or unreadable HDF5 file ({type(exc).__name__}: {text})"


class _Shard:
    """One store file, opened lazily (and re-opened after a fork, as h5py handles must not cross processes)."""

    def __init__(self, path: Path, in_memory: bool):
        self.path = path
        self._f = None
        self._pid = None
        self._ds: dict = {}
        self._strings: dict = {}
        try:
            self._read_header(path, in_memory)
        except StoreError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
            raise StoreError(f"{path}: {_h5_problem(exc)}") from exc
        self.n = len(self.offsets) - 1

    def _read_header(self, path: Path, in_memory: bool) -> None:
        with h5py.File(path, "r") as f:
            self.version = _check_header(f, path)
            self.attrs = _read_attrs(f)
            self.offsets = f["offsets"][:].astype(np.int64)
            missing = [c for c in (*ATOM_COLUMNS, *STRUCT_COLUMNS, *STRING_COLUMNS) if c not in f]
            if missing:
                raise StoreError(f"{path}: store is missing columns {missing}")
            n = len(self.offsets) - 1
            for c in STRUCT_COLUMNS:
                if c != "offsets" and f[c].shape[0] != n:
                    raise StoreError(f"{path}: column {c!r} has {f[c].shape[0]} rows for {n} structures")
            if self.offsets[-1] != f["numbers"].shape[0]:
                raise StoreError(f"{path}: offsets end at {self.offsets[-1]} but there are "
                                 f"{f['numbers'].shape[0]} atoms (truncated file?)")
            # per-structure columns are small: keep them in memory
            self.cols = {c: f[c][:] for c in STRUCT_COLUMNS if c != "offsets"}
            self.mem = {c: f[c][:] for c in ATOM_COLUMNS} if in_memory else None

    def h5(self) -> h5py.File:
        if self._f is None or self._pid != os.getpid():
            try:
                self._f = h5py.File(self.path, "r", rdcc_nbytes=16 * 1024 * 1024)
            except OSError as exc:
                raise StoreError(f"{self.path}: {_h5_problem(exc)}") from exc
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
            raise StoreError(f"{self.path}: column {name!r}: {_h5_problem(exc)}") from exc

    def full_column(self, name: str) -> np.ndarray:
        if self.mem is not None:
            return self.mem[name]
        try:
            return self.dataset(name)[:]
        except OSError as exc:
            raise StoreError(f"{self.path}: column {name!r}: {_h5_problem(exc)}") from exc

    def strings(self, name: str) -> np.ndarray:
        try:
            raw = self.dataset(name)[:]
        except OSError as exc:
            raise StoreError(f"{self.path}: column {name!r}: {_h5_problem(exc)}") from exc
        return np.array([s.decode() if isinstance(s, bytes) else s for s in raw], dtype=object)

    def string_column(self, name: str) -> np.ndarray:
        """The whole group/id column, read once (a single vlen string read costs a chunk decompression)."""
        col = self._strings.get(name)
        if col is None:
            col = self._strings[name] = self.strings(name)
        return col

    def close(self) -> None:
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f = None
        self._ds = {}


def _shard_paths(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".h5", ".hdf5") and not p.name.startswith("."))
        if not files:
            raise StoreError(f"{path}: folder contains no store shards (*.h5)")
        return files
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    return [path]


class Store:
    """Read-only random access to a store file or a folder of shard files (concatenated in name order).

    ``store[i]`` -> :class:`StructureRecord`; ``len(store)``; ``store.attrs``; ``store.to_atoms(i)``;
    ``store.elements`` (symbols); ``store.n_atoms`` (per-structure atom counts). ``in_memory=True`` loads the
    per-atom columns into RAM (fastest random access for stores that fit).
    """

    def __init__(self, path, *, in_memory: bool = False):
        self.path = Path(path)
        self._shards = [_Shard(p, in_memory) for p in _shard_paths(self.path)]
        self.attrs = dict(self._shards[0].attrs)
        for s in self._shards[1:]:
            if s.attrs.get("name") != self.attrs.get("name"):
                raise StoreError(f"{s.path}: shard of dataset {s.attrs.get('name')!r} in a store of "
                                 f"{self.attrs.get('name')!r}")
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
        return (f"Store({str(self.path)!r}, name={self.attrs.get('name')!r}, n_structures={self._len}, "
                f"n_atoms={int(self._n_atoms.sum())})")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for s in self._shards:
            s.close()

    def __getstate__(self):  # picklable for DataLoader workers: h5py handles are dropped and re-opened lazily
        state = self.__dict__.copy()
        state["_shards"] = [copy.copy(s) for s in self._shards]
        for s in state["_shards"]:
            s._f, s._pid, s._ds = None, None, {}
        return state

    def _locate(self, i: int) -> tuple[_Shard, int]:
        i = int(i)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"structure index {i} out of range for a store of {self._len}")
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        return self._shards[k], i - int(self._starts[k])

    def __getitem__(self, i) -> StructureRecord:
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
            group=self._string(sh, "group", j),
            id=self._string(sh, "id", j),
        )

    def labels_and_structure(self, i: int) -> dict:
        """The arrays a graph needs (no strings, no validation): the fast path used by :class:`GraphDataset`."""
        sh, j = self._locate(i)
        a, b = int(sh.offsets[j]), int(sh.offsets[j + 1])
        c = sh.cols
        e = c["energy"][j]
        st = c["stress"][j]
        return dict(
            positions=sh.atom_column("positions", a, b),
            numbers=sh.atom_column("numbers", a, b).astype(np.int64),
            cell=c["cell"][j],
            pbc=c["pbc"][j],
            energy=None if np.isnan(e) else float(e),
            forces=sh.atom_column("forces", a, b) if c["has_forces"][j] else None,
            stress=None if np.isnan(st).any() else st,
        )

    @staticmethod
    def _string(sh: _Shard, name: str, j: int) -> str:
        return sh.string_column(name)[j]

    def __iter__(self):
        for i in range(self._len):
            yield self[i]

    def to_atoms(self, i: int):
        """``ase.Atoms`` of structure ``i`` with a SinglePointCalculator holding its labels."""
        return self[i].to_atoms()

    # -- whole-column views (cheap: per-structure columns are in memory)
    def _cat(self, name: str) -> np.ndarray:
        return np.concatenate([s.cols[name] for s in self._shards])

    @property
    def n_atoms(self) -> np.ndarray:
        """Atoms per structure, int64 [S]."""
        return self._n_atoms

    @property
    def energies(self) -> np.ndarray:
        """Total energies [S] in eV, NaN where missing."""
        return self._cat("energy")

    @property
    def stresses(self) -> np.ndarray:
        return self._cat("stress")

    @property
    def cells(self) -> np.ndarray:
        return self._cat("cell")

    @property
    def pbcs(self) -> np.ndarray:
        return self._cat("pbc")

    @property
    def groups(self) -> np.ndarray:
        """Group tag of every structure (object array of str)."""
        if self._groups is None:
            self._groups = np.concatenate([s.string_column("group") for s in self._shards])
        return self._groups

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate([s.string_column("id") for s in self._shards])

    def numbers_all(self) -> np.ndarray:
        """Concatenated atomic numbers of all structures (int64 [N])."""
        return np.concatenate([s.full_column("numbers") for s in self._shards]).astype(np.int64)

    def forces_all(self) -> np.ndarray:
        """Concatenated forces [N, 3] (NaN rows for structures without forces)."""
        return np.concatenate([s.full_column("forces") for s in self._shards])

    def composition(self, indices: Sequence[int] | None = None, elements: Sequence[int] | None = None):
        """Element counts: returns (atomic numbers [K], counts [len(indices), K])."""
        nums = self.numbers_all()
        struct_of_atom = np.repeat(np.arange(self._len), self._n_atoms)
        zs = np.unique(nums) if elements is None else np.asarray(elements, dtype=np.int64)
        col = np.searchsorted(zs, nums)
        ok = (col < len(zs)) & (zs[np.minimum(col, len(zs) - 1)] == nums)
        counts = np.zeros((self._len, len(zs)), dtype=np.int64)
        np.add.at(counts, (struct_of_atom[ok], col[ok]), 1)
        if indices is not None:
            counts = counts[np.asarray(indices, dtype=np.int64)]
        return zs, counts

    @property
    def atomic_numbers(self) -> list[int]:
        zs: set[int] = set()
        for s in self._shards:
            zs.update(int(z) for z in s.attrs.get("elements", []))
        return sorted(zs)

    @property
    def elements(self) -> list[str]:
        """Chemical symbols present in the store, by atomic number."""
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.atomic_numbers]

    def label_counts(self) -> dict[str, int]:
        """How many structures carry each label."""
        return {
            "energy": int(np.isfinite(self._cat("energy")).sum()),
            "forces": int(self._cat("has_forces").sum()),
            "stress": int(np.isfinite(self._cat("stress")).all(axis=1).sum()),
            "charge": int(np.isfinite(self._cat("charge")).sum()),
            "spin": int(np.isfinite(self._cat("spin")).sum()),
            "magmoms": int(self._cat("has_magmoms").sum()),
        }


def read_store_attrs(path) -> dict:
    """The metadata of a store without opening its columns."""
    p = _shard_paths(Path(path))[0]
    try:
        with h5py.File(p, "r") as f:
            _check_header(f, p)
            return _read_attrs(f)
    except StoreError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise StoreError(f"{p}: {_h5_problem(exc)}") from exc


__all__ = ["FORMAT", "SCHEMA_VERSION", "Store", "StoreError", "StoreWriter", "UNITS", "RecordError",
           "read_store_attrs"]
