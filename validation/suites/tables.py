"""Markdown cells shared by the suites' side-by-side tables.

The tables are those of :class:`~gfm_ase.validation.suites.registry.Comparison`.
"""

from __future__ import annotations

import numpy as np


def fmt(x: float | None, nd: int = 1) -> str:
    """A number with ``nd`` decimals; ``-`` for a missing or non-finite one."""
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def by_z(sym: str) -> int:
    """Sort key of an element symbol: its atomic number (unknown symbols last)."""
    from ase.data import atomic_numbers

    return atomic_numbers.get(sym, 999)


__all__ = ["by_z", "fmt"]
