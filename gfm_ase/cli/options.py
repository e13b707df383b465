"""Shared argparse pieces of the commands: numbers that must be positive (or non-negative) and finite, --dispersion."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def positive(kind: Callable[[str], float] = int, zero: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: ``kind`` (int or float) > 0 (>= 0 with ``zero``), finite; else a parser error."""
    bound = "a non-negative" if zero else "a positive"
    what = f"{bound} {'integer' if kind is int else 'number'}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = f"{'non-negative' if zero else 'positive'} {kind.__name__}"
    return parse


__all__ = ["positive"]


def add_dispersion_option(p: argparse._ActionsContainer, target: str = "the head") -> None:
    """``--dispersion VARIANT``: DFT-D3 on top of ``target`` (gfm_ase.dispersion), for every command that offers it."""
    from gfm_ase.dispersion import DAMPING

    p.add_argument(
        "--dispersion",
        default=None,
        choices=sorted(DAMPING),
        help=f"add DFT-D3 dispersion to {target}, with the damping parameters of its functional "
        "(gfm_ase.dispersion, as GFMCalculator(dispersion=...); needs the d3 extra)",
    )
