"""fairchem ASE-LMDB (``.aselmdb``: OMat24, OMol25, OC20++ ...), read with the ``lmdb`` package only.

Layout (fairchem ``LMDBDatabase``): one LMDB file (``subdir=False``); keys are the ascii row ids ``b"1"``,
``b"2"``, ... plus the reserved ``nextid``, ``metadata`` and ``deleted_ids``; each value is
``zlib.compress(json)`` of an ASE ``AtomsRow`` dict (``numbers``, ``positions``, ``cell``, ``pbc``, ``energy``,
``forces``, ``stress`` (ASE Voigt, eV/A^3, tension positive, as ASE calculators give it), ``magmoms``,
``key_value_pairs``, ``data``). Units are ASE's. Total charge and spin multiplicity (OMol25) are taken from
``key_value_pairs`` or ``data`` (``charge``, ``spin``) when present.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from gfm_ase.data.converters.base import Item, rel_id, want
from gfm_ase.data.record import StructureRecord

RESERVED_KEYS = (b"nextid", b"metadata", b"deleted_ids")


def _decode(value: bytes) -> dict:
    return json.loads(zlib.decompress(value))


def read_aselmdb(path: str | Path, *, root: Path | None = None, group: str | None = None) -> Iterator[Item]:
    try:
        import lmdb
    except ImportError:
        raise ImportError("reading .aselmdb needs the lmdb package: pip install lmdb") from None
    path = Path(path)
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False, meminit=False)
    ident = rel_id(path, root)
    grp = group if group is not None else path.stem
    try:
        with env.begin() as txn:
            deleted = set()
            raw = txn.get(b"deleted_ids")
            if raw is not None:
                deleted = set(int(i) for i in _decode(raw))
            keys = []
            for key in txn.cursor().iternext(keys=True, values=False):
                if key in RESERVED_KEYS:
                    continue
                try:
                    keys.append(int(key.decode("ascii")))
                except (UnicodeDecodeError, ValueError):
                    raise ValueError(f"unexpected key {key[:40]!r}: not a fairchem ASE-LMDB file") from None
            for rid in sorted(set(keys) - deleted):
                value = txn.get(str(rid).encode("ascii"))

                def build(value: bytes | None = value, rid: int = rid) -> StructureRecord:
                    if value is None:
                        raise ValueError(f"row {rid} has no value")
                    d = _decode(value)
                    kv = d.get("key_value_pairs") or {}
                    data = d.get("data") or {}
                    extra = {**data, **kv}
                    numbers = want(d, "numbers", "row")
                    cell = d.get("cell")
                    pbc = d.get("pbc")
                    return StructureRecord(
                        np.asarray(want(d, "positions", "row"), dtype=np.float64),
                        numbers,
                        None if cell is None else np.asarray(cell, dtype=np.float64),
                        None if pbc is None else pbc,
                        energy=d.get("energy"),
                        forces=d.get("forces"),
                        stress=d.get("stress"),
                        magmoms=d.get("magmoms"),
                        charge=extra.get("charge"),
                        spin=extra.get("spin"),
                        group=str(extra.get("group", grp)),
                        id=f"{ident}#id={rid}",
                    )

                yield Item(f"row id={rid}", build)
    finally:
        env.close()
