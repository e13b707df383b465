"""The precision table: what each ``dtype`` / ``precision`` name means for the parameters and the trunk.

One table for the whole package (calculator, screening, validation, benchmarks, pretraining, fine-tuning):

* ``float64``: parameters, geometry and outputs in float64;
* ``float32``: everything in float32;
* ``bfloat16``: float32 parameters; the trunk's per-edge work runs under bf16 autocast, while geometry,
  node-level layers, heads and the accumulation of energies, forces and stress stay in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    name: str
    parameter_dtype: torch.dtype  # dtype of the weights and of the batch's floating point tensors
    autocast_dtype: torch.dtype | None  # dtype of the trunk's autocast region, None: no autocast


_TABLE: dict[str, Precision] = {
    "float64": Precision("float64", torch.float64, None),
    "float32": Precision("float32", torch.float32, None),
    "bfloat16": Precision("bfloat16", torch.float32, torch.bfloat16),
}

PRECISIONS: tuple[str, ...] = tuple(_TABLE)


def precision_info(name: str, what: str = "precision") -> Precision:
    """The table row of ``name``; a ValueError naming ``what`` and the valid choices otherwise."""
    try:
        return _TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(f"{what} must be one of {PRECISIONS}, got {name!r}") from None


def parameter_dtype(name: str) -> torch.dtype:
    """The dtype a model is cast to for precision ``name``."""
    return precision_info(name).parameter_dtype


__all__ = ["Precision", "PRECISIONS", "precision_info", "parameter_dtype"]
