"""Uncertainty from heads of the same level-of-theory family.

Heads whose ``family`` is the same (e.g. several PBE datasets) share the trunk but were fitted to different data.
For one structure, each head h gives an energy E_h; its own elemental references ``ref_h`` (fitted per dataset, so
they absorb constant offsets between codes and pseudopotentials) are subtracted:

    e_h = (E_h - sum_i ref_h[Z_i]) / n_atoms        (eV/atom)

and the uncertainty is the standard deviation of e_h over the family's heads (population std, ddof=0). It costs one
extra small MLP per head on the trunk features, no second model. It is a *disagreement between heads*: it grows
where the datasets disagree or where some heads extrapolate, but it shares the trunk, so errors the trunk makes for
every head are invisible to it; treat it as a ranking signal, not a calibrated error bar. NaN when the head has no
family or is alone in it.
"""
from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers

from gfm_ase.elements import MAX_Z


def family_heads(model, head: str) -> list[str]:
    """The heads sharing ``head``'s family (``head`` first); empty when it has no family."""
    family = model.head_config(head).family
    if family is None:
        return []
    others = [h for h in model.head_names if h != head and model.head_config(h).family == family]
    return [head, *others]


class FamilySpread:
    def __init__(self, model, heads: list[str]):
        self.heads = list(heads)
        self.refs = np.zeros((len(self.heads), MAX_Z))
        for k, h in enumerate(self.heads):
            for sym, e in model.head_config(h).reference_energies.items():
                self.refs[k, atomic_numbers[sym]] = float(e)

    def __call__(self, head_energies: np.ndarray, numbers: np.ndarray, batch: np.ndarray,
                 n_atoms: np.ndarray) -> np.ndarray:
        """head_energies [B, H] (eV), numbers/batch [N], n_atoms [B] -> std of referenced eV/atom [B]."""
        n_graphs = len(n_atoms)
        ref = np.stack([np.bincount(batch, weights=self.refs[k][numbers], minlength=n_graphs)
                        for k in range(len(self.heads))], axis=1)
        per_atom = (head_energies - ref) / np.maximum(n_atoms, 1)[:, None]
        return per_atom.std(axis=1)


__all__ = ["family_heads", "FamilySpread"]
