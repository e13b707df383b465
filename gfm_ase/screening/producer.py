"""The producer side of the screening pipeline: read units of input, check each structure, build its radius graph
(and its D3 term), plan batches under the budget, collate them, and queue them for the model.

It runs in a background thread (with ``workers`` graph-building threads under it: the neighbor search, vesin,
releases the GIL), so graph building for the next batches overlaps with the model evaluation of this one. Every
input structure leaves as exactly one row: in a batch, or in a block of error rows (unreadable input, element not
covered by the head, bad geometry, graph or D3 failure, refused by the planner).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator

import numpy as np
from ase.data import chemical_symbols

from gfm_ase.dispersion import D3Dispersion, DispersionError, DispersionResult
from gfm_ase.graph.batch import graph_from_arrays
from gfm_ase.graph.sanity import SanityCheck
from gfm_ase.runtime import InferenceRuntime
from gfm_ase.screening.budget import Budget
from gfm_ase.screening.columns import Meta, error_block, formula_of
from gfm_ase.screening.planner import BatchPlanner, Refusal
from gfm_ase.screening.readers import InputStructure, Unit

CHUNK_UNITS = 16  # units per task of a graph-building thread

# what the producer puts on the queue: ("batch", PlannedBatch, GraphBatch), ("errors", block, None),
# ("done", None, None) at the end, ("exception", exc, None) when it failed
Message = tuple[str, Any, Any]


class GraphProducer:
    """Structures -> checked graphs -> planned, collated batches and error rows, in input order.

    runtime: the model's runtime (element coverage, cutoff, collate, device); columns: the screen's columns (for
    error rows); the other arguments are the engine's options (:class:`gfm_ase.screening.config.ScreenerConfig`).
    """

    def __init__(
        self,
        runtime: InferenceRuntime,
        columns: dict[str, tuple],
        *,
        properties: tuple[str, ...],
        allow_unknown_elements: bool,
        sanity: SanityCheck,
        min_distance: float,
        dispersion: D3Dispersion | None,
        oversize: str,
        workers: int,
    ):
        self.runtime = runtime
        self.columns = columns
        self.properties = properties
        self.allow_unknown_elements = allow_unknown_elements
        self.sanity = sanity
        self.min_distance = min_distance
        self.dispersion = dispersion
        self.oversize = oversize
        self.workers = workers

    # --- one structure ------------------------------------------------------------------------------------------
    def check(self, item: InputStructure) -> str | None:
        """Why ``item`` cannot be evaluated (atoms, atomic numbers, the head's elements), or None."""
        z = item.numbers
        if len(z) == 0:
            return "empty structure (no atoms)"
        if z.min() < 1 or z.max() >= len(chemical_symbols):
            return f"invalid atomic numbers {sorted(set(int(v) for v in z if not 0 < v < len(chemical_symbols)))}"
        if not self.allow_unknown_elements:
            msg = self.runtime.coverage_error(np.unique(z).tolist())
            if msg is not None:
                return msg + "; pass allow_unknown_elements to evaluate anyway"
        return None

    def dispersion_of(self, item: InputStructure) -> DispersionResult:
        """The D3 term of ``item`` with the gradients the properties need."""
        assert self.dispersion is not None
        want_stress = "stress" in self.properties and bool(np.asarray(item.pbc).all())
        return self.dispersion.compute(
            item.numbers,
            item.positions,
            item.cell,
            item.pbc,
            forces="forces" in self.properties,
            stress=want_stress,
            energies="energies" in self.properties,
        )

    def prepare(self, units: list[Unit], skip: set) -> list[tuple]:
        """Load units and build their graphs: (meta, n_atoms, graph or None, error message or None) per structure.

        Runs in the graph-building threads; the neighbor search (vesin) releases the GIL.
        """
        model = self.runtime.model
        cutoff, max_nb = model.cutoff, model.max_neighbors
        out: list[tuple] = []
        for unit in units:
            try:
                items = unit.load()
            except Exception as exc:  # unreadable input: one error row stands for the unit
                out.append(
                    (Meta(unit.error_id, unit.index, 0, 1), 0, None, f"cannot read: {type(exc).__name__}: {exc}")
                )
                continue
            items = [it for it in items if it.id not in skip]
            for sub, item in enumerate(items):
                meta = Meta(item.id, unit.index, sub, len(items))
                graph = None
                msg = self.check(item)
                if msg is None:
                    msg = self.sanity.problem(item.positions, item.numbers, item.cell, item.pbc)
                if msg is None:
                    meta.formula = formula_of(item.numbers)
                    try:
                        graph = graph_from_arrays(
                            item.positions,
                            item.numbers,
                            item.cell,
                            item.pbc,
                            cutoff,
                            max_neighbors=max_nb,
                            min_distance=self.min_distance,
                        )
                    except Exception as exc:  # StructureError and friends: reported, not fatal
                        msg = f"{type(exc).__name__}: {exc}"
                if msg is None and self.dispersion is not None:
                    try:
                        meta.dispersion = self.dispersion_of(item)
                    except DispersionError as exc:  # simple-dftd3 refused this structure: an error row
                        msg = str(exc)
                        graph = None
                out.append((meta, len(item.numbers), graph, msg))
        return out

    # --- the stream ---------------------------------------------------------------------------------------------
    @staticmethod
    def unit_chunks(units: Iterable[Unit], skip: set, size: int) -> Iterator[list[Unit]]:
        """``units`` in lists of ``size``, leaving out units whose every id is in ``skip``."""
        chunk: list[Unit] = []
        for unit in units:
            if unit.ids is not None and all(i in skip for i in unit.ids):
                continue
            chunk.append(unit)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def produce(
        self, units: Iterable[Unit], skip: set, budget: Budget, out: queue.Queue, stop: threading.Event
    ) -> None:
        """Put every structure of ``units`` (except ids in ``skip``) on ``out`` as batches or error rows, then
        ``done`` (or ``exception``); returns early once ``stop`` is set."""

        def put(x: Message) -> None:
            while not stop.is_set():
                try:
                    out.put(x, timeout=0.2)
                    return
                except queue.Full:
                    continue

        try:
            planner = BatchPlanner(budget, self.oversize)
            errors: list[tuple[Meta, int, str]] = []
            pin = self.runtime.device.type == "cuda"

            def emit(planned: list) -> None:
                for p in planned:
                    if isinstance(p, Refusal):
                        errors.append((p.meta, p.n_atoms, p.message))
                    else:
                        gb = self.runtime.collate(p.graphs)
                        if pin:
                            gb = gb.pin_memory()
                        put(("batch", p, gb))
                if errors:
                    put(
                        (
                            "errors",
                            error_block(
                                self.columns, [e[0] for e in errors], [e[1] for e in errors], [e[2] for e in errors]
                            ),
                            None,
                        )
                    )
                    errors.clear()

            def feed(prepared: list[tuple]) -> None:
                for meta, n, graph, msg in prepared:
                    if msg is not None:
                        errors.append((meta, n, msg))
                    else:
                        emit(planner.add(graph, meta))
                emit([])

            chunks = self.unit_chunks(units, skip, CHUNK_UNITS)
            if self.workers <= 1:
                for chunk in chunks:
                    if stop.is_set():
                        return
                    feed(self.prepare(chunk, skip))
            else:  # several graph-building threads, results consumed in input order
                with ThreadPoolExecutor(self.workers, thread_name_prefix="gfm-screen-nl") as pool:
                    pending: deque = deque()
                    for chunk in chunks:
                        if stop.is_set():
                            return
                        pending.append(pool.submit(self.prepare, chunk, skip))
                        while len(pending) >= 2 * self.workers:
                            feed(pending.popleft().result())
                    while pending:
                        feed(pending.popleft().result())
            emit(planner.flush())
            emit([])
            put(("done", None, None))
        except BaseException as exc:  # surfaced in the consumer thread
            put(("exception", exc, None))


__all__ = ["CHUNK_UNITS", "GraphProducer", "Message"]
