"""Streaming batch planner: group graphs into batches under an atom and an edge budget.

Structures arrive one by one (in input order) and leave in batches. A batch is closed when the next structure would
push it over ``max_atoms``, ``max_edges`` or the memory limit. A structure that alone exceeds the batch budget but
fits the memory limit runs in a batch of its own (or is refused with ``oversize="refuse"``); one that exceeds the
memory limit is always refused, with a message that says how much memory it would need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gfm_ase.graph.batch import AtomicGraph
from gfm_ase.screening.budget import Budget

OVERSIZE_POLICIES = ("alone", "refuse")


@dataclass
class PlannedBatch:
    graphs: list = field(default_factory=list)
    metas: list = field(default_factory=list)
    n_atoms: int = 0
    n_edges: int = 0

    def add(self, graph: AtomicGraph, meta: Any) -> None:
        self.graphs.append(graph)
        self.metas.append(meta)
        self.n_atoms += graph.n_atoms
        self.n_edges += int(graph.edge_index.shape[1])

    def __len__(self) -> int:
        return len(self.graphs)


@dataclass
class Refusal:
    meta: Any
    n_atoms: int
    message: str


class BatchPlanner:
    """``add(graph, meta)`` returns the batches (and refusals) that are complete; ``flush()`` returns the rest."""

    def __init__(self, budget: Budget, oversize: str = "alone"):
        if oversize not in OVERSIZE_POLICIES:
            raise ValueError(f"oversize must be one of {OVERSIZE_POLICIES}, got {oversize!r}")
        self.budget = budget
        self.oversize = oversize
        self._open = PlannedBatch()

    def add(self, graph: AtomicGraph, meta: Any) -> list[PlannedBatch | Refusal]:
        n, e = graph.n_atoms, int(graph.edge_index.shape[1])
        b = self.budget
        if not b.fits_memory(n, e):
            need = float(b.memory.bytes(n, e))
            return [
                Refusal(
                    meta,
                    n,
                    (
                        f"too large to evaluate: {n} atoms and {e} edges need about {need / 2**30:.2f} GiB, "
                        f"more than the memory limit of {b.memory_limit / 2**30:.2f} GiB on this device; "
                        "use a device with more memory or raise the limit (--max-memory) if it is too conservative"
                    ),
                )
            ]
        if not b.within_batch_budget(n, e):
            if self.oversize == "refuse":
                return [
                    Refusal(
                        meta,
                        n,
                        (
                            f"larger than the batch budget ({n} atoms / {e} edges > {b.max_atoms} atoms / "
                            f"{b.max_edges} edges) and oversize='refuse'; raise --max-atoms/--max-edges or use "
                            "--oversize alone"
                        ),
                    )
                ]
            alone = PlannedBatch()
            alone.add(graph, meta)
            return [alone]
        out: list[PlannedBatch | Refusal] = []
        if len(self._open) and (
            self._open.n_atoms + n > b.max_atoms
            or self._open.n_edges + e > b.max_edges
            or not b.fits_memory(self._open.n_atoms + n, self._open.n_edges + e)
        ):
            out.append(self._open)
            self._open = PlannedBatch()
        self._open.add(graph, meta)
        return out

    def flush(self) -> list[PlannedBatch]:
        if not len(self._open):
            return []
        out, self._open = [self._open], PlannedBatch()
        return out


__all__ = ["BatchPlanner", "PlannedBatch", "Refusal", "OVERSIZE_POLICIES"]
