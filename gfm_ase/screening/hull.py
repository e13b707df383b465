"""Materials screening outputs: formation energies and energies above the convex hull.

* Formation energy per atom, ``e - sum_el x_el mu_el`` (x: atomic fractions), against elemental references ``mu``:
  either the elemental phases of a reference set of competing phases (the lowest energy per atom of each element,
  pymatgen's convention), or, without a reference set, the head's own ``reference_energies`` (the per-element
  offsets fitted to its training data: a consistent zero for comparing compositions with one head, but not the
  energies of the elemental ground states, so these "formation energies" are not comparable to experiment).
* Energy above the hull: ``e - e_hull(composition)``, with the hull of the competing phases built by pymatgen's
  :class:`~pymatgen.analysis.phase_diagram.PhaseDiagram` from *total* energies. Negative values mean the structure
  is below the hull of the reference set (a candidate new stable phase). NaN when the composition has elements
  outside the reference set.

Both depend on composition only, so they are computed once per distinct formula (cached) and applied to rows by
lookup; the energies of the competing phases should come from the same model and head as the screened structures
(the default), or from the same level of theory.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

ENERGY_SOURCES = ("model", "stored")


def _composition(formula: str) -> Any:
    from pymatgen.core import Composition

    return Composition(formula)


class FormationReference:
    """Elemental references ``mu`` (eV/atom) -> formation energy per atom by formula."""

    def __init__(self, mu: Mapping[str, float], source: str):
        self.mu = {str(k): float(v) for k, v in mu.items()}
        self.source = source
        self._cache: dict[str, float] = {}

    def reference_per_atom(self, formula: str) -> float:
        if formula not in self._cache:
            try:
                comp = _composition(formula)
                fr = comp.fractional_composition
                missing = [el.symbol for el in fr.elements if el.symbol not in self.mu]
                self._cache[formula] = (
                    np.nan if missing else float(sum(fr[el] * self.mu[el.symbol] for el in fr.elements))
                )
            except Exception:  # unparsable formula (an error row): no reference
                self._cache[formula] = np.nan
        return self._cache[formula]

    def __call__(self, formulas: Iterable[str], energy_per_atom: np.ndarray) -> np.ndarray:
        ref = np.array([self.reference_per_atom(f) if f else np.nan for f in formulas], dtype=float)
        return np.asarray(energy_per_atom, dtype=float) - ref


class HullReference:
    """A set of competing phases (formula, total energy) and its pymatgen phase diagram."""

    def __init__(self, entries: Iterable[tuple[str, float]], names: Iterable[str] | None = None):
        from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

        entries = list(entries)
        if not entries:
            raise ValueError("the hull reference set is empty")
        names = list(names) if names is not None else [f for f, _ in entries]
        pd_entries = []
        for (formula, energy), name in zip(entries, names):
            if energy is None or not np.isfinite(energy):
                raise ValueError(f"hull reference {name!r} ({formula}) has no finite energy")
            pd_entries.append(PDEntry(_composition(formula), float(energy), name=str(name)))
        try:
            self.pd = PhaseDiagram(pd_entries)
        except ValueError as exc:
            raise ValueError(
                f"cannot build the phase diagram of the hull references: {exc} (every element needs "
                "an elemental reference structure in the set)"
            ) from exc
        self.elements = sorted(el.symbol for el in self.pd.elements)
        self.formation = FormationReference(
            {el.symbol: e.energy_per_atom for el, e in self.pd.el_refs.items()},
            source="elemental phases of the hull reference set",
        )
        self._hull: dict[str, float] = {}

    def hull_energy_per_atom(self, formula: str) -> float:
        if formula not in self._hull:
            try:
                self._hull[formula] = float(self.pd.get_hull_energy_per_atom(_composition(formula)))
            except Exception:  # elements outside the diagram, or an unparsable formula
                self._hull[formula] = np.nan
        return self._hull[formula]

    def e_above_hull(self, formulas: Iterable[str], energy_per_atom: np.ndarray) -> np.ndarray:
        hull = np.array([self.hull_energy_per_atom(f) if f else np.nan for f in formulas], dtype=float)
        return np.asarray(energy_per_atom, dtype=float) - hull

    def stable(self) -> list[tuple[str, str]]:
        """(name, formula) of the reference phases on the hull."""
        entries: list[Any] = list(self.pd.stable_entries)  # PDEntry objects (named), typed as Entry by pymatgen
        return sorted((e.name, e.composition.reduced_formula) for e in entries)


def annotate(block: dict, formation: FormationReference | None, hull: HullReference | None) -> dict:
    """Add ``formation_energy_per_atom`` and ``e_above_hull`` columns to a result block (in place)."""
    if formation is not None:
        block["formation_energy_per_atom"] = formation(block["formula"], block["energy_per_atom"])
    if hull is not None:
        block["e_above_hull"] = hull.e_above_hull(block["formula"], block["energy_per_atom"])
    return block


__all__ = ["FormationReference", "HullReference", "annotate", "ENERGY_SOURCES"]
