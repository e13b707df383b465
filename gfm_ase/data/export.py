"""Write labelled structures (and, optionally, a model's predictions beside them) to files other tools read:
extended XYZ and ASE databases.

Everything is in ASE units and conventions (eV, A, eV/A, stress eV/A^3 Voigt xx yy zz yz xz xy, tension positive).
Labels keep their standard names, predictions get a prefix (default ``gfm_``) so the two are never confused:

===========  ===================================================  =====================================================
format       labels                                               predictions (prefix ``gfm_``)
===========  ===================================================  =====================================================
extxyz       plain ``info``/``arrays`` keys ``energy``,           ``info['gfm_energy']``, ``arrays['gfm_forces']``,
             ``forces``, ``stress``, ``magmoms`` (ASE reads them  ``info['gfm_stress']`` (Voigt-6); ASE leaves them as
             back as the frame's SinglePointCalculator)           plain keys
ASE db       the row's calculator columns ``energy``, ``forces``,  key ``gfm_energy``; ``data['gfm_forces']``,
             ``stress``, ``magmoms``                               ``data['gfm_stress']``
===========  ===================================================  =====================================================

Further keys of the source frame (``extras``: ``config_type``, labels under other names such as ``REF_energy``, ...)
are kept as they are (db: in ``data``). ``charge``, ``spin`` and ``group`` are ``info`` keys (db: ``spin`` and
``group`` key-value pairs, ``data['charge']`` as ase.db overwrites a ``charge`` key with the sum of the initial
charges); the record ``id`` is ``info['id']`` (db: ``data['id']``, ``id`` being the row number there).
``gfm data convert`` reads all of them back (a record without a group gets the file's stem, as in any conversion).

A target that exists is an error unless ``overwrite``; the file is written under a temporary name beside the target
and renamed only when complete (an interrupted export leaves no partial file). The format comes from the target's
suffix (:data:`SINKS`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from gfm_ase.data.record import StructureRecord
from gfm_ase.fileio import publish

if TYPE_CHECKING:
    from ase import Atoms

    from gfm_ase.data.store import Store

PREDICTED = ("energy", "forces", "stress")  # what a prediction may hold (ASE units)
LABEL_KEYS = ("energy", "forces", "stress", "magmoms", "free_energy", "charge", "spin", "group", "id")


class ExportError(ValueError):
    """An export target that cannot be written (exists, unknown suffix, bad prefix)."""


def check_prefix(prefix: str) -> str:
    """A prediction prefix that cannot collide with the label keys (non-empty, no separators)."""
    if not prefix or any(c.isspace() or c in "=\"'/" for c in prefix):
        raise ExportError(f"prediction prefix {prefix!r} must be non-empty, without spaces, quotes, '=' or '/'")
    if any(f"{prefix}{k}" in LABEL_KEYS for k in PREDICTED):
        raise ExportError(f"prediction prefix {prefix!r} would overwrite a label key")
    return prefix


def _base_atoms(rec: StructureRecord) -> Atoms:
    from ase import Atoms

    atoms = Atoms(numbers=rec.numbers, positions=rec.positions, cell=rec.cell, pbc=rec.pbc)
    for name in ("charge", "spin"):
        if getattr(rec, name) is not None:
            atoms.info[name] = float(getattr(rec, name))
    if rec.group:
        atoms.info["group"] = rec.group
    return atoms


def _check_prediction(rec: StructureRecord, pred: dict) -> None:
    unknown = sorted(set(pred) - set(PREDICTED))
    if unknown:
        raise ExportError(f"unknown predicted quantities {unknown}; known: {', '.join(PREDICTED)}")
    if "forces" in pred and np.shape(pred["forces"]) != (rec.n_atoms, 3):
        raise ExportError(
            f"{rec.id or 'structure'}: predicted forces of shape {np.shape(pred['forces'])} for {rec.n_atoms} atoms"
        )
    if "stress" in pred and np.shape(pred["stress"]) != (6,):
        raise ExportError(f"{rec.id or 'structure'}: predicted stress must be Voigt-6, got {np.shape(pred['stress'])}")


class ExtxyzSink:
    """Frames appended to an extended XYZ file (labels and predictions as plain keys)."""

    suffixes = (".extxyz", ".xyz")

    def __init__(self, tmp: Path) -> None:
        self._fh = open(tmp, "w")

    @staticmethod
    def frame(
        rec: StructureRecord, pred: dict | None = None, prefix: str = "gfm_", extras: dict | None = None
    ) -> Atoms:
        atoms = _base_atoms(rec)
        for k, v in (extras or {}).get("info", {}).items():
            atoms.info.setdefault(k, v)
        for k, v in (extras or {}).get("arrays", {}).items():
            if k not in atoms.arrays:
                atoms.arrays[k] = np.asarray(v)
        if rec.energy is not None:
            atoms.info["energy"] = float(rec.energy)
        if rec.stress is not None:
            atoms.info["stress"] = np.asarray(rec.stress, dtype=np.float64)
        if rec.forces is not None:
            atoms.arrays["forces"] = np.asarray(rec.forces, dtype=np.float64)
        if rec.magmoms is not None:
            atoms.arrays["magmoms"] = np.asarray(rec.magmoms, dtype=np.float64)
        if rec.id:
            atoms.info["id"] = rec.id
        for k, v in (pred or {}).items():
            if k == "forces":
                atoms.arrays[prefix + k] = np.asarray(v, dtype=np.float64)
            else:
                atoms.info[prefix + k] = float(v) if k == "energy" else np.asarray(v, dtype=np.float64)
        return atoms

    def write(
        self, rec: StructureRecord, pred: dict | None = None, prefix: str = "gfm_", extras: dict | None = None
    ) -> None:
        from ase.io import write

        write(self._fh, self.frame(rec, pred, prefix, extras), format="extxyz")

    def close(self) -> None:
        self._fh.close()


class AseDbSink:
    """Rows of an ASE sqlite database (labels as the row's calculator, predictions as keys and data)."""

    suffixes = (".db",)

    def __init__(self, tmp: Path) -> None:
        import ase.db

        self._db = ase.db.connect(str(tmp), type="db", append=False)
        self._rows: list = []

    def write(
        self, rec: StructureRecord, pred: dict | None = None, prefix: str = "gfm_", extras: dict | None = None
    ) -> None:
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = _base_atoms(rec)
        kvp = {k: atoms.info.pop(k) for k in ("spin", "group") if k in atoms.info}
        results: dict[str, Any] = {}
        if rec.energy is not None:
            results["energy"] = results["free_energy"] = float(rec.energy)
        for name in ("forces", "stress", "magmoms"):
            if getattr(rec, name) is not None:
                results[name] = np.asarray(getattr(rec, name), dtype=np.float64)
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        data = {k: v for part in ("info", "arrays") for k, v in (extras or {}).get(part, {}).items()}
        if rec.id:
            data["id"] = rec.id
        if "charge" in atoms.info:  # ase.db replaces a 'charge' key by the sum of the initial charges
            data["charge"] = atoms.info.pop("charge")
        for k, v in (pred or {}).items():
            if k == "energy":
                kvp[prefix + k] = float(v)
            else:
                data[prefix + k] = np.asarray(v, dtype=np.float64)
        self._rows.append((atoms, kvp, data))
        if len(self._rows) >= 256:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            with self._db:  # one transaction per block of rows
                for atoms, kvp, data in self._rows:
                    self._db.write(atoms, key_value_pairs=kvp, data=data)
            self._rows = []

    def close(self) -> None:
        self._flush()


class Sink(Protocol):
    """What an export format provides (built with the temporary path it writes to)."""

    def write(
        self, rec: StructureRecord, pred: dict | None = None, prefix: str = "gfm_", extras: dict | None = None
    ) -> None: ...

    def close(self) -> None: ...


# target suffix -> sink class; a new format is one class with ``suffixes``, ``write`` and ``close`` and one row here
SINKS: dict[str, Callable[[Path], Sink]] = {s: cls for cls in (ExtxyzSink, AseDbSink) for s in cls.suffixes}


def check_target(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The export target, checked before anything is read or evaluated: a known suffix, not an existing file
    (unless ``overwrite``), a folder that exists."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SINKS:
        raise ExportError(
            f"{path}: unknown export format {suffix or '(no suffix)'!r}; known: {', '.join(sorted(SINKS))}"
        )
    if path.is_dir():
        raise ExportError(f"{path} is a folder, not a file")
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ExportError(f"{path}: folder {path.parent} does not exist")
    return path


class ExportWriter:
    """Write records (and predictions) to ``path`` atomically.

    >>> with ExportWriter("out.extxyz") as w:
    ...     w.write(record, {"energy": e, "forces": f}, prefix="gfm_")

    On an exception inside the ``with`` block the temporary file is removed and ``path`` is left as it was.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False, prefix: str = "gfm_") -> None:
        self.path = check_target(path, overwrite)
        self.prefix = check_prefix(prefix)
        self.overwrite = overwrite
        self.n = 0
        self._tmp: Path | None = None
        self._sink: Sink | None = None

    def __enter__(self) -> "ExportWriter":
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=self.path.suffix)
        os.close(fd)
        os.unlink(tmp)  # the sink creates it (sqlite wants to create its own file)
        self._tmp = Path(tmp)
        try:
            self._sink = SINKS[self.path.suffix.lower()](self._tmp)
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, rec: StructureRecord, pred: dict | None = None, extras: dict | None = None) -> None:
        """One structure: its labels, the predictions ``pred`` (PREDICTED keys, ASE units) under the prefix, and
        ``extras`` ({"info": ..., "arrays": ...}: further keys of the source frame, kept as they are; db: ``data``)."""
        if pred:
            _check_prediction(rec, pred)
        if self._sink is None:
            raise RuntimeError("ExportWriter.write outside its with block")
        self._sink.write(rec, pred, self.prefix, extras)
        self.n += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._sink is not None and self._tmp is not None  # set by __enter__
        try:
            self._sink.close()
        except BaseException:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return
        if self.path.exists() and not self.overwrite:  # appeared while we were writing: never replaced silently
            self._discard()
            raise ExportError(f"{self.path} appeared while it was being written; pass --overwrite to replace it")
        publish(self._tmp, self.path)

    def _discard(self) -> None:
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()


def export_records(records: Iterable[StructureRecord], out: str | os.PathLike[str], *, overwrite: bool = False) -> int:
    """Write ``records`` (labels only) to ``out``; returns how many."""
    with ExportWriter(out, overwrite=overwrite) as w:
        for rec in records:
            w.write(rec)
    return w.n


def export_store(
    store: Store | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    indices: Sequence[int] | None = None,
) -> int:
    """Every label of the structures of a gfm-ase store (path or :class:`~gfm_ase.data.store.Store`) to ``out``:
    all of them, or those at ``indices`` (store positions, written in that order; e.g. one part of a split).

    The target is checked before the store is opened; an index outside the store is an error before anything is
    written."""
    from gfm_ase.data.store import Store

    check_target(out, overwrite)
    store = store if isinstance(store, Store) else Store(store)
    if len(store) == 0:
        raise ExportError(f"{store.path} holds no structures")
    if indices is None:
        return export_records(iter(store), out, overwrite=overwrite)
    picked = [int(i) for i in indices]
    bad = [i for i in picked if not 0 <= i < len(store)]
    if bad:
        raise ExportError(f"{store.path} holds {len(store)} structures; index {bad[0]} is outside it")
    if not picked:
        raise ExportError(f"no structures selected from {store.path}")
    return export_records((store[i] for i in picked), out, overwrite=overwrite)


def read_split_part(path: str | os.PathLike[str], part: str, n_structures: int) -> list[int]:
    """The indices of ``part`` ("train", "val" or "test") in a split file of ``gfm data split``, checked against the
    store it is applied to (``n_structures``): a split made for another store is an error, never a silent subset."""
    import json

    from gfm_ase.data.splits import SPLIT_NAMES

    if part not in SPLIT_NAMES:
        raise ExportError(f"unknown split part {part!r}; known: {', '.join(SPLIT_NAMES)}")
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: cannot read the split file ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get(part), list):
        raise ExportError(f"{path}: not a split file of `gfm data split` (no {part!r} index list)")
    if doc.get("n_structures") != n_structures:
        raise ExportError(
            f"{path} splits a store of {doc.get('n_structures')} structures; this store holds {n_structures}"
        )
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in doc[part]):
        raise ExportError(f"{path}: the {part!r} list holds something other than integer indices")
    return list(doc[part])


__all__ = [
    "ExportError",
    "ExportWriter",
    "SINKS",
    "PREDICTED",
    "check_prefix",
    "check_target",
    "export_records",
    "export_store",
    "read_split_part",
]
