"""Energy heads: one per level of theory, each with its own elemental reference energies and scale/shift."""

from __future__ import annotations

import torch
from ase.data import atomic_numbers
from torch import nn

from gfm_ase.config import HeadConfig
from gfm_ase.elements import MAX_Z


class EnergyHead(nn.Module):
    """atomic energy = scale * MLP(s_i) + shift + E_ref[Z_i].

    ``scale``, ``shift`` and ``E_ref`` are constants of the head (fitted on its training split before training and
    stored in its JSON metadata), not trained parameters.
    """

    scale: torch.Tensor
    shift: torch.Tensor
    reference: torch.Tensor

    def __init__(self, cfg: HeadConfig, num_features: int):
        super().__init__()
        self.name = cfg.name
        sizes = [num_features, *cfg.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("scale", torch.tensor(float(cfg.scale), dtype=torch.float64), persistent=False)
        self.register_buffer("shift", torch.tensor(float(cfg.shift), dtype=torch.float64), persistent=False)
        ref = torch.zeros(MAX_Z, dtype=torch.float64)
        for sym, e in cfg.reference_energies.items():
            ref[atomic_numbers[sym]] = float(e)
        self.register_buffer("reference", ref, persistent=False)

    def set_constants(self, cfg: HeadConfig) -> None:
        """Refresh scale/shift/references from the (edited) config, keeping the buffers' device and dtype."""
        self.scale.fill_(float(cfg.scale))
        self.shift.fill_(float(cfg.shift))
        self.reference.zero_()
        for sym, e in cfg.reference_energies.items():
            self.reference[atomic_numbers[sym]] = float(e)

    def forward(self, s: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        out = self.mlp(s).squeeze(-1).to(self.reference.dtype)
        return out * self.scale + self.shift + self.reference[numbers]
