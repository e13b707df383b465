"""Labelled structures from any input a command is given: gfm-ase stores (file or folder of shards) and everything
the converters read (extxyz, ASE trajectories and databases, vasprun.xml, OUTCAR, mlearn/FitSNAP JSON, deepmd,
phonopy, MPtrj, ASE-LMDB, ANI HDF5, ...), as :class:`~gfm_ase.data.record.StructureRecord` in ASE units.

Stores are read as they are (their ids kept); every other input goes through
:func:`gfm_ase.data.converters.iter_records` with the given format and converter options, so units and signs are
converted exactly as ``gfm data convert`` would. Labels the sources hold that are not converted are counted in the
returned :class:`~gfm_ase.data.converters.base.SkipReport` (never dropped silently).

:func:`iter_input_frames` also hands over, for files ASE reads (extxyz, trajectories, ...; not databases), every
``info`` / ``arrays`` key and calculator result of the frame that the record does not hold (``config_type``,
``REF_energy``, per-atom ``energies``, ...), so that a command writing the structures again can keep them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import h5py
import numpy as np

from gfm_ase.data.converters import iter_records
from gfm_ase.data.converters.base import ConversionError, SkipReport
from gfm_ase.data.record import StructureRecord
from gfm_ase.data.store import FORMAT as STORE_FORMAT
from gfm_ase.data.store import Store

if TYPE_CHECKING:
    from ase import Atoms

STORE_SUFFIXES = (".h5", ".hdf5")


def is_store(path: str | os.PathLike[str]) -> bool:
    """A gfm-ase store file, or a folder whose first shard (by name) is one."""
    path = Path(path)
    if path.is_dir():
        shards = sorted(p for p in path.iterdir() if p.suffix in STORE_SUFFIXES and not p.name.startswith("."))
        return bool(shards) and is_store(shards[0])
    if path.suffix.lower() not in STORE_SUFFIXES:
        return False
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except OSError:
        return False
    return (fmt.decode() if isinstance(fmt, bytes) else fmt) == STORE_FORMAT


# keys a record holds (or that describe the structure itself): never carried as extras
RECORD_INFO_KEYS = frozenset({"energy", "free_energy", "stress", "charge", "spin", "group", "id"})
RECORD_ARRAY_KEYS = frozenset({"numbers", "positions", "forces", "magmoms"})
RECORD_RESULTS = frozenset({"energy", "forces", "stress", "magmoms"})


def frame_extras(atoms: Atoms, energy_key: str = "energy") -> dict:
    """``{"info": {...}, "arrays": {...}}``: what a frame holds beyond its record's fields (per-atom calculator
    results go to ``arrays``, the others to ``info``; e.g. a ``free_energy`` that is not the record's energy)."""
    info = {k: v for k, v in atoms.info.items() if k not in RECORD_INFO_KEYS}
    arrays = {k: v for k, v in atoms.arrays.items() if k not in RECORD_ARRAY_KEYS}
    results = atoms.calc.results if atoms.calc is not None else {}
    for k, v in results.items():
        if k in RECORD_RESULTS or k == energy_key or v is None:
            continue
        v = np.asarray(v)
        if v.ndim >= 1 and len(v) == len(atoms):
            arrays.setdefault(k, v)
        else:
            info.setdefault(k, v)
    return {"info": info, "arrays": arrays}


def _ase_frames(path: Path, fmt: str, options: dict) -> Iterator[Atoms] | None:
    """ASE's frames of ``path`` (streamed) when the converters read it with ASE and it is not a database."""
    from gfm_ase.data.converters import detect_format
    from gfm_ase.data.converters.ase_formats import ase_format_for

    if path.is_dir() or path.suffix.lower() == ".db" or (fmt if fmt != "auto" else detect_format(path)) != "ase":
        return None
    import ase.io

    return ase.io.iread(
        str(path), index=options.get("index", ":"), format=options.get("format") or ase_format_for(path)
    )


def iter_input_frames(
    paths: Sequence, fmt: str = "auto", *, options: dict | None = None, report: SkipReport | None = None
) -> Iterator[tuple[StructureRecord, dict]]:
    """(record, extras) for every structure of ``paths``, in order; extras as :func:`frame_extras` (empty for
    inputs not read by ASE). Raises :class:`ConversionError` (naming file and record) for bad input, an input that
    does not exist, and inputs that hold no structure at all."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConversionError("(no input)", None, "no input files given")
    report = report if report is not None else SkipReport()
    n = 0
    for path in paths:
        if not path.exists():
            raise ConversionError(path, None, "no such file or folder")
        if is_store(path):
            if fmt != "auto" or options:
                raise ConversionError(
                    path,
                    None,
                    "a gfm-ase store is read as it is: --format and --option apply to the files the converters read",
                )
            store = Store(path)
            report.formats.add("store")
            report.n_files += 1
            for rec in store:
                report.count(rec)
                n += 1
                yield rec, {}
            continue
        records = iter_records([path], fmt, report=report, options=options)
        frames = None
        while True:
            with warnings.catch_warnings():  # unconverted labels are counted in ``report``; the caller says so once
                warnings.filterwarnings("ignore", message="labels present in the source files were not converted")
                got = next(records, None)
            if got is None:
                break
            rec = got
            if frames is None:  # the converter has checked the file: now the frames ASE sees, in the same order
                frames = _ase_frames(path, fmt, options or {}) or iter(())
            atoms = next(frames, None)
            if atoms is not None and not (
                np.array_equal(atoms.numbers, rec.numbers) and np.allclose(atoms.positions, rec.positions)
            ):
                raise ConversionError(path, rec.id, "the frames ASE reads do not line up with the converted records")
            n += 1
            yield rec, (frame_extras(atoms, (options or {}).get("energy_key", "energy")) if atoms is not None else {})
    if n == 0:
        raise ConversionError(", ".join(str(p) for p in paths), None, "no structures found")


def iter_input_records(
    paths: Sequence, fmt: str = "auto", *, options: dict | None = None, report: SkipReport | None = None
) -> Iterator[StructureRecord]:
    """The records of :func:`iter_input_frames`."""
    for rec, _ in iter_input_frames(paths, fmt, options=options, report=report):
        yield rec


__all__ = ["frame_extras", "is_store", "iter_input_frames", "iter_input_records"]
