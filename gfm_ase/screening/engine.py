"""The screening engine: streaming, batched evaluation of many structures with one head of a model.

Pipeline (bounded memory at every stage):

1. the producer (:mod:`gfm_ase.screening.producer`), in a background thread, reads units of input, checks each
   structure, builds its radius graph (vesin, which releases the GIL) and packs graphs into batches under the
   atom/edge budget (:mod:`gfm_ase.screening.planner`); finished batches are collated (and pinned for CUDA) and put
   on a queue of ``prefetch`` batches;
2. the consumer (:mod:`gfm_ase.screening.consumer`), in the calling thread, takes batches off the queue and runs
   the model through the runtime, so graph building for the next batches overlaps with the model evaluation of
   this one;
3. results come out as column blocks (:mod:`gfm_ase.screening.columns`, :mod:`gfm_ase.screening.rows`), one per
   batch, plus blocks of error rows for structures that could not be read, built or evaluated: every input
   structure yields exactly one row.

:class:`Screener` wires the two ends from one :class:`~gfm_ase.screening.config.ScreenerConfig`, owns the batch
budget and the resume signature, and runs the queue between them.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, cast

import numpy as np

from gfm_ase.dispersion import make_dispersion
from gfm_ase.graph.sanity import SanityCheck
from gfm_ase.runtime import InferenceRuntime
from gfm_ase.runtime.uncertainty import Spread, member_heads
from gfm_ase.screening.allocator import tune_cpu_allocator
from gfm_ase.screening.budget import Budget, calibrate_memory, make_budget
from gfm_ase.screening.columns import Meta, columns_for, error_block, formula_of
from gfm_ase.screening.config import PROPERTIES, ScreenConfigError, ScreenerConfig
from gfm_ase.screening.consumer import ModelConsumer
from gfm_ase.screening.producer import GraphProducer
from gfm_ase.screening.readers import InputStructure, Unit
from gfm_ase.screening.rows import concat, take

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel


class Screener:
    """Evaluate many structures with one head of a gfm-ase model.

    model: a :class:`~gfm_ase.model.GFMModel`, a model directory, a training output directory, a built-in name
      or a URL (see :func:`gfm_ase.hub.resolve_model`). An in-memory model is copied, never modified.
    head: the head to use (may be omitted for single-head models).
    config: a :class:`~gfm_ase.screening.config.ScreenerConfig` (validated once, used as given); keyword
      ``options`` (the config's fields, below) are validated into one, on top of ``config`` when both are given.
      A bad or unknown option is one :class:`~gfm_ase.screening.config.ScreenConfigError` line, before anything is
      loaded.

    The options: ``dtype``: "float64", "float32" or "bfloat16" (bf16 trunk with float32 accumulation).
    ``properties``: any of "energy" (always), "forces", "stress", "energies" (per-atom).
    ``max_atoms``, ``max_edges``: batch budget (default: from the model's measured memory use and the device).
    ``max_memory``: memory limit in GiB for one batch (default: a fraction of free device memory / available RAM).
    ``oversize``: "alone" (a structure above the batch budget runs alone) or "refuse".
    ``compile``: run the trunk through ``torch.compile`` (worth it only for long screens; see docs/benchmarks.md).
    ``min_distance_factor``: the geometry sanity check (:mod:`gfm_ase.graph.sanity`; 0 disables): structures with
    overlapping atoms or a cell too small for their atoms get an error row.
    ``prefetch``: batches built ahead of the model by the background thread.
    ``workers``: graph-building threads (default: 1 on CPU, up to 8 with a GPU).
    ``uncertainty``: add the spread of the head's committee or family (see :mod:`gfm_ase.runtime.uncertainty`), as
    ``energy_std / n_atoms`` (eV/atom).
    ``dispersion``: None or a DFT-D3 variant (``"d3bj"``, ``"d3bj-atm"``, ``"d3zero"``) added to energy, forces,
    stress and per-atom energies, with the damping parameters of the head's functional: the same term as
    ``GFMCalculator(dispersion=...)`` (:mod:`gfm_ase.dispersion`). It is computed by the graph-building threads
    (host, float64) and reported in a ``dispersion_energy`` column; a head without D3 parameters is refused here.
    """

    def __init__(
        self,
        model: str | Path | GFMModel | None = None,
        head: str | None = None,
        config: ScreenerConfig | None = None,
        **options: Any,
    ) -> None:
        # every option checked before anything is loaded
        cfg = ScreenerConfig.build(config, **options) if options or config is None else config
        if not isinstance(cfg, ScreenerConfig):
            raise ScreenConfigError(f"config must be a ScreenerConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.properties = cfg.properties
        # model (an in-memory one is copied, never modified), device, precision, head, element coverage, compile
        self.runtime = InferenceRuntime(
            model, head, device=cfg.device, dtype=cfg.dtype, compile=cfg.compile, copy_model=True, identify=True
        )
        if self.runtime.routed:  # per-structure heads would need per-head formation references and spreads
            raise ValueError(
                "screening evaluates one head per run (formation energies, uncertainty and output "
                "metadata are per head): head 'auto' is not supported here; choose one of "
                f"{self.runtime.model.head_names}"
            )
        self.device = self.runtime.device
        self.precision = self.runtime.precision
        self.model_dtype = self.runtime.model_dtype
        self.model = self.runtime.model
        self.model_id = cast(dict, self.runtime.model_id)  # identify=True: always recorded
        self.head = head = self.runtime.head
        self.head_config = self.runtime.head_config
        self.allowed = self.runtime.allowed_numbers
        self.allow_unknown_elements = cfg.allow_unknown_elements
        self.min_distance = cfg.min_distance
        self.sanity = SanityCheck(cfg.min_distance_factor, cutoff=self.model.cutoff)
        # the D3 term of the head's functional (DispersionError for a head without D3 parameters, before any input)
        self.dispersion = make_dispersion(cfg.dispersion, self.head_config)
        self.spread_kind, self.family = member_heads(self.model, head) if cfg.uncertainty else ("none", [])
        self.spread = Spread.for_head(self.model, head) if self.spread_kind != "none" else None
        self.uncertainty = cfg.uncertainty
        self.oversize = cfg.oversize
        self.prefetch = cfg.prefetch
        workers = cfg.workers
        if workers is None:  # a GPU needs several graph builders to keep up; on a CPU the model needs the cores
            workers = min(8, max(1, (os.cpu_count() or 2) - 2)) if self.device.type == "cuda" else 1
        self.workers = workers
        self._budget_args: dict[str, Any] = dict(
            max_atoms=cfg.max_atoms,
            max_edges=cfg.max_edges,
            memory_limit=None if cfg.max_memory is None else float(cfg.max_memory) * 2**30,
        )
        self._budget: Budget | None = None
        if self.device.type == "cpu" and cfg.tune_allocator:
            tune_cpu_allocator()
        self.runner = self.runtime.runner
        self.compiled = self.runtime.compiled
        self.columns = columns_for(
            self.properties, uncertainty=self.spread is not None, dispersion=self.dispersion is not None
        )
        self.producer = GraphProducer(
            self.runtime,
            self.columns,
            properties=self.properties,
            allow_unknown_elements=self.allow_unknown_elements,
            sanity=self.sanity,
            min_distance=self.min_distance,
            dispersion=self.dispersion,
            oversize=self.oversize,
            workers=self.workers,
        )
        self.consumer = ModelConsumer(
            self.runtime,
            self.columns,
            properties=self.properties,
            spread=self.spread,
            family=self.family,
            dispersion=self.dispersion,
        )

    # --- metadata -----------------------------------------------------------------------------------------------
    @property
    def budget(self) -> Budget:
        if self._budget is None:
            memory = calibrate_memory(
                self.model,
                self.head,
                self.device,
                self.model_dtype,
                self.precision,
                forces="forces" in self.properties or "stress" in self.properties,
                stress="stress" in self.properties,
            )
            self._budget = make_budget(memory, self.device, **self._budget_args)
        return self._budget

    def signature(self) -> dict:
        """What determines the results (for resume checks)."""
        return {
            "model_sha256": self.model_id["sha256"],
            "head": self.head,
            "dtype": self.precision,
            "properties": list(self.properties),
            "uncertainty": self.uncertainty,
            "allow_unknown_elements": self.allow_unknown_elements,
            "min_distance": self.min_distance,
            "min_distance_factor": self.sanity.factor,
            "oversize": self.oversize,
            **({"dispersion": self.dispersion.describe()} if self.dispersion is not None else {}),
        }

    def error_block(self, metas: list[Meta], n_atoms: list[int], messages: list[str]) -> dict:
        """Error rows in this screen's columns."""
        return error_block(self.columns, metas, n_atoms, messages)

    # --- the pipeline -------------------------------------------------------------------------------------------
    def run(
        self, units: Iterable[Unit], skip: set | None = None, progress: Callable[[int, int], None] | None = None
    ) -> Iterator[dict]:
        """Evaluate ``units``, skipping ids in ``skip``; yields column blocks (one per batch / error group)."""
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        budget = self.budget  # calibrate before the producer starts, in this thread
        t = threading.Thread(
            target=self.producer.produce,
            args=(units, skip or set(), budget, q, stop),
            daemon=True,
            name="gfm-screen-graphs",
        )
        t.start()
        n_done = n_atoms = 0
        try:
            while True:
                kind, payload, extra = q.get()
                if kind == "done":
                    break
                if kind == "exception":
                    raise payload
                block = payload if kind == "errors" else self.consumer.evaluate(payload, extra)
                n_done += len(block["id"])
                n_atoms += int(block["n_atoms"].sum())
                if progress is not None:
                    progress(n_done, n_atoms)
                yield block
        finally:
            stop.set()
            t.join(timeout=10)

    # --- in-memory API ----------------------------------------------------------------------------------------------
    def evaluate(self, structures: Iterable, ids: Iterable[str] | None = None) -> dict:
        """Evaluate ``ase.Atoms`` (or pymatgen structures, or :class:`InputStructure`) in memory; returns one column
        block in input order."""
        structures = list(structures)
        ids = [str(i) for i in ids] if ids is not None else [str(k) for k in range(len(structures))]
        if len(ids) != len(structures):
            raise ValueError(f"{len(ids)} ids for {len(structures)} structures")
        units = (Unit(k, (i,), i, _atoms_loader(i, s)) for k, (i, s) in enumerate(zip(ids, structures)))
        block = concat(list(self.run(units)))
        if not block:
            return block
        return take(block, np.lexsort((block["sub"], block["unit"])))


def _atoms_loader(id_: str, structure: Any) -> Callable[[], list[InputStructure]]:
    def load() -> list[InputStructure]:
        from gfm_ase.calculator import to_atoms

        if isinstance(structure, InputStructure):
            return [structure]
        return [InputStructure.from_atoms(id_, to_atoms(structure), with_energy=False)]

    return load


__all__ = ["Screener", "Meta", "PROPERTIES", "formula_of"]
