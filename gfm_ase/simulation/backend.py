"""The one place where the simulation engines (torch-sim, LAMMPS) get a gfm-ase model and head: the project's
inference runtime (:class:`gfm_ase.runtime.InferenceRuntime`: model resolution, device, dtype, head, element
coverage, evaluation of a :class:`GraphBatch`), plus the engines' policy for elements a head was not trained on.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from numpy.typing import ArrayLike

from gfm_ase.graph.batch import GraphBatch
from gfm_ase.runtime import InferenceRuntime

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel


class Evaluator:
    """One head of one model on one device, in one precision (a thin view of an :class:`InferenceRuntime`).

    allow_unknown_elements: evaluate elements outside the head's training data (with a warning) instead of
    refusing them.
    """

    def __init__(self, runtime: InferenceRuntime, allow_unknown_elements: bool = False):
        self.runtime = runtime
        self.allow_unknown_elements = bool(allow_unknown_elements)

    @property
    def head(self) -> str:
        return self.runtime.head

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def dtype(self) -> torch.dtype:
        """dtype of positions, cell and results."""
        return self.runtime.model_dtype

    @property
    def precision(self) -> str:
        return self.runtime.precision

    @property
    def cutoff(self) -> float:
        return float(self.runtime.model.cutoff)

    @property
    def max_neighbors(self) -> int | None:
        return self.runtime.model.max_neighbors

    @property
    def elements(self) -> list[str]:
        return list(self.runtime.head_config.elements or [])

    def check_numbers(self, numbers: ArrayLike | torch.Tensor, where: str = "") -> None:
        """ValueError naming the elements the head was not trained on (a warning when they are allowed)."""
        msg = self.runtime.coverage_error(torch.as_tensor(numbers).unique().tolist())
        if msg is None:
            return
        if not self.allow_unknown_elements:
            raise ValueError(where + msg + "; pass allow_unknown_elements=True to evaluate anyway")
        warnings.warn(where + msg + "; predictions for them are extrapolations", stacklevel=3)

    def __call__(self, batch: GraphBatch, *, forces: bool = True, stress: bool = False) -> dict[str, torch.Tensor]:
        """energy [B], energies [N], forces [N, 3], stress [B, 6] (ASE Voigt, eV/A^3, tension positive)."""
        return self.runtime.evaluate(batch, forces=forces, stress=stress)


def load_evaluator(
    model: str | Path | GFMModel | None = None,
    head: str | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: str = "float32",
    allow_unknown_elements: bool = False,
    compile: bool | dict[str, Any] = False,
) -> Evaluator:
    """An :class:`Evaluator` for ``model`` / ``head`` (same arguments and errors as :class:`GFMCalculator`)."""
    runtime = InferenceRuntime(model, head, device=device, dtype=dtype, compile=compile)
    return Evaluator(runtime, allow_unknown_elements=allow_unknown_elements)


__all__ = ["Evaluator", "load_evaluator"]
