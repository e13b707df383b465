"""Batched predictions of energy, forces and stress for labelled structures, through the screening engine
(:class:`gfm_ase.screening.Screener`: the runtime's model loading, device, precision and head selection, the
atom/edge batch budget, the geometry and element-coverage checks), in chunks so that memory stays bounded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, cast

import numpy as np

from gfm_ase.data.record import StructureRecord
from gfm_ase.screening.engine import Screener
from gfm_ase.screening.readers import InputStructure
from gfm_ase.screening.rows import split_per_atom

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel


class PredictionError(ValueError):
    """A structure the model cannot evaluate (elements outside the head, overlapping atoms, ...)."""


class BatchPredictor:
    """Predictions of one head for many records; keyword arguments go to :class:`Screener` (device, dtype,
    max_atoms, allow_unknown_elements, min_distance_factor, ...). dispersion: None or a DFT-D3 variant added to
    every prediction (:mod:`gfm_ase.dispersion`, as ``GFMCalculator(dispersion=...)``; the screening engine adds
    it, ``Screener(dispersion=...)``)."""

    def __init__(
        self,
        model: str | Path | GFMModel | None = None,
        head: str | None = None,
        *,
        chunk: int = 512,
        dispersion: str | None = None,
        **screener_options: Any,
    ) -> None:
        self.screener = Screener(
            model, head, properties=("forces", "stress"), uncertainty=False, dispersion=dispersion, **screener_options
        )
        self.dispersion = self.screener.dispersion
        self.chunk = max(1, int(chunk))

    @property
    def head(self) -> str:
        return self.screener.head

    def predict(self, records: list[StructureRecord]) -> list[dict]:
        """``{"energy", "forces", and "stress" where the cell is periodic with a volume}`` per record, in order.
        Raises :class:`PredictionError` naming the first record that could not be evaluated."""
        if not records:
            return []
        items = [
            # a record's cell and pbc are arrays once it is built (validated or taken from the store's columns)
            InputStructure(
                id=str(k),
                positions=r.positions,
                numbers=r.numbers,
                cell=cast(np.ndarray, r.cell),
                pbc=cast(np.ndarray, r.pbc),
            )
            for k, r in enumerate(records)
        ]
        block = self.screener.evaluate(items, ids=[it.id for it in items])
        bad = np.flatnonzero(block["error"] != "")
        if len(bad):
            k = int(bad[0])
            name = records[k].id or f"structure {k}"
            more = f" (and {len(bad) - 1} more in this chunk)" if len(bad) > 1 else ""
            raise PredictionError(f"{name}: cannot be evaluated: {block['error'][k]}{more}")
        forces = split_per_atom(block, "forces")
        out = []
        for k in range(len(records)):
            pred = {"energy": float(block["energy"][k]), "forces": forces[k]}
            if np.isfinite(block["stress"][k]).all():
                pred["stress"] = block["stress"][k]
            out.append(pred)
        return out

    def stream(self, items: Iterable) -> Iterator[tuple]:
        """(item, prediction) pairs, evaluated ``chunk`` items at a time; an item is a record or a tuple whose
        first element is the record (anything else in it is passed through)."""
        buf: list = []
        for item in items:
            buf.append(item)
            if len(buf) >= self.chunk:
                yield from zip(buf, self._predict_items(buf))
                buf = []
        if buf:
            yield from zip(buf, self._predict_items(buf))

    def _predict_items(self, items: list) -> list[dict]:
        return self.predict([it[0] if isinstance(it, tuple) else it for it in items])


__all__ = ["BatchPredictor", "PredictionError"]
