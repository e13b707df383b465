"""The store format on disk: format tag, schema version, units, column names, dtypes and shapes, the header.

Columnar layout (described in ``docs/data-format.md``): per-atom columns (positions, numbers, forces, magmoms) are
concatenated over structures and sliced with per-structure ``offsets``. A missing label is stored as NaN; the
per-atom ones are also flagged per structure (``has_forces`` / ``has_magmoms`` = False). File attributes that are
not plain numbers or strings are stored as JSON and listed in ``_json_attrs``.
"""

from __future__ import annotations

import json
from os import PathLike
from typing import Any

import h5py
import numpy as np

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
ATOM_COLUMNS: dict[str, tuple[type, tuple[int, ...]]] = {
    "positions": (np.float64, (3,)),
    "numbers": (np.int16, ()),
    "forces": (np.float64, (3,)),
    "magmoms": (np.float64, ()),
}
STRUCT_COLUMNS: dict[str, tuple[type, tuple[int, ...]]] = {
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
STRING_DTYPE = h5py.string_dtype("utf-8")
RESERVED_ATTRS = {"format", "schema_version", "units", "created", "n_structures", "n_atoms", "elements", "_json_attrs"}


class StoreError(RuntimeError):
    """A store file that is missing, of an unknown format or schema version, or inconsistent."""


def compression() -> dict[str, Any]:
    """The filter every column is written with."""
    return dict(compression="gzip", compression_opts=4, shuffle=True)


def encode_attr(value: Any) -> tuple[Any, bool]:
    """(value as HDF5 stores it, whether it was JSON-encoded)."""
    if isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return value, False
    if value is None:
        return json.dumps(None), True
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)), True


def read_attrs(f: h5py.File) -> dict[str, Any]:
    """The file attributes, JSON ones decoded (``_json_attrs`` itself left out)."""
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


def check_header(f: h5py.File, path: str | PathLike[str]) -> int:
    """The schema version of an open store file; :class:`StoreError` for another format or an unknown version."""
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT:
        raise StoreError(f"{path}: not a gfm-ase store (format attribute {fmt!r}, expected {FORMAT!r})")
    version = int(f.attrs.get("schema_version", -1))
    if version not in SUPPORTED_VERSIONS:
        raise StoreError(
            f"{path}: store schema version {version} is not supported by this gfm-ase "
            f"(supported: {SUPPORTED_VERSIONS}); upgrade gfm-ase or re-convert the data"
        )
    return version


def h5_problem(exc: BaseException) -> str:
    """What an h5py error says about a damaged file, in one line."""
    text = " ".join(str(exc).split())
    if "file signature not found" in text:
        return f"not an HDF5 file (empty, truncated at the start or another format; {text})"
    if "truncated file" in text:
        return f"truncated HDF5 file ({text})"
    return f"damaged or unreadable HDF5 file ({type(exc).__name__}: {text})"
