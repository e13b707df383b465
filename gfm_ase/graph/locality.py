"""Spatial atom order for large cells: neighbours close in space become close in memory.

The message step gathers the features of every edge's neighbour atom. In a supercell made by repetition (or any
file whose atoms are not ordered in space) the neighbours of consecutive atoms lie far apart in the feature arrays,
and once those arrays outgrow the CPU's caches (tens of thousands of atoms) each gather is a cache miss: the cost
per atom of a model call then grows with the cell although the work per atom does not. Ordering the atoms along a
Z-order (Morton) curve of cutoff-sized bins keeps the neighbours of a run of atoms within a few nearby blocks of
memory; the measured effect is in docs/benchmarks.md ("Memory and scale").

:func:`spatial_order` returns that permutation (structures stay contiguous and in their order);
:func:`reorder` applies it to a :class:`~gfm_ase.graph.batch.GraphBatch`: atoms permuted, edges relabelled and sorted
by their centre atom. A model evaluated on the reordered batch gives the same energies and stress and the same
per-atom results in the new order (``unpermute`` puts them back): only the order of floating-point sums changes.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from gfm_ase.graph.batch import GraphBatch

# below this many atoms in a batch the feature arrays fit a CPU's caches and reordering only costs (the measurement
# behind the threshold: docs/benchmarks.md, "Spatial atom order")
MIN_ATOMS = 20_000
_BITS = 21  # bits per axis of the Morton code (3 x 21 = 63 bits fit an int64)


def _morton(bins: torch.Tensor) -> torch.Tensor:
    """Interleave the bits of integer bin coordinates [N, 3] into one int64 code per row."""
    code = torch.zeros(bins.shape[0], dtype=torch.int64, device=bins.device)
    for bit in range(_BITS):
        for axis in range(3):
            code |= ((bins[:, axis] >> bit) & 1) << (3 * bit + axis)
    return code


def spatial_order(batch: GraphBatch, bin_size: float = 5.0) -> torch.Tensor:
    """Permutation [N] of the atoms of ``batch``: by structure, then along a Morton curve of ``bin_size`` bins
    (Angstrom; fractional coordinates of periodic cells, the bounding box of each structure otherwise)."""
    pos = batch.positions.detach().to(torch.float64)
    cell = batch.cell.detach().to(torch.float64)
    b = batch.batch
    n_graphs = batch.num_graphs
    periodic = batch.pbc.all(dim=1) & (torch.linalg.det(cell).abs() > 1e-9)  # [B]
    # fractional coordinates (periodic structures) and bounding-box coordinates (the others), chosen per atom
    safe_cell = torch.where(periodic[:, None, None], cell, torch.eye(3, dtype=cell.dtype, device=cell.device))
    frac = torch.bmm(pos.unsqueeze(1), torch.linalg.inv(safe_cell)[b]).squeeze(1).remainder(1.0)  # r = f @ cell
    lo = torch.full((n_graphs, 3), float("inf"), dtype=pos.dtype, device=pos.device)
    hi = torch.full((n_graphs, 3), float("-inf"), dtype=pos.dtype, device=pos.device)
    lo = lo.scatter_reduce(0, b[:, None].expand(-1, 3), pos, "amin")
    hi = hi.scatter_reduce(0, b[:, None].expand(-1, 3), pos, "amax")
    box = (hi - lo).clamp_min(1e-9)
    coords = torch.where(periodic[b][:, None], frac, (pos - lo[b]) / box[b])
    lengths = torch.where(periodic[:, None], torch.linalg.norm(cell, dim=2), box)  # [B, 3]
    n_bins = torch.clamp((lengths / bin_size).floor().to(torch.int64), 1, 2**_BITS - 1)[b]
    bins = torch.minimum((coords * n_bins).floor().to(torch.int64).clamp_min(0), n_bins - 1)
    order = torch.sort(_morton(bins), stable=True).indices  # along the curve (ties: original order) ...
    return order[torch.sort(b[order], stable=True).indices]  # ... within each structure, structures in order


def reorder(batch: GraphBatch, perm: torch.Tensor) -> GraphBatch:
    """``batch`` with its atoms in the order ``perm`` (new atom ``k`` is old atom ``perm[k]``); edges relabelled
    and sorted by centre atom, labels permuted with their atoms."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    edges = inverse[batch.edge_index]
    edge_order = torch.sort(edges[0], stable=True).indices
    return replace(
        batch,
        positions=batch.positions[perm],
        numbers=batch.numbers[perm],
        batch=batch.batch[perm],
        edge_index=edges[:, edge_order],
        shifts=batch.shifts[edge_order],
        forces=None if batch.forces is None else batch.forces[perm],
    )


def unpermute(values: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Per-atom ``values`` of a reordered batch back in the original atom order."""
    out = torch.empty_like(values)
    out[perm] = values
    return out


__all__ = ["MIN_ATOMS", "reorder", "spatial_order", "unpermute"]
