"""Column blocks: the rows of screening results, column-oriented (no per-row Python objects).

A block is a ``dict[str, np.ndarray]`` with one entry per column. Per-structure columns have one entry per row;
per-atom columns (``forces`` [sum n, 3], ``energies`` [sum n]) are flat and split by the ``n_atoms`` column.
String columns (``id``, ``formula``, ``error``) are numpy object arrays of ``str``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

STRING_COLUMNS = ("id", "formula", "error")
PER_ATOM_COLUMNS = ("forces", "energies")
# bookkeeping columns of part files; not part of the final output
INTERNAL_COLUMNS = ("unit", "sub", "unit_size")


def n_rows(block: dict) -> int:
    return len(block["id"])


def is_per_atom(name: str) -> bool:
    return name in PER_ATOM_COLUMNS


def concat(blocks: Sequence[dict]) -> dict:
    blocks = [b for b in blocks if n_rows(b)]
    if not blocks:
        return {}
    keys = list(blocks[0])
    for b in blocks[1:]:
        if list(b) != keys:
            raise ValueError(f"blocks with different columns: {keys} vs {list(b)}")
    return {k: np.concatenate([b[k] for b in blocks]) for k in keys}


def take(block: dict, rows: np.ndarray) -> dict:
    """Rows ``rows`` (integer indices or boolean mask) of a block, per-atom columns included."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    out = {}
    atom_idx = None
    for k, v in block.items():
        if is_per_atom(k):
            if atom_idx is None:
                n = block["n_atoms"]
                start = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
                atom_idx = _ranges(start[rows], n[rows])
            out[k] = v[atom_idx]
        else:
            out[k] = v[rows]
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for each pair, without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, lengths) + np.arange(total)


def split_per_atom(block: dict, name: str) -> list[np.ndarray]:
    """The per-atom column ``name`` as one array per row."""
    return np.split(block[name], np.cumsum(block["n_atoms"])[:-1])


def complete_units(block: dict) -> np.ndarray:
    """Mask of rows whose unit (input file or frame) has all its structures in the block."""
    if not n_rows(block):
        return np.zeros(0, dtype=bool)
    units, inverse, counts = np.unique(block["unit"], return_inverse=True, return_counts=True)
    size = np.zeros(len(units), dtype=np.int64)
    size[inverse] = block["unit_size"]
    return (counts == size)[inverse]


__all__ = [
    "STRING_COLUMNS",
    "PER_ATOM_COLUMNS",
    "INTERNAL_COLUMNS",
    "n_rows",
    "concat",
    "take",
    "split_per_atom",
    "complete_units",
    "is_per_atom",
]
