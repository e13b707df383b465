"""Validation / test metrics per dataset and per head: MAE and RMSE of energy per atom (meV/atom), force
components (meV/A) and stress components (meV/A^3), summed over ranks before the ratios are taken."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from gfm_ase.graph.batch import GraphBatch, collate
from gfm_ase.model.outputs import predict

if TYPE_CHECKING:
    from gfm_ase.pretraining.data import Graphs

# accumulator layout per dataset
N_E, AE_E, SE_E, N_F, AE_F, SE_F, N_S, AE_S, SE_S = range(9)
WIDTH = 9


def accumulate(pred: dict[str, torch.Tensor], batch: GraphBatch, acc: torch.Tensor) -> None:
    """Add a batch's error sums (eV units) into ``acc`` [9] (float64)."""
    if batch.energy is not None:
        m = torch.isfinite(batch.energy)
        if m.any():
            err = ((pred["energy"].detach().double() - batch.energy.double()) / batch.n_atoms.double())[m]
            acc[N_E] += m.sum()
            acc[AE_E] += err.abs().sum()
            acc[SE_E] += (err * err).sum()
    if batch.forces is not None and "forces" in pred:
        m = torch.isfinite(batch.forces)
        if m.any():
            err = (pred["forces"].detach().double() - batch.forces.double())[m]
            acc[N_F] += m.sum()
            acc[AE_F] += err.abs().sum()
            acc[SE_F] += (err * err).sum()
    if batch.stress is not None and "stress" in pred:
        m = torch.isfinite(batch.stress)
        if m.any():
            err = (pred["stress"].detach().double() - batch.stress.double())[m]
            acc[N_S] += m.sum()
            acc[AE_S] += err.abs().sum()
            acc[SE_S] += (err * err).sum()


def summarize(acc: torch.Tensor | Sequence[float]) -> dict[str, float | None]:
    """meV-unit metrics from one accumulator row (None where there were no labels)."""
    a = [float(x) for x in acc]

    def pair(n: int, ae: int, se: int) -> tuple[float | None, float | None]:
        if a[n] <= 0:
            return None, None
        return 1000.0 * a[ae] / a[n], 1000.0 * math.sqrt(a[se] / a[n])

    e = pair(N_E, AE_E, SE_E)
    f = pair(N_F, AE_F, SE_F)
    s = pair(N_S, AE_S, SE_S)
    return {
        "n_structures": int(a[N_E]),
        "energy_mae_meV_atom": e[0],
        "energy_rmse_meV_atom": e[1],
        "forces_mae_meV_A": f[0],
        "forces_rmse_meV_A": f[1],
        "stress_mae_meV_A3": s[0],
        "stress_rmse_meV_A3": s[1],
    }


def evaluate_graphs(
    model: torch.nn.Module,
    graphs: Graphs,
    indices: Sequence[int] | np.ndarray,
    head_local: int,
    *,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device | str,
    precision: str,
    stress: bool,
    fidelity: int = -1,
) -> torch.Tensor:
    """Error sums [9] of ``graphs[indices]`` evaluated with the (local) head index ``head_local`` at the model
    fidelity index ``fidelity`` (-1: the head's)."""
    acc = torch.zeros(WIDTH, dtype=torch.float64)
    net = model
    for start in range(0, len(indices), batch_size):
        chunk = [graphs[int(k)] for k in indices[start : start + batch_size]]
        batch = collate(chunk, dtype=dtype).to(device)
        batch.head.fill_(head_local)
        if batch.fidelity is not None:
            batch.fidelity.fill_(fidelity)
        want_stress = stress and batch.stress is not None and bool(torch.isfinite(batch.stress).any())
        pred = predict(net, batch, None, forces=True, stress=want_stress, precision=precision)
        accumulate(pred, batch, acc)
    return acc
