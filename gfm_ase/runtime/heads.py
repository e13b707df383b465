"""Head selection and element coverage: which head a consumer evaluates and whether it was trained on a
structure's elements."""

from __future__ import annotations

from collections.abc import Iterable

from gfm_ase.config import HeadConfig
from gfm_ase.elements import symbols
from gfm_ase.model.gfm import GFMModel


class HeadSelection:
    """One head of ``model``: ``head`` must exist; None is allowed for single-head models only."""

    def __init__(self, model: GFMModel, head: str | None):
        self.name: str = model.resolve_head(head)
        self.config: HeadConfig = model.head_config(self.name)
        self.allowed_numbers: set[int] = set(self.config.atomic_numbers)  # empty: any element

    def unknown_elements(self, numbers: Iterable[int]) -> list[int]:
        """Atomic numbers in ``numbers`` that the head was not trained on (sorted; empty when all are covered)."""
        if not self.allowed_numbers:
            return []
        return sorted({int(z) for z in numbers} - self.allowed_numbers)

    def coverage_error(self, numbers: Iterable[int]) -> str | None:
        """A message naming the elements the head was not trained on, or None when every element is covered."""
        unknown = self.unknown_elements(numbers)
        if not unknown:
            return None
        return f"element(s) {symbols(unknown)} not covered by head {self.name!r} (trained on {self.config.elements})"


__all__ = ["HeadSelection"]
