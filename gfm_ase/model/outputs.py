"""Energies, forces (-dE/dr) and stress ((1/V) dE/d strain) of a batch, by autograd.

Edge vectors are built from positions, cell and integer shifts after applying a symmetric strain
``x -> x (1 + eps)``, ``cell -> cell (1 + eps)``, so that one backward pass gives forces and the strain derivative.
Stress follows ASE: eV/A^3, tension positive, Voigt order xx yy zz yz xz xy.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from gfm_ase.graph.batch import GraphBatch
from gfm_ase.model.fidelity import check_one_fidelity, fidelity_condition
from gfm_ase.model.precision import precision_info
from gfm_ase.units import to_voigt

# structures whose cell has a smaller volume (molecules, cells with a zero vector) get a NaN stress: undefined
MIN_VOLUME = 1e-8  # A^3


def edge_vectors(batch: GraphBatch, positions: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    i, j = batch.edge_index[0], batch.edge_index[1]
    edge_cell = cell[batch.batch[i]]
    return positions[j] - positions[i] + torch.einsum("ei,eij->ej", batch.shifts, edge_cell)


def _autocast(autocast_dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    if autocast_dtype is not None:
        return torch.autocast(device_type=device.type, dtype=autocast_dtype)
    return contextlib.nullcontext()


def predict(
    model: Any,  # a GFMModel, its compiled view or a DDP wrapper of it
    batch: GraphBatch,
    head: str | None = None,
    *,
    forces: bool = True,
    stress: bool = False,
    create_graph: bool = False,
    precision: str | None = None,
    extra_heads: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Evaluate ``model`` on ``batch``.

    head: a head name used for every structure, or None to use ``batch.head`` (per-structure head indices).
    precision: None (the model's own dtype), "float64", "float32" or "bfloat16" (bf16 autocast of the trunk's
      per-edge work; geometry, node-level layers, heads and the accumulation of energies, forces and stress in
      float32).
    extra_heads: also return ``head_energies`` [B, H] of these heads from the same trunk pass (no gradients); in a
      model with fidelities they must evaluate at ``head``'s fidelity.

    Returns ``energy`` [B], ``energies`` (per atom) [N], and when asked ``forces`` [N, 3], ``stress`` [B, 6].
    ``stress`` is NaN for structures whose cell has no volume (below ``MIN_VOLUME``); the NaN is masked so that
    gradients through the other structures' stresses stay finite (a loss that selects finite labels is safe).
    """
    net = model.module if hasattr(model, "module") else model
    if precision is None:
        precision = "float64" if next(net.parameters()).dtype == torch.float64 else "float32"
    autocast_dtype = precision_info(precision).autocast_dtype
    device = batch.positions.device
    positions = batch.positions
    need_grad = forces or stress
    if need_grad and not positions.requires_grad:
        positions = positions.detach().requires_grad_(True)
    cell = batch.cell
    strain = None
    if stress:
        strain = torch.zeros_like(cell, requires_grad=True)
        sym = 0.5 * (strain + strain.transpose(1, 2))
        positions_s = positions + torch.einsum("ni,nij->nj", positions, sym[batch.batch])
        cell = cell + torch.bmm(cell, sym)
    else:
        positions_s = positions
    vec = edge_vectors(batch, positions_s, cell)
    condition = fidelity_condition(net, batch, head)  # None unless the model has fidelities
    if extra_heads and head is not None and condition is not None:
        check_one_fidelity(net, [net.resolve_head(head), *extra_heads])  # one trunk pass serves them all, or refuse
    with _autocast(autocast_dtype, device):
        s = net.features(batch.numbers, batch.edge_index, vec, batch.batch, batch.num_graphs, condition=condition)
    if autocast_dtype is not None:
        s = s.float()
    # heads run in full precision: node-level and cheap, and bf16 rounding of atomic energies of a few eV would
    # cost meV/atom (docs/benchmarks.md)
    if head is not None:  # one head for the whole batch (calculator, screening): no per-atom head routing
        e_atom = net.heads[net.resolve_head(head)](s, batch.numbers)
    else:
        e_atom = net.atomic_energies(s, batch.numbers, batch.head[batch.batch])
    e_atom = e_atom.to(positions.dtype)
    pair = None
    if getattr(net, "repulsion", None) is not None:  # fixed pair term, full precision, the same for every head
        pair = net.repulsion(batch.numbers, batch.edge_index, vec)
        e_atom = e_atom + pair
    energy = torch.zeros(batch.num_graphs, dtype=e_atom.dtype, device=device).index_add_(0, batch.batch, e_atom)
    out = {"energy": energy, "energies": e_atom}
    if extra_heads:
        with torch.no_grad():
            he = net.all_head_energies(s.detach(), batch.numbers, list(extra_heads)).to(positions.dtype)
            if pair is not None:
                he = he + pair.detach()[:, None]
        out["head_energies"] = torch.zeros(batch.num_graphs, he.shape[1], dtype=he.dtype, device=device).index_add_(
            0, batch.batch, he
        )
    if need_grad:
        inputs = [positions] + ([strain] if strain is not None else [])
        grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph, allow_unused=True)
        if forces:
            g = grads[0]
            out["forces"] = -g if g is not None else torch.zeros_like(positions)
        if stress:
            g = grads[-1]
            if g is None:
                g = torch.zeros_like(cell)
            volume = torch.linalg.det(batch.cell).abs()
            ok = (volume > MIN_VOLUME)[:, None]
            # double where: the divisor is 1 where there is no volume, so no 0/0 reaches the backward pass
            safe = torch.where(ok.squeeze(-1), volume, torch.ones_like(volume))
            voigt = to_voigt(g / safe[:, None, None])
            out["stress"] = torch.where(ok, voigt, torch.full_like(voigt, float("nan")))
    return out
