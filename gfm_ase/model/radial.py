"""Radial basis and smooth cutoff envelope."""

from __future__ import annotations

import math

import torch
from torch import nn


class PolynomialEnvelope(nn.Module):
    """u(d) = 1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2), d = r / r_cut; zero beyond the cutoff.

    Value, first and second derivative vanish at r_cut (Klicpera et al., DimeNet), so energies and forces are
    smooth when atoms cross the cutoff.
    """

    def __init__(self, cutoff: float, p: int = 5):
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        p = self.p
        d = r / self.cutoff
        u = 1.0 - (p + 1) * (p + 2) / 2 * d**p + p * (p + 2) * d ** (p + 1) - p * (p + 1) / 2 * d ** (p + 2)
        return torch.where(d < 1.0, u, torch.zeros_like(u))


class BesselBasis(nn.Module):
    """sqrt(2/r_c) sin(n pi r / r_c) / r, n = 1..num_basis."""

    freq: torch.Tensor

    def __init__(self, cutoff: float, num_basis: int = 20):
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer(
            "freq", torch.arange(1, num_basis + 1, dtype=torch.float64) * math.pi / cutoff, persistent=False
        )
        self.prefactor = math.sqrt(2.0 / cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.freq.to(r.dtype) * r) / r
