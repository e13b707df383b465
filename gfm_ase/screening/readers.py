"""Input readers for screening: extxyz/xyz files, ASE databases, HDF5 stores, CIF/POSCAR files and folders of them.

Every input is cut into *units*: one frame of an extxyz file, one row of an ASE database or store, or one whole
structure file (a CIF may hold several blocks). Units are numbered across all inputs in command-line order; the
unit number is what distributed ranks shard on and what resume checks for completeness. Each structure gets an
``id`` = input name + ``:`` + index within the file (``train.xyz:17``, ``cifs/mp-149.cif:0``), stable across runs.

Units are enumerated lazily and cheaply (extxyz frames by scanning line counts, database ids, store length,
directory listings); a structure is parsed only when its unit is evaluated, so skipping work that is done
(resume) or belongs to another rank costs almost nothing.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, cast

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms

    from gfm_ase.data import Store

EXTXYZ_SUFFIXES = (".xyz", ".extxyz")
DB_SUFFIXES = (".db", ".json")
STORE_SUFFIXES = (".h5", ".hdf5")
STRUCTURE_PATTERNS = ("*.cif", "*.mcif", "POSCAR*", "CONTCAR*", "*.vasp", "*.poscar")


class InputError(ValueError):
    """An input that cannot be used at all (missing file, unknown format)."""


@dataclass
class InputStructure:
    """One structure to evaluate (arrays in ASE units) with its id and, where the input has one, a stored energy.

    Not a :class:`gfm_ase.data.record.StructureRecord`: a record validates itself when it is built and raises,
    while screening turns each bad structure (no atoms, invalid atomic numbers) into an error row of its own,
    also inside a unit that holds several structures; nor the converters' lazy ``Item`` (a record to build, with
    its source location).
    """

    id: str
    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: float | None = None

    @classmethod
    def from_atoms(cls, id: str, atoms: Atoms, with_energy: bool = True) -> "InputStructure":
        energy = None
        if with_energy and atoms.calc is not None:
            try:
                energy = atoms.calc.results.get("energy")
            except AttributeError:
                energy = None
        return cls(
            id=id,
            positions=np.asarray(atoms.positions, dtype=np.float64),
            numbers=np.asarray(atoms.numbers, dtype=np.int64),
            cell=np.asarray(atoms.cell.array, dtype=np.float64),
            pbc=np.asarray(atoms.pbc, dtype=bool),
            energy=None if energy is None else float(energy),
        )


@dataclass
class Unit:
    """A piece of input evaluated as a whole: its structures' ids when known up front, and a loader.

    ``load()`` returns the items; it may raise, in which case the unit becomes one error row with id ``error_id``.
    """

    index: int  # global unit number (over all inputs)
    ids: tuple[str, ...] | None
    error_id: str
    load: Callable[[], list[InputStructure]]


class Source:
    """One input (file or folder). ``units(start)`` yields its units numbered from ``start``."""

    label: str

    def units(self, start: int) -> Iterator[Unit]:  # pragma: no cover - interface
        raise NotImplementedError


# --- extxyz -------------------------------------------------------------------------------------------------------


def _read_extxyz_frame(text: str) -> Atoms:
    from ase.io import read

    return cast("Atoms", read(io.StringIO(text), format="extxyz", index=0))


class ExtxyzSource(Source):
    """An (ext)xyz file: one unit per frame, found by scanning atom-count lines without parsing the frames."""

    def __init__(self, path: Path, label: str):
        self.path = path
        self.label = label

    def frames(self) -> Iterator[tuple[int, int, int]]:
        """(frame index, byte offset, byte length), raising :class:`InputError` at a malformed count line."""
        with open(self.path, "rb") as f:
            k = 0
            line_no = 0
            while True:
                start = f.tell()
                line = f.readline()
                line_no += 1
                if not line:
                    return
                if not line.strip():
                    continue  # trailing blank lines
                try:
                    n = int(line.split()[0])
                    if n < 0:
                        raise ValueError
                except ValueError:
                    raise InputError(
                        f"{self.path}: line {line_no} should hold the atom count of frame {k}, found {line[:60]!r}"
                    ) from None
                for _ in range(n + 1):
                    if not f.readline():
                        raise InputError(f"{self.path}: frame {k} (line {line_no}) is truncated")
                line_no += n + 1
                yield k, start, f.tell() - start
                k += 1

    def units(self, start: int) -> Iterator[Unit]:
        n_ok = 0
        try:
            for k, offset, length in self.frames():
                id_ = f"{self.label}:{k}"
                yield Unit(start + k, (id_,), id_, self._loader(id_, offset, length))
                n_ok = k + 1
        except InputError as exc:
            # the rest of the file cannot be split into frames: one error row (id of the broken frame) stands for it
            msg = str(exc) + "; the rest of the file is not read"
            id_ = f"{self.label}:{n_ok}"

            def fail() -> list[InputStructure]:
                raise InputError(msg)

            yield Unit(start + n_ok, (id_,), id_, fail)

    def _loader(self, id_: str, offset: int, length: int) -> Callable[[], list[InputStructure]]:
        def load() -> list[InputStructure]:
            with open(self.path, "rb") as f:
                f.seek(offset)
                text = f.read(length).decode()
            return [InputStructure.from_atoms(id_, _read_extxyz_frame(text))]

        return load


# --- ASE database ---------------------------------------------------------------------------------------------------


class AseDbSource(Source):
    """An ASE database (.db sqlite or .json): one unit per row, in row-id order; index = position in that order."""

    def __init__(self, path: Path, label: str):
        self.path = path
        self.label = label
        self._local = threading.local()  # one connection per reading thread

    def _db(self) -> Any:
        import ase.db

        db = getattr(self._local, "db", None)
        if db is None:
            db = ase.db.connect(str(self.path), type="json" if self.path.suffix == ".json" else "db")
            self._local.db = db
        return db

    def units(self, start: int) -> Iterator[Unit]:
        try:
            row_ids = sorted(row.id for row in self._db().select(include_data=False))
        except Exception as exc:
            raise InputError(f"{self.path}: cannot read it as an ASE database ({type(exc).__name__}: {exc})") from exc
        for k, row_id in enumerate(row_ids):
            id_ = f"{self.label}:{k}"
            yield Unit(start + k, (id_,), id_, self._loader(id_, row_id))

    def _loader(self, id_: str, row_id: int) -> Callable[[], list[InputStructure]]:
        def load() -> list[InputStructure]:
            return [InputStructure.from_atoms(id_, self._db().get(id=row_id).toatoms())]

        return load


# --- HDF5 store -----------------------------------------------------------------------------------------------------


class StoreSource(Source):
    """A gfm-ase HDF5 store or folder of store shards (:class:`gfm_ase.data.Store`): one unit per record."""

    def __init__(self, path: Path, label: str):
        self.path = path
        self.label = label
        self._store: Store | None = None

    def _open(self) -> Store:
        if self._store is None:
            try:
                from gfm_ase.data import Store
            except ImportError as exc:  # pragma: no cover - the data package is part of gfm-ase
                raise InputError(f"{self.path}: reading HDF5 stores needs gfm_ase.data ({exc})") from exc
            self._store = Store(self.path)
        return self._store

    def units(self, start: int) -> Iterator[Unit]:
        try:
            n = len(self._open())
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{self.path}: cannot open the store ({type(exc).__name__}: {exc})") from exc
        for k in range(n):
            id_ = f"{self.label}:{k}"
            yield Unit(start + k, (id_,), id_, self._loader(id_, k))

    def _loader(self, id_: str, k: int) -> Callable[[], list[InputStructure]]:
        def load() -> list[InputStructure]:
            r = self._open()[k]
            return [
                InputStructure(
                    id=id_,
                    positions=np.asarray(r.positions, dtype=np.float64).reshape(-1, 3),
                    numbers=np.asarray(r.numbers, dtype=np.int64).reshape(-1),
                    cell=np.asarray(r.cell, dtype=np.float64).reshape(3, 3),
                    pbc=np.asarray(r.pbc, dtype=bool).reshape(3),
                    energy=None if r.energy is None else float(r.energy),
                )
            ]

        return load


# --- single structure files and folders -----------------------------------------------------------------------------


def _ase_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".cif", ".mcif")):
        return "cif"
    if name.startswith(("poscar", "contcar")) or name.endswith((".vasp", ".poscar")):
        return "vasp"
    return None  # let ASE guess


class FileSource(Source):
    """Any ASE-readable structure file (CIF, POSCAR, ...): one unit holding all structures of the file."""

    def __init__(self, path: Path, label: str):
        self.path = path
        self.label = label

    def units(self, start: int) -> Iterator[Unit]:
        yield Unit(start, None, f"{self.label}:0", self.load)

    def load(self) -> list[InputStructure]:
        from ase.io import read

        images = read(str(self.path), index=":", format=_ase_format(self.path))
        if not images:
            raise InputError(f"{self.path} holds no structure")
        return [InputStructure.from_atoms(f"{self.label}:{k}", a) for k, a in enumerate(images)]


class FolderSource(Source):
    """A folder searched recursively for CIF and POSCAR-like files (sorted by relative path)."""

    def __init__(self, path: Path, label: str, patterns: Sequence[str] = STRUCTURE_PATTERNS):
        self.path = path
        self.label = label
        self.patterns = tuple(patterns)

    def files(self) -> list[Path]:
        found: set[Path] = set()
        for pat in self.patterns:
            found.update(p for p in self.path.rglob(pat) if p.is_file())
        return sorted(found, key=lambda p: p.relative_to(self.path).as_posix())

    def units(self, start: int) -> Iterator[Unit]:
        for k, p in enumerate(self.files()):
            src = FileSource(p, f"{self.label}/{p.relative_to(self.path).as_posix()}")
            yield from src.units(start + k)


# --- dispatch ---------------------------------------------------------------------------------------------------------

STORE_FORMAT = "gfm-ase-store"


def _is_store(path: Path) -> bool:
    """A gfm-ase store file, or a folder of store shards."""
    import h5py

    if path.is_dir():
        shards = sorted(p for p in path.iterdir() if p.suffix in STORE_SUFFIXES and not p.name.startswith("."))
        return bool(shards) and _is_store(shards[0])
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == STORE_FORMAT
    except OSError:
        return False


def open_source(path: str | os.PathLike, label: str | None = None) -> Source:
    """Pick the reader for ``path`` from its type and suffix."""
    p = Path(path)
    label = label or p.name
    if p.is_dir():
        return StoreSource(p, label) if _is_store(p) else FolderSource(p, label)
    if not p.exists():
        raise InputError(f"input {str(path)!r} does not exist")
    suffix = p.suffix.lower()
    if suffix in EXTXYZ_SUFFIXES:
        return ExtxyzSource(p, label)
    if suffix in DB_SUFFIXES:
        return AseDbSource(p, label)
    if suffix in STORE_SUFFIXES:
        if not _is_store(p):
            raise InputError(f"{p} is not a gfm-ase store (HDF5 inputs must be stores written by gfm_ase.data)")
        return StoreSource(p, label)
    return FileSource(p, label)


def _labels(paths: Sequence[str]) -> list[str]:
    """Input names used in ids: the file name, or the path as given where two inputs share a file name."""
    names = [Path(p).name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    given = [Path(p).as_posix() for p in paths]
    if len(set(given)) != len(given):
        raise InputError(f"the same input is given twice: {sorted(p for p in given if given.count(p) > 1)}")
    return given


def open_sources(paths: Sequence[str | os.PathLike]) -> list[Source]:
    if not paths:
        raise InputError("no input given")
    labels = _labels([str(p) for p in paths])
    return [open_source(p, label) for p, label in zip(paths, labels)]


def iter_units(sources: Sequence[Source]) -> Iterator[Unit]:
    """All units of all sources, numbered consecutively."""
    start = 0
    for src in sources:
        last = start - 1
        for unit in src.units(start):
            last = unit.index
            yield unit
        start = last + 1


def count_units(sources: Sequence[Source]) -> int:
    n = 0
    for _ in iter_units(sources):
        n += 1
    return n


__all__ = [
    "InputStructure",
    "Unit",
    "Source",
    "InputError",
    "ExtxyzSource",
    "AseDbSource",
    "StoreSource",
    "FileSource",
    "FolderSource",
    "open_source",
    "open_sources",
    "iter_units",
    "count_units",
]
