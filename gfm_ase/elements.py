"""Element tables shared by the model, screening and checks."""

from __future__ import annotations

from collections.abc import Iterable

from ase.data import chemical_symbols

# size of every table indexed by atomic number (embeddings, reference energies): index 0 ("X") plus H..Og
MAX_Z: int = len(chemical_symbols)


def symbols(numbers: Iterable[int]) -> list[str]:
    """Chemical symbols of atomic numbers (``Z<n>`` for numbers outside the periodic table)."""
    return [chemical_symbols[int(z)] if 0 < int(z) < MAX_Z else f"Z{int(z)}" for z in numbers]


__all__ = ["MAX_Z", "symbols"]
