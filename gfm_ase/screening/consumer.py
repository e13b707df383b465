"""The consumer side of the screening pipeline: a planned, collated batch -> the model (through the runtime) -> one
block of result rows (energy, energy per atom, the spread, forces, stress, per-atom energies, the D3 term).

It runs in the calling thread while the producer (:mod:`gfm_ase.screening.producer`) builds the next batches.
Model loading, device, precision and head selection are the runtime's (:mod:`gfm_ase.runtime`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gfm_ase.dispersion import D3Dispersion, DispersionResult
from gfm_ase.runtime import InferenceRuntime, to_numpy
from gfm_ase.runtime.uncertainty import Spread
from gfm_ase.screening.columns import Meta, error_block
from gfm_ase.screening.planner import PlannedBatch


class ModelConsumer:
    """Evaluate batches with one head and turn the outputs into rows of ``columns``.

    spread: the head's committee or family spread with its member heads ``family`` (None: no uncertainty column);
    dispersion: the D3 term to add (computed per structure by the producer, carried in each row's :class:`Meta`).
    """

    def __init__(
        self,
        runtime: InferenceRuntime,
        columns: dict[str, tuple],
        *,
        properties: tuple[str, ...],
        spread: Spread | None,
        family: list[str],
        dispersion: D3Dispersion | None,
    ):
        self.runtime = runtime
        self.columns = columns
        self.properties = properties
        self.spread = spread
        self.family = family
        self.dispersion = dispersion
        # model outputs copied to the host: energies always, the rest only when a column needs them
        self.output_keys = (
            "energy",
            *[p for p in ("forces", "stress", "energies") if p in properties],
            *(("head_energies",) if spread is not None else ()),
        )

    def evaluate(self, planned: PlannedBatch, gb: Any) -> dict:
        """The rows of one batch (``gb``: its collated graphs on the host, as the producer made them)."""
        batch = gb.to(self.runtime.device)
        want_f = "forces" in self.properties
        want_s = "stress" in self.properties
        out = to_numpy(
            self.runtime.evaluate(
                batch, forces=want_f, stress=want_s, extra_heads=self.family if self.spread is not None else None
            ),
            keys=self.output_keys,
        )
        metas = planned.metas
        n_atoms = batch.n_atoms.cpu().numpy()
        block = error_block(self.columns, metas, n_atoms, [""] * len(metas))
        energy = out["energy"]
        block["energy"] = energy
        block["energy_per_atom"] = energy / n_atoms
        if self.spread is not None:
            block["uncertainty"] = (
                self.spread.energy_std(out["head_energies"], batch.numbers.cpu().numpy(), batch.batch.cpu().numpy())
                / n_atoms
            )
        if want_f:
            block["forces"] = out["forces"]
        if want_s:
            stress = out["stress"]
            vol = np.abs(np.linalg.det(gb.cell.double().numpy()))
            bulk = gb.pbc.numpy().all(axis=1) & (vol > 1e-6)
            stress[~bulk] = np.nan  # stress is defined for periodic cells with a volume only
            block["stress"] = stress
        if "energies" in self.properties:
            block["energies"] = out["energies"]
        if self.dispersion is not None:
            add_dispersion(block, metas)
        return block


def add_dispersion(block: dict, metas: list[Meta]) -> None:
    """Add each structure's D3 term (computed with its graph) to the model's outputs in ``block``."""
    terms: list[DispersionResult] = []
    for m in metas:
        if m.dispersion is None:
            raise RuntimeError(f"internal error: row {m.id!r} of a dispersion run has no D3 term")
        terms.append(m.dispersion)
    d3 = np.array([d.energy for d in terms])
    block["dispersion_energy"] = d3
    block["energy"] = block["energy"] + d3
    block["energy_per_atom"] = block["energy"] / block["n_atoms"]
    if "forces" in block:
        block["forces"] = block["forces"] + np.concatenate([d.forces for d in terms])
    if "energies" in block:
        block["energies"] = block["energies"] + np.concatenate([d.energies for d in terms])
    if "stress" in block:
        for k, d in enumerate(terms):  # bulk rows; the others have no stress (NaN) and keep none
            if np.isfinite(block["stress"][k]).all():
                block["stress"][k] = block["stress"][k] + d.stress


__all__ = ["ModelConsumer", "add_dispersion"]
