"""Labelled structures from any input a command is given: gfm-ase stores (file or folder of shards) and everything
the converters read (extxyz, ASE trajectories and databases, vasprun.xml, OUTCAR, mlearn/FitSNAP JSON, deepmd,
phonopy, MPtrj, ASE-LMDB, ANI HDF5, ...), as :class:`~gfm_ase.data.record.StructureRecord` in ASE units.

Stores are read as they are (their ids kept); every other input goes through
:func:`gfm_ase.data.converters.iter_records` with the given format and converter options, so units and signs are
converted exactly as ``gfm data convert`` would. Labels the sources hold that are not converted are counted in the
returned :class:`~gfm_ase.data.converters.base.SkipReport` (never dropped silently).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator, Sequence

import h5py

from gfm_ase.data.converters import iter_records
from gfm_ase.data.converters.base import ConversionError, SkipReport
from gfm_ase.data.record import StructureRecord
from gfm_ase.data.store import FORMAT as STORE_FORMAT
from gfm_ase.data.store import Store

STORE_SUFFIXES = (".h5", ".hdf5")


def is_store(path) -> bool:
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


def iter_input_records(paths: Sequence, fmt: str = "auto", *, options: dict | None = None,
                       report: SkipReport | None = None) -> Iterator[StructureRecord]:
    """Every structure of ``paths`` in order. Raises :class:`ConversionError` (naming file and record) for bad input,
    an input that does not exist, and inputs that hold no structure at all."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConversionError("(no input)", None, "no input files given")
    report = report if report is not None else SkipReport()
    n = 0
    for path in paths:
        if not path.exists():
            raise ConversionError(path, None, "no such file or folder")
        if is_store(path):
            store = Store(path)
            report.formats.add("store")
            report.n_files += 1
            for rec in store:
                report.count(rec)
                n += 1
                yield rec
            continue
        records = iter_records([path], fmt, report=report, options=options)
        while True:
            with warnings.catch_warnings():  # unconverted labels are counted in ``report``; the caller says so once
                warnings.filterwarnings("ignore", message="labels present in the source files were not converted")
                rec = next(records, None)
            if rec is None:
                break
            n += 1
            yield rec
    if n == 0:
        raise ConversionError(", ".join(str(p) for p in paths), None, "no structures found")


__all__ = ["is_store", "iter_input_records"]
