"""The per-edge radial input of every PaiNN layer, ``[rbf(r) * env(r), env(r)]`` [E, R + 1], without autograd's
intermediates.

Through plain autograd the Bessel basis and the envelope keep ~3 [E, R] tensors (``freq * r``, ``sin``, ``rbf``)
for the backward pass and make ~4 more while it runs, more than the lean message step keeps per edge
(gfm_ase/model/message.py). :class:`_RadialFeatures` keeps only ``r`` and computes the derivative in closed form,
in edge chunks:

    rbf_k = c sin(f_k r) / r,    d rbf_k / dr = c (f_k cos(f_k r) / r - sin(f_k r) / r^2)
    env   = 1 - a d^p + b d^(p+1) - e d^(p+2),  d = r / r_cut,  d env / dr = (-a p d^(p-1) + b (p+1) d^p
            - e (p+2) d^(p+1)) / r_cut   (both zero for d >= 1)

The backward pass is written in differentiable operations (double backward for training forces; unchunked then).
Same numbers as the modules' own ``rbf(r) * env(r)`` (tests/test_core_message_step.py).
"""

from __future__ import annotations

from typing import Any

import torch

from gfm_ase.model.message import edge_chunk
from gfm_ase.model.radial import BesselBasis, PolynomialEnvelope


def radial_features(
    r: torch.Tensor, rbf: BesselBasis, envelope: PolynomialEnvelope, lean: bool = True, chunk: int | None = None
) -> torch.Tensor:
    """``[rbf(r) * env(r), env(r)]`` [E, R + 1]; ``lean=False``: through the modules with plain autograd.
    chunk: edges per chunk (None: the lean message step's default for the device)."""
    if not lean:
        env = envelope(r).unsqueeze(-1)
        return torch.cat([rbf(r) * env, env], dim=-1)
    if chunk is None:
        chunk = edge_chunk(r.device)
    return _RadialFeatures.apply(r, rbf.freq.to(r.dtype), rbf.prefactor, envelope.cutoff, envelope.p, int(chunk))


def _envelope(d: torch.Tensor, p: int, derivative: bool) -> torch.Tensor:
    a, b, e = (p + 1) * (p + 2) / 2, p * (p + 2), p * (p + 1) / 2
    if derivative:  # d env / d d
        u = -a * p * d ** (p - 1) + b * (p + 1) * d**p - e * (p + 2) * d ** (p + 1)
    else:
        u = 1.0 - a * d**p + b * d ** (p + 1) - e * d ** (p + 2)
    return torch.where(d < 1.0, u, torch.zeros_like(u))


def _basis(
    r: torch.Tensor, freq: torch.Tensor, prefactor: float, cutoff: float, p: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rbf [C, R], sin, cos of f r, env [C, 1], d env / dr [C, 1]) of a chunk of distances r [C]."""
    fr = freq * r.unsqueeze(-1)
    sin = torch.sin(fr)
    d = (r / cutoff).unsqueeze(-1)
    return prefactor * sin / r.unsqueeze(-1), sin, fr, _envelope(d, p, False), _envelope(d, p, True) / cutoff


class _RadialFeatures(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, r: torch.Tensor, freq: torch.Tensor, prefactor: float, cutoff: float, p: int, chunk: int
    ) -> torch.Tensor:
        e, nr = r.shape[0], freq.shape[0]
        out = torch.empty(e, nr + 1, dtype=r.dtype, device=r.device)
        for a in range(0, e, chunk):
            rc = r[a : a + chunk]
            rbf, _, _, env, _ = _basis(rc, freq, prefactor, cutoff, p)
            torch.mul(rbf, env, out=out[a : a + chunk, :nr])
            out[a : a + chunk, nr:] = env
        ctx.save_for_backward(r, freq)
        ctx.consts = (prefactor, cutoff, p, chunk)
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        r, freq = ctx.saved_tensors
        prefactor, cutoff, p, chunk = ctx.consts
        recording = torch.is_grad_enabled()  # create_graph=True: differentiable, one piece
        e, nr = r.shape[0], freq.shape[0]
        if recording:
            chunk = max(e, 1)
        g_r: torch.Tensor | None = None if recording else torch.empty_like(r)
        for a in range(0, max(e, 1), chunk):
            rc, gc = r[a : a + chunk], g[a : a + chunk]
            rbf, sin, fr, env, denv = _basis(rc, freq, prefactor, cutoff, p)
            inv_r = 1.0 / rc.unsqueeze(-1)
            drbf = prefactor * (freq * torch.cos(fr) - sin * inv_r) * inv_r
            gr = (gc[:, :nr] * (drbf * env + rbf * denv)).sum(-1) + gc[:, nr] * denv.squeeze(-1)
            if g_r is None or recording:
                g_r = gr
            else:
                g_r[a : a + chunk] = gr
        return g_r, None, None, None, None, None
