"""The columns of one screen: which there are (from the properties, the spread and the dispersion option), their
dtypes, and the block of error rows both ends of the pipeline emit (:mod:`gfm_ase.screening.rows` has the block
operations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
from ase.data import chemical_symbols

if TYPE_CHECKING:
    from gfm_ase.dispersion import DispersionResult


@dataclass
class Meta:
    """Bookkeeping of one structure on its way through the pipeline (its row's identity)."""

    id: str
    unit: int
    sub: int
    unit_size: int
    formula: str = ""
    dispersion: DispersionResult | None = None  # the D3 term, computed with the graph (host, float64)


def formula_of(numbers: np.ndarray) -> str:
    """Hill-ordered formula (C, H first when carbon is present, then alphabetical)."""
    zs, counts = np.unique(numbers, return_counts=True)
    pairs = {
        chemical_symbols[int(z)] if 0 < z < len(chemical_symbols) else f"Z{int(z)}": int(c) for z, c in zip(zs, counts)
    }
    order = sorted(pairs)
    if "C" in pairs:
        order = ["C"] + (["H"] if "H" in pairs else []) + [s for s in order if s not in ("C", "H")]
    return "".join(f"{s}{pairs[s] if pairs[s] > 1 else ''}" for s in order)


def columns_for(properties: Sequence[str], *, uncertainty: bool, dispersion: bool) -> dict[str, tuple]:
    """Column name -> (dtype, trailing shape), in output order; per-atom columns are marked by
    ``rows.PER_ATOM_COLUMNS``. ``uncertainty``: the head has a spread (no family of two or more heads: no column,
    it would be NaN everywhere); ``dispersion``: a D3 term is added (a ``dispersion_energy`` column)."""
    cols: dict[str, tuple] = {
        "id": (object, ()),
        "unit": (np.int64, ()),
        "sub": (np.int64, ()),
        "unit_size": (np.int64, ()),
        "n_atoms": (np.int64, ()),
        "formula": (object, ()),
        "energy": (np.float64, ()),
        "energy_per_atom": (np.float64, ()),
    }
    if dispersion:
        cols["dispersion_energy"] = (np.float64, ())
    if uncertainty:
        cols["uncertainty"] = (np.float64, ())
    if "stress" in properties:
        cols["stress"] = (np.float64, (6,))
    if "forces" in properties:
        cols["forces"] = (np.float64, (3,))
    if "energies" in properties:
        cols["energies"] = (np.float64, ())
    cols["error"] = (object, ())
    return cols


def error_block(
    columns: dict[str, tuple], metas: Sequence[Meta], n_atoms: Sequence[int], messages: Sequence[str]
) -> dict:
    """A block of ``columns`` for ``metas``: identity columns filled, numbers NaN (counts 0), ``error`` set (an
    empty message: a row to be filled by the model's results)."""
    b = len(metas)
    total = int(sum(n_atoms))
    out = {}
    for name, (dt, shape) in columns.items():
        rows = total if name in ("forces", "energies") else b
        if dt is object:
            out[name] = np.full(rows, "", dtype=object)
        elif dt is np.int64:
            out[name] = np.zeros(rows, dtype=np.int64)
        else:
            out[name] = np.full((rows, *shape), np.nan)
    out["id"] = np.array([m.id for m in metas], dtype=object)
    out["unit"] = np.array([m.unit for m in metas], dtype=np.int64)
    out["sub"] = np.array([m.sub for m in metas], dtype=np.int64)
    out["unit_size"] = np.array([m.unit_size for m in metas], dtype=np.int64)
    out["formula"] = np.array([m.formula for m in metas], dtype=object)
    out["n_atoms"] = np.asarray(n_atoms, dtype=np.int64).reshape(b)
    out["error"] = np.array(messages, dtype=object).reshape(b)
    return out


__all__ = ["Meta", "columns_for", "error_block", "formula_of"]
