"""Evaluation of a :class:`~gfm_ase.graph.batch.GraphBatch` with one head: energy, per-atom energies, forces and
stress (ASE units and signs; see :func:`gfm_ase.model.outputs.predict`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from gfm_ase.graph.batch import GraphBatch
from gfm_ase.model.outputs import predict


def evaluate(
    runner: nn.Module,
    batch: GraphBatch,
    head: str,
    *,
    precision: str,
    forces: bool = True,
    stress: bool = False,
    extra_heads: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """``energy`` [B] and ``energies`` [N], plus ``forces`` [N, 3] / ``stress`` [B, 6] when asked and
    ``head_energies`` [B, H] of ``extra_heads``. Without forces and stress no autograd graph is built."""
    ctx = contextlib.nullcontext() if (forces or stress) else torch.no_grad()
    with ctx:
        return predict(runner, batch, head, forces=forces, stress=stress, precision=precision, extra_heads=extra_heads)


def to_numpy(out: dict[str, torch.Tensor], keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The outputs of :func:`evaluate` (all, or those named in ``keys``) as float64 numpy arrays on the host."""
    names = out.keys() if keys is None else keys
    return {k: out[k].detach().to("cpu", torch.float64).numpy() for k in names}


__all__ = ["evaluate", "to_numpy"]
