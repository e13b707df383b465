"""A model view whose trunk runs through ``torch.compile`` (``Screener(compile=True)``, ``gfm screen --compile``,
``GFMCalculator(compile=True)``).

The user's model is not modified: this wrapper shares its parameters and only replaces the trunk call. Inductor
fuses the per-edge loops, at a one-off compile cost (cached on disk by inductor afterwards) that pays only for long
screens and MD runs, so it is off by default; the measured speed-ups and compile times are in docs/benchmarks.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gfm_ase.model.registry import run_trunk


class CompiledTrunkModel(nn.Module):
    """``model`` with a compiled trunk: ``features`` runs ``torch.compile(model.trunk)``; every other attribute
    (heads, head metadata, cutoff, ...) is ``model``'s own, so whatever :func:`gfm_ase.model.predict` or a caller
    reads of the model is there without a list of delegations to keep in step."""

    def __init__(self, model: Any, dynamic: bool = True, **compile_kwargs: Any) -> None:
        super().__init__()
        self.inner = model
        self.compiled_trunk = torch.compile(model.trunk, dynamic=dynamic, **compile_kwargs)

    def features(
        self,
        numbers: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vec: torch.Tensor,
        batch: torch.Tensor | None = None,
        num_graphs: int | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return run_trunk(
            self.compiled_trunk,
            numbers,
            edge_index,
            edge_vec,
            batch,
            num_graphs,
            needs_batch=bool(getattr(self.inner.trunk, "needs_batch", False)),
            condition=condition,
        )

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # this module's own parameters, buffers and submodules
        except AttributeError:
            if name == "inner":  # not set yet (during __init__): no recursion
                raise
            return getattr(self.inner, name)


__all__ = ["CompiledTrunkModel"]
