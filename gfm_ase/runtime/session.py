"""InferenceRuntime: one head of one model, loaded once, on one device in one precision, ready to evaluate
batches. The ASE calculator, the screening engine, the validation suites (through the calculator) and the
benchmarks all evaluate models through it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from gfm_ase.config import HeadConfig
from gfm_ase.graph import locality
from gfm_ase.graph.batch import AtomicGraph, GraphBatch, collate, graph_from_atoms
from gfm_ase.model.gfm import GFMModel
from gfm_ase.model.precision import precision_info
from gfm_ase.runtime.compile import compile_runner
from gfm_ase.runtime.device import resolve_device
from gfm_ase.runtime.evaluate import evaluate
from gfm_ase.runtime.heads import HeadSelection
from gfm_ase.runtime.loading import load
from gfm_ase.runtime.router import AUTO, HeadRouter, RouteDecision, RouterError, load_router


class InferenceRuntime:
    """Evaluate one head of a gfm-ase model.

    model: built-in name (None: :func:`gfm_ase.hub.default_model`), model directory, training output directory,
      URL with ``#sha256=...``, or an in-memory :class:`GFMModel` (moved in place, or deep-copied first with
      ``copy_model``).
    head: the head to use; may be omitted only for single-head models. ``"auto"``: the model's router
      (:mod:`gfm_ase.runtime.router`) picks the head per structure (:meth:`route`); :attr:`head` is then ``"auto"``
      and :meth:`evaluate` needs the routed head.
    device: "auto" (CUDA when available) or any ``torch.device`` string.
    dtype: a precision of :data:`gfm_ase.model.precision.PRECISIONS`.
    compile: run the trunk through ``torch.compile`` (True, or a dict of its keyword arguments).
    identify: record :attr:`model_id` (file or weight checksums) for resume checks.
    reorder_min_atoms: batches with at least this many atoms are evaluated with their atoms in spatial (Morton)
      order and the per-atom results put back (:mod:`gfm_ase.graph.locality`: same results, cache-friendly gathers
      in large cells); None never reorders.
    """

    def __init__(
        self,
        model: str | Path | GFMModel | None = None,
        head: str | None = None,
        *,
        device: str | torch.device = "auto",
        dtype: str = "float32",
        compile: bool | dict[str, Any] = False,
        copy_model: bool = False,
        identify: bool = False,
        reorder_min_atoms: int | None = locality.MIN_ATOMS,
    ):
        info = precision_info(dtype, what="dtype")
        self.precision: str = info.name
        self.model_dtype: torch.dtype = info.parameter_dtype
        self.device: torch.device = resolve_device(device)
        loaded = load(model, self.device, self.model_dtype, copy_model=copy_model, identify=identify)
        self.model: GFMModel = loaded.model
        self.model_path: Path | None = loaded.path
        self.model_id: dict | None = loaded.model_id
        self.runner: torch.nn.Module = compile_runner(self.model, compile)  # what predict() evaluates
        self.compiled: bool = bool(compile)
        self.reorder_min_atoms = reorder_min_atoms
        self.router: HeadRouter | None = None
        self._selections: dict[str, HeadSelection] = {}
        if head == AUTO and AUTO not in self.model.head_names:
            self.router = load_router(self.model, self.model_path)  # None: single head, nothing to route
            self.selection: HeadSelection | None = None if self.router else HeadSelection(self.model, None)
        else:
            if head is not None and head not in self.model.head_names:
                raise ValueError(
                    f"unknown head {head!r}; available heads: {self.model.head_names}, or 'auto' "
                    "(the model's router picks one per structure)"
                )
            self.selection = HeadSelection(self.model, head)

    # --- head ---------------------------------------------------------------------------------------------------
    @property
    def head(self) -> str:
        """The head, or ``"auto"`` when the router picks one per structure."""
        return AUTO if self.selection is None else self.selection.name

    @property
    def routed(self) -> bool:
        return self.selection is None

    def _fixed(self) -> HeadSelection:
        if self.selection is None:
            raise RouterError(
                "head='auto' picks the head per structure; ask runtime.route(...) or runtime.selection_for(head)"
            )
        return self.selection

    @property
    def head_config(self) -> HeadConfig:
        return self._fixed().config

    @property
    def allowed_numbers(self) -> set[int]:
        return self._fixed().allowed_numbers

    def selection_for(self, head: str) -> HeadSelection:
        """The :class:`HeadSelection` of one head of the model (cached)."""
        if head not in self._selections:
            self._selections[head] = HeadSelection(self.model, head)
        return self._selections[head]

    def route(self, numbers: Sequence[int], pbc: Any, cell: Any) -> RouteDecision:
        """The head of one structure: the router's choice with ``head="auto"``, else the fixed head."""
        if self.router is None:
            sel = self._fixed()
            return RouteDecision(sel.name, {}, not sel.unknown_elements(numbers))
        return self.router.route(numbers, pbc, cell)

    def coverage_error(self, numbers: Iterable[int], head: str | None = None) -> str | None:
        """A message naming elements of ``numbers`` the head (``head``, else the fixed one) was not trained on;
        None when all are covered."""
        return (self._fixed() if head is None else self.selection_for(head)).coverage_error(numbers)

    # --- graphs ---------------------------------------------------------------------------------------------------
    def collate(self, graphs: Sequence[AtomicGraph]) -> GraphBatch:
        """A batch of ``graphs`` in the model's dtype, on the host (move it with ``.to(runtime.device)``)."""
        return collate(list(graphs), dtype=self.model_dtype)

    def batch_from_atoms(self, atoms_list: Sequence, min_distance: float | None = None) -> GraphBatch:
        """Radius graphs of ``ase.Atoms`` objects with the model's cutoff, batched on the runtime's device."""
        graphs = [
            graph_from_atoms(a, self.model.cutoff, max_neighbors=self.model.max_neighbors, min_distance=min_distance)
            for a in atoms_list
        ]
        return self.collate(graphs).to(self.device)

    # --- evaluation -------------------------------------------------------------------------------------------------
    def evaluate(
        self,
        batch: GraphBatch,
        *,
        forces: bool = True,
        stress: bool = False,
        extra_heads: list[str] | None = None,
        head: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Energies, per-atom energies and, when asked, forces and stress of ``batch`` (already on the device), with
        ``head`` (default: the runtime's fixed head; with ``head="auto"`` a routed head must be given)."""
        perm = None
        if self.reorder_min_atoms is not None and batch.num_atoms >= self.reorder_min_atoms:
            perm = locality.spatial_order(batch, bin_size=self.model.cutoff)
            batch = locality.reorder(batch, perm)
        out = evaluate(
            self.runner,
            batch,
            self._fixed().name if head is None else head,
            precision=self.precision,
            forces=forces,
            stress=stress,
            extra_heads=extra_heads,
        )
        if perm is not None:
            for key in ("energies", "forces"):
                if key in out:
                    out[key] = locality.unpermute(out[key], perm)
        return out


__all__ = ["InferenceRuntime"]
