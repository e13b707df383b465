"""Fidelity embedding: one learned vector per label fidelity, added to every atom's initial trunk features.

A model with ``fidelities`` (:class:`gfm_ase.config.ModelArchitecture`) trains datasets of different fidelity of
one level of theory (real DFT and a surrogate of it, two codes' PBE) through one head while the trunk tells them
apart: each structure carries the index of its fidelity (``GraphBatch.fidelity``, set from the dataset by the
trainer), each head names the fidelity it evaluates at (``HeadConfig.fidelity``), and a structure without an
explicit fidelity (-1, every structure a calculator or screen builds) gets its head's. A head without a fidelity,
and a structure whose fidelity is -1 under such a head, get no vector (row 0 of the table, zero and never trained).

The vectors start at zero: a model is unchanged by adding the embedding (a warm start from a model without one
begins where that model was), and training moves each fidelity's vector away only as far as its data asks.
The vector is constant per structure, so invariances, extensivity and forces by autograd are untouched. The
table is an embedding (``fidelity.embedding.weight``): no weight decay, like the element embedding; fine-tuning
treats it as part of the trunk (it trains when the trunk trains).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gfm_ase.graph.batch import GraphBatch


class FidelityEmbedding(nn.Module):
    """``len(names)`` learned vectors of width ``num_features`` (plus the zero row 0 for "no fidelity")."""

    def __init__(self, names: list[str], num_features: int) -> None:
        super().__init__()
        self.names = list(names)
        self.embedding = nn.Embedding(len(self.names) + 1, num_features, padding_idx=0)
        nn.init.zeros_(self.embedding.weight)

    def forward(self, fidelity: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Per-atom condition [N, F] from per-structure fidelity indices [B] (-1: none) and the atoms' graph index."""
        return self.embedding(fidelity + 1)[batch]


def structure_fidelities(net: Any, batch: GraphBatch, head: str | None) -> torch.Tensor:
    """Per-structure fidelity index [B] (-1: none): ``batch.fidelity`` where it is set (>= 0), else the fidelity of
    the structure's head (``head`` for the whole batch, or ``batch.head`` per structure)."""
    if head is not None:
        index = net.config.head_fidelity_index(net.resolve_head(head))
        default = torch.full((batch.num_graphs,), index, dtype=torch.long, device=batch.head.device)
    else:
        names = [h.name for h in net.config.heads]
        per_head = torch.tensor([net.config.head_fidelity_index(n) for n in names], device=batch.head.device)
        default = per_head[batch.head]
    if batch.fidelity is None:
        return default
    return torch.where(batch.fidelity >= 0, batch.fidelity, default)


def fidelity_condition(net: Any, batch: GraphBatch, head: str | None) -> torch.Tensor | None:
    """The trunk's per-atom condition [N, F] for ``batch`` evaluated with ``head`` (None: ``batch.head``), or None
    for a model without fidelities."""
    emb = getattr(net, "fidelity", None)
    if emb is None:
        return None
    out: torch.Tensor = emb(structure_fidelities(net, batch, head), batch.batch)
    return out


def check_one_fidelity(net: Any, heads: list[str]) -> None:
    """ValueError when ``heads`` of a model with fidelities evaluate at different ones: quantities of several heads
    from one trunk pass (extra head energies, a committee's spread) need one fidelity."""
    fids = {net.config.head(h).fidelity for h in heads}
    if getattr(net, "fidelity", None) is not None and len(fids) > 1:
        raise ValueError(
            f"heads {list(heads)} evaluate at different fidelities {sorted(map(str, fids))}; "
            "one trunk pass cannot give them together"
        )


__all__ = ["FidelityEmbedding", "check_one_fidelity", "fidelity_condition", "structure_fidelities"]
