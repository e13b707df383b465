"""Per-element error tables of predictions against labels, accumulated structure by structure (bounded memory).

Energies are compared per atom (each structure counts for every element it contains), forces per Cartesian
component of the atoms of each element, stresses per Voigt component (each structure counts for every element it
contains; ASE sign, reported in GPa). The row ``all`` holds every structure / atom once. MAE and RMSE; only
structures with both a label and a prediction of a quantity enter its columns.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from numpy.typing import ArrayLike
from ase.data import atomic_numbers, chemical_symbols

from gfm_ase.units import GPA

ALL = "all"
# quantity -> (unit label, factor from eV-based ASE units)
QUANTITIES = {
    "energy_per_atom": ("meV/atom", 1000.0),
    "forces": ("meV/A", 1000.0),
    "stress": ("GPa", 1.0 / GPA),
}


class _Sums:
    __slots__ = ("n", "abs", "sq", "structures")

    def __init__(self) -> None:
        self.n = 0
        self.abs = 0.0
        self.sq = 0.0
        self.structures = 0

    def add(self, err: np.ndarray) -> None:
        err = np.asarray(err, dtype=np.float64).ravel()
        self.n += err.size
        self.abs += float(np.abs(err).sum())
        self.sq += float((err**2).sum())
        self.structures += 1

    def metrics(self, factor: float) -> dict:
        if self.n == 0:
            return {"n_structures": 0, "n_values": 0, "mae": None, "rmse": None}
        return {
            "n_structures": self.structures,
            "n_values": self.n,
            "mae": factor * self.abs / self.n,
            "rmse": factor * float(np.sqrt(self.sq / self.n)),
        }


class ErrorTable:
    """Accumulates prediction errors; :meth:`to_dict` gives the tables, :meth:`markdown` prints them."""

    def __init__(self) -> None:
        self._sums: dict[str, dict[str, _Sums]] = {q: defaultdict(_Sums) for q in QUANTITIES}
        self.n_structures = 0

    def add(self, numbers: ArrayLike, label: dict, pred: dict) -> None:
        """One structure: ``label`` and ``pred`` hold any of energy (eV), forces ([n, 3] eV/A), stress (Voigt-6
        eV/A^3)."""
        numbers = np.asarray(numbers, dtype=np.int64)
        elements = [chemical_symbols[z] for z in np.unique(numbers)]
        self.n_structures += 1
        if label.get("energy") is not None and pred.get("energy") is not None:
            e_err = (float(pred["energy"]) - float(label["energy"])) / len(numbers)
            for el in (ALL, *elements):
                self._sums["energy_per_atom"][el].add(np.array([e_err]))
        if label.get("forces") is not None and pred.get("forces") is not None:
            err = np.asarray(pred["forces"], dtype=np.float64) - np.asarray(label["forces"], dtype=np.float64)
            self._sums["forces"][ALL].add(err)
            for el in elements:
                self._sums["forces"][el].add(err[numbers == atomic_numbers[el]])
        if label.get("stress") is not None and pred.get("stress") is not None:
            err = np.asarray(pred["stress"], dtype=np.float64) - np.asarray(label["stress"], dtype=np.float64)
            for el in (ALL, *elements):
                self._sums["stress"][el].add(err)

    @property
    def has_errors(self) -> bool:
        return any(s[ALL].n for s in self._sums.values() if ALL in s)

    def elements(self) -> list[str]:
        found = {el for sums in self._sums.values() for el in sums if el != ALL}
        return sorted(found, key=lambda el: atomic_numbers[el])

    def to_dict(self) -> dict:
        """``{"units": {...}, "rows": {element or "all": {quantity: {n_structures, n_values, mae, rmse}}}}``."""
        rows = {}
        for el in (ALL, *self.elements()):
            rows[el] = {
                q: (self._sums[q][el].metrics(f) if el in self._sums[q] else _Sums().metrics(f))
                for q, (_, f) in QUANTITIES.items()
            }
        return {"units": {q: u for q, (u, _) in QUANTITIES.items()}, "n_structures": self.n_structures, "rows": rows}

    def markdown(self) -> str:
        """One Markdown table: a row per element (and ``all``), MAE / RMSE of each quantity with labels."""
        d = self.to_dict()
        present = [q for q in QUANTITIES if d["rows"][ALL][q]["n_values"]]
        head = ["element"]
        for q in present:
            count = "components" if q == "forces" else "structures"
            head += [f"{q} MAE ({d['units'][q]})", f"{q} RMSE ({d['units'][q]})", f"{q} {count}"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for el, row in d["rows"].items():
            cells = [el]
            for q in present:
                m = row[q]
                cells += [_fmt(m["mae"]), _fmt(m["rmse"]), str(m["n_structures"] if q != "forces" else m["n_values"])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


__all__ = ["ErrorTable", "QUANTITIES"]
