"""Radius graphs built on the model's device (``vesin.torch``): the same pairs and shifts as
:func:`gfm_ase.graph.neighbors.radius_graph` (the same search), without a round trip through numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gfm_ase.graph.neighbors import StructureError


def device_radius_graph(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: bool | Sequence[bool] | torch.Tensor,
    cutoff: float,
    *,
    max_neighbors: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``edge_index`` [2, E] (centre i, neighbor j), integer ``shifts`` [E, 3] and distances [E] of one structure.

    positions [n, 3] and cell [3, 3] (rows are cell vectors) on any device; ``pbc`` is one flag for the three
    directions (torch-sim 0.3's convention) or three flags. Periodic structures need a cell of non-zero volume.
    Mixed periodicity (slabs, wires) is searched on the host by :func:`gfm_ase.graph.neighbors.radius_graph`,
    which completes the cell along the open directions, and the result is moved to the device.
    """
    flags = [bool(v) for v in torch.as_tensor(pbc).reshape(-1).expand(3).tolist()]
    if len(set(flags)) > 1:
        from gfm_ase.graph.neighbors import radius_graph

        pos = positions.detach().to("cpu", torch.float64)
        box = cell.detach().to("cpu", torch.float64)
        host_edges, host_shifts = radius_graph(pos.numpy(), box.numpy(), np.array(flags), cutoff, max_neighbors)
        edge_index = torch.as_tensor(host_edges)
        shifts = torch.as_tensor(host_shifts)
        vec = pos[edge_index[1]] - pos[edge_index[0]] + shifts @ box
        return (
            edge_index.to(positions.device),
            shifts.to(device=positions.device, dtype=positions.dtype),
            vec.norm(dim=1).to(positions.device),
        )
    pbc = flags[0]
    from vesin_torch import NeighborList

    if positions.shape[0] == 0:
        raise StructureError("empty structure (no atoms)")
    if not bool(torch.isfinite(positions).all()):
        raise StructureError("positions contain NaN or inf")
    if not bool(torch.isfinite(cell).all()):
        raise StructureError("cell contains NaN or inf")
    if pbc:
        if abs(float(torch.linalg.det(cell.double()))) < 1e-8:
            raise StructureError("the cell is singular but the structure is periodic")
        box = cell
    else:
        box = torch.zeros_like(cell)
    pos64 = positions.detach().to(torch.float64)
    nl = NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s, d = nl.compute(pos64, box.detach().to(torch.float64), bool(pbc), "ijSd")
    i, j = i.long(), j.long()
    if max_neighbors is not None and i.numel():
        order = torch.argsort(d, stable=True)
        order = order[torch.argsort(i[order], stable=True)]  # by centre, then distance
        i, j, s, d = i[order], j[order], s[order], d[order]
        first = torch.searchsorted(i, i, right=False)
        keep = (torch.arange(i.numel(), device=i.device) - first) < max_neighbors
        i, j, s, d = i[keep], j[keep], s[keep], d[keep]
    return torch.stack([i, j]), s.to(positions.dtype), d


__all__ = ["device_radius_graph"]
