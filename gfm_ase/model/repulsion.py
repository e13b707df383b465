"""A fixed short-range pair repulsion (ZBL) added to every head's energy.

Message-passing models learn nothing about distances shorter than the closest contact in their training data, and
extrapolate there: without a prior the energy of two atoms pushed together can go *down* (gfm-base v0: O-O, Cu-O and
Ni-O dimers lower at 0.3 than at 0.8 times the covalent-radius sum), and high-temperature MD falls into that hole.
The Ziegler-Biersack-Littmark universal screened nuclear repulsion gives the wall physics puts there:

    V(r) = Z_i Z_j e^2 / (4 pi eps0 r) * phi(r / a),   a = 0.8854 a_0 / (Z_i^0.23 + Z_j^0.23),
    phi(x) = 0.18175 e^{-3.19980 x} + 0.50986 e^{-0.94229 x} + 0.28022 e^{-0.40290 x} + 0.02817 e^{-0.20162 x}

(J. F. Ziegler, J. P. Biersack, U. Littmark, *The Stopping and Range of Ions in Solids*, Pergamon 1985). It is
switched off smoothly at ``r_max = cutoff_factor * (r_cov,i + r_cov,j)`` (ASE's covalent radii, Cordero et al.
2008) by the polynomial envelope of DimeNet (Gasteiger et al. 2020, p = 6), so at and beyond ordinary bond lengths it
adds little, and the learned part of the model is trained on the residual ``E_label - E_ZBL`` ("trained in": the
pretrainer evaluates the same :func:`gfm_ase.model.outputs.predict`). The term has no parameters.

Units: energies in eV, distances in A. Each pair's energy is split equally between its two atoms, so per-atom
energies still sum to the total.
"""

from __future__ import annotations

import torch
from ase.data import covalent_radii
from ase.units import Bohr, Hartree
from torch import nn

from gfm_ase.config import PairRepulsionConfig

# e^2 / (4 pi eps0) in eV A (= Hartree * Bohr)
COULOMB_EV_A = Hartree * Bohr
ZBL_SCREENING_LENGTH = 0.8854 * Bohr  # A
ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)


def polynomial_envelope(x: torch.Tensor, p: int = 6) -> torch.Tensor:
    """1 at x = 0, 0 with vanishing first and second derivatives at x >= 1 (DimeNet's envelope)."""
    a = -(p + 1) * (p + 2) / 2.0
    b = float(p * (p + 2))
    c = -p * (p + 1) / 2.0
    xp = x.pow(p)
    env = 1.0 + a * xp + b * xp * x + c * xp * x * x
    return torch.where(x < 1.0, env, torch.zeros_like(env))


def zbl_energy(z_i: torch.Tensor, z_j: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Unswitched ZBL pair energy (eV) of atoms with atomic numbers ``z_i``, ``z_j`` at distance ``r`` (A)."""
    zi = z_i.to(r.dtype)
    zj = z_j.to(r.dtype)
    a = ZBL_SCREENING_LENGTH / (zi.pow(0.23) + zj.pow(0.23))
    x = r / a
    phi = sum(c * torch.exp(-e * x) for c, e in zip(ZBL_COEFFICIENTS, ZBL_EXPONENTS))
    return COULOMB_EV_A * zi * zj / r * phi


class ZBLRepulsion(nn.Module):
    """Per-atom ZBL energies from the model's directed edge list (each pair appears once in each direction)."""

    covalent_radii: torch.Tensor

    def __init__(self, config: PairRepulsionConfig):
        super().__init__()
        self.config = config
        # not part of the state dict: a constant of nature, not a weight
        self.register_buffer("covalent_radii", torch.tensor(covalent_radii, dtype=torch.float64), persistent=False)

    def switch_radius(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        rc = self.covalent_radii
        return self.config.cutoff_factor * (rc[z_i] + rc[z_j])

    def pair_energy(self, z_i: torch.Tensor, z_j: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Switched pair energy (eV) at distance ``r`` (A)."""
        r_max = self.switch_radius(z_i, z_j).to(r.dtype)
        return zbl_energy(z_i, z_j, r) * polynomial_envelope(r / r_max, self.config.envelope_exponent)

    def forward(self, numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        """Per-atom energies [N] (half of each pair's energy to each atom: every directed edge gives half)."""
        i, j = edge_index[0], edge_index[1]
        z_i, z_j = numbers[i], numbers[j]
        r = torch.linalg.vector_norm(edge_vec, dim=-1)
        r_max = self.switch_radius(z_i, z_j).to(r.dtype)
        # only pairs inside the switch radius cost anything (r > 0 there: the geometry sanity check refuses overlaps)
        near = torch.nonzero(r < r_max).squeeze(1)
        e_pair = self.pair_energy(z_i[near], z_j[near], r[near])
        return torch.zeros(numbers.shape[0], dtype=r.dtype, device=r.device).index_add_(0, i[near], 0.5 * e_pair)


def build_repulsion(config: PairRepulsionConfig | None) -> ZBLRepulsion | None:
    """The model's pair term for its config (None: no pair term)."""
    if config is None:
        return None
    return ZBLRepulsion(config)
