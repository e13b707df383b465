"""Energy-per-atom, force and stress loss with globally consistent normalisation.

Each term is ``sum(weight * l(error)) / count`` where ``count`` is the number of labelled items in the GLOBAL batch
(all ranks), so that summing the ranks' gradients gives exactly the gradient of the loss of the whole global batch
evaluated in one process (tested). ``l`` is MSE, MAE or Huber, applied element-wise to errors divided by the
head's scale when ``normalize_by_head`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gfm_ase.graph.batch import GraphBatch

if TYPE_CHECKING:
    from gfm_ase.pretraining.config import LossSpec

TERMS = ("energy", "forces", "stress")
STRESS_VOLUME = 10.0  # A^3: stress errors are normalised as (scale / STRESS_VOLUME) eV/A^3


def elementwise(kind: str, err: torch.Tensor, delta: float) -> torch.Tensor:
    if kind == "mse":
        return err * err
    if kind == "mae":
        return err.abs()
    if kind == "huber":
        return torch.nn.functional.huber_loss(err, torch.zeros_like(err), reduction="none", delta=delta)
    raise ValueError(f"unknown loss kind {kind!r}")


@dataclass
class LossCounts:
    """Numbers of labelled items: energies (structures), force components, stress components."""

    energy: float = 0.0
    forces: float = 0.0
    stress: float = 0.0

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.energy, self.forces, self.stress], dtype=torch.float64)

    @staticmethod
    def from_tensor(t: torch.Tensor) -> "LossCounts":
        v = t.tolist()
        return LossCounts(v[0], v[1], v[2])


def label_counts(batch: GraphBatch, use_stress: bool) -> LossCounts:
    c = LossCounts()
    if batch.energy is not None:
        c.energy = float(torch.isfinite(batch.energy).sum())
    if batch.forces is not None:
        c.forces = float(torch.isfinite(batch.forces).sum())
    if use_stress and batch.stress is not None:
        c.stress = float(torch.isfinite(batch.stress).sum())
    return c


def compute_loss(
    pred: dict[str, torch.Tensor], batch: GraphBatch, head_scale: torch.Tensor, counts: LossCounts, spec: LossSpec
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted total loss (a 0-d tensor with graph) and the unweighted terms (floats, for logging).

    head_scale: [B] normalisation of each structure's head (ones when not normalising).
    counts: GLOBAL label counts (see module doc).
    """
    dtype = pred["energy"].dtype
    device = pred["energy"].device
    w = batch.weight.to(dtype)
    total = torch.zeros((), dtype=dtype, device=device)
    terms: dict[str, torch.Tensor] = {}
    scale = head_scale.to(dtype) if spec.normalize_by_head else torch.ones_like(head_scale, dtype=dtype)
    if spec.energy_weight > 0 and batch.energy is not None and counts.energy > 0:
        n = batch.n_atoms.to(dtype)
        mask = torch.isfinite(batch.energy)
        err = (pred["energy"][mask] - batch.energy.to(dtype)[mask]) / n[mask] / scale[mask]
        t = (w[mask] * elementwise(spec.kind, err, spec.huber_delta)).sum() / counts.energy
        total = total + spec.energy_weight * t
        terms["energy"] = t
    if spec.forces_weight > 0 and batch.forces is not None and counts.forces > 0:
        mask = torch.isfinite(batch.forces)
        atom_w = w[batch.batch].unsqueeze(-1).expand_as(batch.forces)[mask]
        atom_s = scale[batch.batch].unsqueeze(-1).expand_as(batch.forces)[mask]
        err = (pred["forces"][mask] - batch.forces.to(dtype)[mask]) / atom_s
        t = (atom_w * elementwise(spec.kind, err, spec.huber_delta)).sum() / counts.forces
        total = total + spec.forces_weight * t
        terms["forces"] = t
    if spec.stress_weight > 0 and batch.stress is not None and counts.stress > 0 and "stress" in pred:
        mask = torch.isfinite(batch.stress)
        st_w = w.unsqueeze(-1).expand_as(batch.stress)[mask]
        st_s = (scale / STRESS_VOLUME).unsqueeze(-1).expand_as(batch.stress)[mask]
        err = (pred["stress"][mask] - batch.stress.to(dtype)[mask]) / st_s
        t = (st_w * elementwise(spec.kind, err, spec.huber_delta)).sum() / counts.stress
        total = total + spec.stress_weight * t
        terms["stress"] = t
    return total, {k: float(v.detach()) for k, v in terms.items()}
