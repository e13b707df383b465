"""PaiNN trunk (Schuett, Unke, Gastegger 2021): invariant scalars s [N, F] and equivariant vectors v [N, 3, F].

Messages from neighbor j to centre i use the filter W(rbf(r_ij)) * envelope(r_ij), so they vanish smoothly at the
cutoff. Vector features are only ever combined linearly across the feature axis, scaled by invariants, or
contracted by dot products, which keeps s invariant and v equivariant under rotations (tested).

Precision: under autocast (bf16 mode) only the per-edge work - filters, products, the [edges, 3, F] vector
messages, which dominate the cost and are memory-bound - runs in the autocast dtype. Node-level work (node
states, the phi and update layers, the sums over neighbors) stays in the parameters' dtype (float32): it costs
little (N rows against ~40 N edges) and, in bf16, its rounding was most of the bf16 energy error (docs/benchmarks.md).
Outside autocast everything runs in the input dtype.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Literal, cast

import torch

from pydantic import Field
from torch import nn

from gfm_ase.config import StrictModel
from gfm_ase.elements import MAX_Z
from gfm_ase.model.message import message_step
from gfm_ase.model.radial import BesselBasis, PolynomialEnvelope
from gfm_ase.model.radial_features import radial_features
from gfm_ase.model.registry import register_trunk


class PaiNNOptions(StrictModel):
    cutoff: float = Field(5.0, gt=0.5, le=15.0)
    num_features: int = Field(128, ge=4)
    num_layers: int = Field(4, ge=1)
    num_rbf: int = Field(32, ge=2)
    envelope_p: int = Field(5, ge=2)
    max_neighbors: int | None = Field(None, ge=1)
    # "smooth": sqrt(|v|^2 + 1) - 1, analytic at v = 0 (|v|^2 / 2 there, |v| far away). "sqrt_eps": sqrt(|v|^2 + eps),
    # the classic choice, has a cusp of width sqrt(eps) at v = 0: where vector features vanish by symmetry (perfect
    # crystals) forces jump and relaxations/phonons suffer. Kept only to load models trained with it.
    vector_norm: Literal["smooth", "sqrt_eps"] = "smooth"
    vector_norm_eps: float = 1e-8


def _node_precision(x: torch.Tensor) -> AbstractContextManager[Any]:
    """Node-level layers run outside autocast, in the parameters' dtype (see the module docstring)."""
    return torch.autocast(x.device.type, enabled=False)


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


class PaiNNMessage(nn.Module):
    def __init__(self, f: int, num_rbf: int):
        super().__init__()
        self.f = f
        self.phi = _mlp(f, f, 3 * f)
        self.filter = nn.Linear(num_rbf, 3 * f)

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor,
        edge_index: torch.Tensor,
        radial: torch.Tensor,
        unit: torch.Tensor,
        first: bool = False,
        step: str = "lean",
        chunk: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """radial: ``[rbf * env, env]`` [E, num_rbf + 1], so that one GEMM gives the enveloped filter
        ``filter(rbf) * env = (rbf * env) @ W^T + env * b`` (the bias vanishes at the cutoff too).

        first: v is zero (the first layer), so the ``v_j * dv_v`` term and the dv_v columns are skipped (exact).
        step: the per-edge implementation (:mod:`gfm_ase.model.message`); chunk: its edges per chunk (lean step).
        """
        f = self.f
        rows = slice(f, None) if first else slice(None)  # output rows: (dv_v,) ds, dv_r
        w = torch.cat([self.filter.weight, self.filter.bias.unsqueeze(1)], dim=1)[rows]
        with _node_precision(s):
            last = cast(nn.Linear, self.phi[2])
            hidden = self.phi[1](self.phi[0](s))
            phi = nn.functional.linear(hidden, last.weight[rows], last.bias[rows])
        return message_step(step)(s, v, phi, w, radial, unit, edge_index, f, first, chunk)


class PaiNNUpdate(nn.Module):
    def __init__(self, f: int, norm: str, eps: float):
        super().__init__()
        self.f = f
        self.smooth = norm == "smooth"
        self.eps = eps
        self.uv = nn.Linear(f, f, bias=False)
        self.vv = nn.Linear(f, f, bias=False)
        self.mlp = _mlp(2 * f, f, 3 * f)

    def forward(self, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _node_precision(s):
            return self._update(s, v)

    def _update(self, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.uv(v)
        w = self.vv(v)
        sq = (w * w).sum(dim=1)
        w_norm = torch.sqrt(sq + 1.0) - 1.0 if self.smooth else torch.sqrt(sq + self.eps)
        a = self.mlp(torch.cat([s, w_norm], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, self.f, dim=-1)
        dv = u * a_vv.unsqueeze(1)
        ds = a_ss + a_sv * (u * w).sum(dim=1)
        return s + ds, v + dv


@register_trunk("painn", PaiNNOptions)
class PaiNN(nn.Module):
    """``message_step`` names the per-edge implementation (:data:`gfm_ase.model.message.MESSAGE_STEPS`): "lean"
    (default; recomputes per-edge products in the backward pass instead of keeping them) or "plain" (ordinary
    autograd); both give the same numbers. ``edge_chunk``: edges per chunk of the lean step (None: per device).
    Under ``torch.compile`` the plain step is traced (inductor fuses it; the lean step's chunk loop is Python).
    """

    message_step: str = "lean"
    edge_chunk: int | None = None
    accepts_condition = True  # the fidelity embedding's per-atom vector is added to the initial scalars

    def __init__(self, opts: PaiNNOptions):
        super().__init__()
        self.options = opts
        self.cutoff = opts.cutoff
        self.max_neighbors = opts.max_neighbors
        self.num_features = opts.num_features
        f = opts.num_features
        self.embedding = nn.Embedding(MAX_Z, f)
        self.rbf = BesselBasis(opts.cutoff, opts.num_rbf)
        self.envelope = PolynomialEnvelope(opts.cutoff, opts.envelope_p)
        self.messages = nn.ModuleList(PaiNNMessage(f, opts.num_rbf) for _ in range(opts.num_layers))
        self.updates = nn.ModuleList(
            PaiNNUpdate(f, opts.vector_norm, opts.vector_norm_eps) for _ in range(opts.num_layers)
        )

    def forward(
        self,
        numbers: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vec: torch.Tensor,
        return_vectors: bool = False,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        r = torch.linalg.norm(edge_vec, dim=-1)
        unit = edge_vec / r.unsqueeze(-1)
        step = "plain" if torch.compiler.is_compiling() else self.message_step
        radial = radial_features(r, self.rbf, self.envelope, lean=step == "lean", chunk=self.edge_chunk)
        dev = edge_vec.device.type
        if torch.is_autocast_enabled(dev):  # geometry in full precision, per-edge work in the autocast dtype
            unit = unit.to(torch.get_autocast_dtype(dev))
        s = self.embedding(numbers).to(edge_vec.dtype)
        if condition is not None:  # per-atom fidelity vector (gfm_ase.model.fidelity), constant per structure
            s = s + condition.to(s.dtype)
        v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype, device=s.device)
        for k, (msg, upd) in enumerate(zip(self.messages, self.updates)):
            s, v = msg(s, v, edge_index, radial, unit, first=k == 0, step=step, chunk=self.edge_chunk)
            s, v = upd(s, v)
        return (s, v) if return_vectors else s
