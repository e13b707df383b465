"""A model view whose trunk runs through ``torch.compile`` (``Screener(compile=True)``, ``gfm screen --compile``,
``GFMCalculator(compile=True)``).

The user's model is not modified: this wrapper shares its parameters and only replaces the trunk call. On the
development CPU, inductor's fused loops made energy+forces+stress 1.9x faster for batches of 8-64-atom crystals
and 1.3x for a 1,000-atom cell (docs/benchmarks.md), at a one-off compile cost of one to three minutes (cached on
disk by inductor afterwards); that pays only for long screens and MD runs, so it is off by default.
"""
from __future__ import annotations

import torch
from torch import nn


class CompiledTrunkModel(nn.Module):
    """Delegates everything :func:`gfm_ase.model.predict` needs to ``model``, with a compiled trunk."""

    def __init__(self, model, dynamic: bool = True, **compile_kwargs):
        super().__init__()
        self.inner = model
        self.compiled_trunk = torch.compile(model.trunk, dynamic=dynamic, **compile_kwargs)

    # --- what predict() and the screening engine use ----------------------------------------------------------
    def features(self, numbers, edge_index, edge_vec):
        return self.compiled_trunk(numbers, edge_index, edge_vec)

    def atomic_energies(self, s, numbers, atom_head):
        return self.inner.atomic_energies(s, numbers, atom_head)

    def all_head_energies(self, s, numbers, heads):
        return self.inner.all_head_energies(s, numbers, heads)

    @property
    def heads(self):
        return self.inner.heads

    def resolve_head(self, head):
        return self.inner.resolve_head(head)

    def head_index(self, name):
        return self.inner.head_index(name)

    def head_config(self, name):
        return self.inner.head_config(name)

    @property
    def head_names(self):
        return self.inner.head_names

    @property
    def cutoff(self):
        return self.inner.cutoff

    @property
    def max_neighbors(self):
        return self.inner.max_neighbors

    @property
    def config(self):
        return self.inner.config


__all__ = ["CompiledTrunkModel"]
