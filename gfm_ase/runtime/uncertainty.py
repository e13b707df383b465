"""Uncertainty of one head: the spread of several heads (members) that share the trunk.

The members of a head are, in this order of preference:

* its **committee** (:mod:`gfm_ase.pretraining.committee`): extra heads fitted on the frozen trunk features of the
  head's training data (bootstrap resamples), recorded in the head's ``metrics["committee"]`` and, on each member, in
  ``metrics["committee_member_of"]``; the members are ``[head, *committee]``;
* else its **family**: the other heads with the same ``family`` (e.g. several PBE datasets), committee members of
  other heads excluded; the members are ``[head, *others]`` when there are two or more.

For one structure each member h gives an energy E_h and forces F_h; the head's elemental references ``ref_h``
(fitted per dataset, they absorb constant offsets between codes) are subtracted:

    energy_std   = a_E * std_h( E_h - sum_i ref_h[Z_i] )                          (eV; population std, ddof=0)
    forces_std_i = a_F * sqrt( mean_h |F_h,i - mean_h F_h,i|^2 )                   (eV/A, per atom)

with ``a_E = a_F = 1`` for a family and the committee's calibration factors (fitted by the committee tool on the
head's validation split, recorded in ``metrics["committee"]``) for a committee. Screening reports
``energy_std / n_atoms`` (eV/atom) under ``uncertainty``; the calculator reports ``energy_std`` and ``forces_std``.
It is a *disagreement between heads* on one trunk: errors the trunk makes for every head are invisible to it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch
from ase.data import atomic_numbers

from gfm_ase.elements import MAX_Z
from gfm_ase.model.fidelity import check_one_fidelity, fidelity_condition
from gfm_ase.model.outputs import edge_vectors
from gfm_ase.model.precision import precision_info

COMMITTEE_KEY = "committee"  # head.metrics[COMMITTEE_KEY]: {"members": [...], "energy_scale", "forces_scale", ...}
MEMBER_KEY = "committee_member_of"  # member.metrics[MEMBER_KEY]: the name of the head it belongs to


def gaussian_within(k: float, dof: int) -> float:
    """P(|e| <= k sigma) for a Gaussian error e with E|e|^2 = sigma^2 spread isotropically over ``dof`` = 1 (an
    energy) or 3 (a force vector) components: what a calibrated spread gives for the fraction of errors within
    k sigma (1: 68.3 %, 95.4 %, 99.7 % at k = 1, 2, 3; 3: 60.8 %, 99.3 %, 100.0 %)."""
    if dof == 1:
        return math.erf(k / math.sqrt(2.0))
    if dof == 3:
        x = math.sqrt(3.0) * k
        return math.erf(x / math.sqrt(2.0)) - math.sqrt(2.0 / math.pi) * x * math.exp(-0.5 * x * x)
    raise ValueError(f"dof must be 1 or 3, got {dof}")


def calibration_factor(err: np.ndarray, sigma: np.ndarray, dof: int) -> float:
    """a such that the fraction of ``|err| <= a * sigma`` is the Gaussian one at one sigma (:func:`gaussian_within`);
    ``err`` are error magnitudes (eV, or per-atom force-error norms), ``sigma`` the raw spreads."""
    err, sigma = np.abs(np.asarray(err, dtype=float)), np.asarray(sigma, dtype=float)
    ok = sigma > 0
    if not ok.any():
        raise UncertaintyError("the spread is zero everywhere: nothing to calibrate")
    return float(np.quantile(err[ok] / sigma[ok], gaussian_within(1.0, dof)))


class UncertaintyError(ValueError):
    """A head without members to spread over (no committee, no family of two or more heads)."""


def committee_members(model: Any, head: str) -> list[str]:
    """The committee heads of ``head`` (empty when it has none); each must exist and name ``head`` as its owner."""
    record = model.head_config(head).metrics.get(COMMITTEE_KEY) or {}
    members = [str(m) for m in record.get("members") or []]
    for m in members:
        if m not in model.head_names:
            raise UncertaintyError(f"head {head!r}: committee member {m!r} is not a head of the model")
        if model.head_config(m).metrics.get(MEMBER_KEY) != head:
            raise UncertaintyError(
                f"head {head!r}: head {m!r} is listed as a committee member but does not "
                f"record metrics[{MEMBER_KEY!r}] = {head!r}"
            )
    return members


def is_committee_member(model: Any, name: str) -> bool:
    return model.head_config(name).metrics.get(MEMBER_KEY) is not None


def family_heads(model: Any, head: str) -> list[str]:
    """The heads sharing ``head``'s family (``head`` first; other heads' committee members excluded); empty when
    it has no family."""
    family = model.head_config(head).family
    if family is None:
        return []
    others = [
        h
        for h in model.head_names
        if h != head and model.head_config(h).family == family and not is_committee_member(model, h)
    ]
    return [head, *others]


def member_heads(model: Any, head: str) -> tuple[str, list[str]]:
    """(kind, members) for ``head``: ("committee", [head, *committee]), ("family", [head, *others]) or
    ("none", [])."""
    committee = committee_members(model, head)
    if committee:
        return "committee", [head, *committee]
    family = family_heads(model, head)
    if len(family) >= 2:
        return "family", family
    return "none", []


class Spread:
    """The spread of ``heads`` (``heads[0]`` is the evaluated head) with calibration factors ``energy_scale`` and
    ``forces_scale``; see the module docstring for the definition."""

    def __init__(
        self, model: Any, heads: list[str], kind: str = "family", energy_scale: float = 1.0, forces_scale: float = 1.0
    ):
        if len(heads) < 2:
            raise UncertaintyError(f"a spread needs two or more heads, got {list(heads)}")
        self.heads = list(heads)
        self.kind = kind
        self.energy_scale = float(energy_scale)
        self.forces_scale = float(forces_scale)
        self.refs = np.zeros((len(self.heads), MAX_Z))
        for k, h in enumerate(self.heads):
            for sym, e in model.head_config(h).reference_energies.items():
                self.refs[k, atomic_numbers[sym]] = float(e)

    @classmethod
    def for_head(cls, model: Any, head: str) -> "Spread":
        """The spread of ``head``'s committee, else of its family; :class:`UncertaintyError` when it has neither."""
        kind, heads = member_heads(model, head)
        if kind == "none":
            raise UncertaintyError(
                f"head {head!r} has no committee and no family of two or more heads, so it gives no uncertainty; "
                "add a committee with `python -m gfm_ase.pretraining.committee MODEL --config CONFIG "
                f"--head {head} -o OUT`"
            )
        scales: dict = {}
        if kind == "committee":
            record = model.head_config(head).metrics[COMMITTEE_KEY]
            scales = {k: float(record.get(k, 1.0)) for k in ("energy_scale", "forces_scale")}
        return cls(model, heads, kind, **scales)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "heads": self.heads,
            "energy_scale": self.energy_scale,
            "forces_scale": self.forces_scale,
        }

    # --- the definition (numpy, float64) ------------------------------------------------------------------------
    def reference_sums(self, numbers: np.ndarray, batch: np.ndarray, n_graphs: int) -> np.ndarray:
        """sum_i ref_h[Z_i] per structure and member [B, H] (eV)."""
        return np.stack(
            [np.bincount(batch, weights=self.refs[k][numbers], minlength=n_graphs) for k in range(len(self.heads))],
            axis=1,
        )

    def energy_std(self, head_energies: np.ndarray, numbers: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """head_energies [B, H] (eV) of :attr:`heads`, numbers/batch [N] -> energy_std [B] (eV)."""
        head_energies = np.asarray(head_energies, dtype=np.float64)
        referenced = head_energies - self.reference_sums(numbers, batch, head_energies.shape[0])
        return self.energy_scale * referenced.std(axis=1)

    def forces_std(self, member_forces: np.ndarray) -> np.ndarray:
        """member_forces [H, N, 3] (eV/A) of :attr:`heads` -> forces_std [N] (eV/A)."""
        f = np.asarray(member_forces, dtype=np.float64)
        dev = f - f.mean(axis=0, keepdims=True)
        return self.forces_scale * np.sqrt((dev**2).sum(axis=-1).mean(axis=0))

    # --- evaluation ---------------------------------------------------------------------------------------------
    def evaluate(self, model: Any, batch: Any, precision: str) -> dict[str, np.ndarray]:
        """``energy_std`` [B] (eV) and ``forces_std`` [N] (eV/A) of a batch (on the model's device)."""
        energies, forces = member_outputs(model, batch, self.heads, precision)
        numbers = batch.numbers.cpu().numpy()
        index = batch.batch.cpu().numpy()
        return {"energy_std": self.energy_std(energies, numbers, index), "forces_std": self.forces_std(forces)}


def member_outputs(model: Any, batch: Any, heads: list[str], precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Energies [B, H] (eV, float64, without any fixed pair term: it is the same for every head and cancels in a
    spread) and forces [H, N, 3] (eV/A) of ``heads`` from one trunk pass and one backward pass per head."""
    net = model.module if hasattr(model, "module") else model
    autocast_dtype = precision_info(precision).autocast_dtype
    positions = batch.positions.detach().requires_grad_(True)
    with torch.enable_grad():
        vec = edge_vectors(batch, positions, batch.cell)
        ctx = (
            torch.autocast(device_type=positions.device.type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        # members evaluate at one fidelity (refused otherwise: one pass cannot serve them), that of the first head
        check_one_fidelity(net, list(heads))
        condition = fidelity_condition(net, batch, heads[0])
        with ctx:
            s = net.features(batch.numbers, batch.edge_index, vec, batch.batch, batch.num_graphs, condition=condition)
        if autocast_dtype is not None:
            s = s.float()
        e_atom = net.all_head_energies(s, batch.numbers, list(heads)).to(positions.dtype)  # [N, H]
        forces = []
        for k in range(len(heads)):
            (g,) = torch.autograd.grad(
                e_atom[:, k].sum(), positions, retain_graph=k < len(heads) - 1, allow_unused=True
            )
            forces.append(-g if g is not None else torch.zeros_like(positions))
    index = batch.batch.cpu().numpy()
    per_atom = e_atom.detach().to("cpu", torch.float64).numpy()
    energies = np.stack(
        [np.bincount(index, weights=per_atom[:, k], minlength=batch.num_graphs) for k in range(len(heads))], axis=1
    )
    return energies, torch.stack(forces).detach().to("cpu", torch.float64).numpy()


__all__ = [
    "COMMITTEE_KEY",
    "MEMBER_KEY",
    "Spread",
    "UncertaintyError",
    "calibration_factor",
    "committee_members",
    "family_heads",
    "gaussian_within",
    "is_committee_member",
    "member_heads",
    "member_outputs",
]
