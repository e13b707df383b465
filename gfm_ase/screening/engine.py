"""The screening engine: streaming, batched evaluation of many structures with one head of a model.

Pipeline (bounded memory at every stage):

1. a background thread reads units of input, builds each structure's radius graph (vesin, which releases the
   GIL), and packs graphs into batches under the atom/edge budget (:mod:`gfm_ase.screening.planner`); finished
   batches are collated (and pinned for CUDA) and put on a queue of ``prefetch`` batches;
2. the calling thread takes batches off the queue and runs the model, so graph building for the next batches
   overlaps with the model evaluation of this one;
3. results come out as column blocks (:mod:`gfm_ase.screening.rows`), one per batch, plus blocks of error rows for
   structures that could not be read, built or evaluated: every input structure yields exactly one row.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
from ase.data import chemical_symbols

from gfm_ase.dispersion import DispersionError, DispersionResult, make_dispersion
from gfm_ase.graph.batch import graph_from_arrays
from gfm_ase.runtime import InferenceRuntime, to_numpy
from gfm_ase.graph.sanity import SanityCheck
from gfm_ase.screening.allocator import tune_cpu_allocator
from gfm_ase.screening.budget import Budget, calibrate_memory, make_budget
from gfm_ase.screening.config import PROPERTIES, ScreenConfigError, ScreenerConfig
from gfm_ase.screening.planner import BatchPlanner, PlannedBatch, Refusal
from gfm_ase.screening.readers import Item, Unit
from gfm_ase.screening.rows import concat
from gfm_ase.runtime.uncertainty import Spread, member_heads

_DONE = object()


@dataclass
class Meta:
    """Bookkeeping of one structure on its way through the pipeline."""

    id: str
    unit: int
    sub: int
    unit_size: int
    formula: str = ""
    dispersion: DispersionResult | None = None  # the D3 term, computed with the graph (host, float64)


def formula_of(numbers: np.ndarray) -> str:
    """Hill-ordered formula (C, H first when carbon is present, then alphabetical)."""
    zs, counts = np.unique(numbers, return_counts=True)
    pairs = {chemical_symbols[int(z)] if 0 < z < len(chemical_symbols) else f"Z{int(z)}": int(c)
             for z, c in zip(zs, counts)}
    order = sorted(pairs)
    if "C" in pairs:
        order = ["C"] + (["H"] if "H" in pairs else []) + [s for s in order if s not in ("C", "H")]
    return "".join(f"{s}{pairs[s] if pairs[s] > 1 else ''}" for s in order)


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

    def __init__(self, model=None, head: str | None = None, config: ScreenerConfig | None = None, **options):
        # every option checked before anything is loaded
        cfg = ScreenerConfig.build(config, **options) if options or config is None else config
        if not isinstance(cfg, ScreenerConfig):
            raise ScreenConfigError(f"config must be a ScreenerConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.properties = cfg.properties
        # model (an in-memory one is copied, never modified), device, precision, head, element coverage, compile
        self.runtime = InferenceRuntime(model, head, device=cfg.device, dtype=cfg.dtype, compile=cfg.compile,
                                        copy_model=True, identify=True)
        if self.runtime.routed:  # per-structure heads would need per-head formation references and spreads
            raise ValueError("screening evaluates one head per run (formation energies, uncertainty and output "
                             "metadata are per head): head 'auto' is not supported here; choose one of "
                             f"{self.runtime.model.head_names}")
        self.device = self.runtime.device
        self.precision = self.runtime.precision
        self.model_dtype = self.runtime.model_dtype
        self.model = self.runtime.model
        self.model_id = self.runtime.model_id
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
        self._budget_args = dict(max_atoms=cfg.max_atoms, max_edges=cfg.max_edges,
                                 memory_limit=None if cfg.max_memory is None else float(cfg.max_memory) * 2**30)
        self._budget: Budget | None = None
        if self.device.type == "cpu" and cfg.tune_allocator:
            tune_cpu_allocator()
        self.runner = self.runtime.runner
        self.compiled = self.runtime.compiled
        self.columns = self._columns()
        # model outputs copied to the host: energies always, the rest only when a column needs them
        self._output_keys = ("energy", *[p for p in ("forces", "stress", "energies") if p in self.properties],
                             *(("head_energies",) if self.spread is not None else ()))

    # --- metadata -----------------------------------------------------------------------------------------------
    @property
    def budget(self) -> Budget:
        if self._budget is None:
            memory = calibrate_memory(self.model, self.head, self.device, self.model_dtype, self.precision,
                                      forces="forces" in self.properties or "stress" in self.properties,
                                      stress="stress" in self.properties)
            self._budget = make_budget(memory, self.device, **self._budget_args)
        return self._budget

    def signature(self) -> dict:
        """What determines the results (for resume checks)."""
        return {"model_sha256": self.model_id["sha256"], "head": self.head, "dtype": self.precision,
                "properties": list(self.properties), "uncertainty": self.uncertainty,
                "allow_unknown_elements": self.allow_unknown_elements, "min_distance": self.min_distance,
                "min_distance_factor": self.sanity.factor,
                "oversize": self.oversize,
                **({"dispersion": self.dispersion.describe()} if self.dispersion is not None else {})}

    def _columns(self) -> dict[str, tuple]:
        """Column name -> (dtype, trailing shape); per-atom columns are marked by rows.PER_ATOM_COLUMNS."""
        cols = {"id": (object, ()), "unit": (np.int64, ()), "sub": (np.int64, ()), "unit_size": (np.int64, ()),
                "n_atoms": (np.int64, ()), "formula": (object, ()), "energy": (np.float64, ()),
                "energy_per_atom": (np.float64, ())}
        if self.dispersion is not None:
            cols["dispersion_energy"] = (np.float64, ())
        if self.spread is not None:  # no family of two or more heads: no column (it would be NaN everywhere)
            cols["uncertainty"] = (np.float64, ())
        if "stress" in self.properties:
            cols["stress"] = (np.float64, (6,))
        if "forces" in self.properties:
            cols["forces"] = (np.float64, (3,))
        if "energies" in self.properties:
            cols["energies"] = (np.float64, ())
        cols["error"] = (object, ())
        return cols

    def error_block(self, metas: list[Meta], n_atoms: list[int], messages: list[str]) -> dict:
        b = len(metas)
        total = int(sum(n_atoms))
        out = {}
        for name, (dt, shape) in self.columns.items():
            rows = total if name in ("forces", "energies") else b
            if dt is object:
                out[name] = np.full(rows, "", dtype=object)
            elif dt is np.int64:
                out[name] = np.zeros(rows, dtype=np.int64)
            else:
                out[name] = np.full((rows, *shape), np.nan)
        out["id"] = np.array([m.id for m in metas], dtype=object)
        out["unit"] = np.array([m.unit for m in metas], dtype=np.int64)
        out["sub"] = np.array([m.sub for m in metas], dtype=np.int64)
        out["unit_size"] = np.array([m.unit_size for m in metas], dtype=np.int64)
        out["formula"] = np.array([m.formula for m in metas], dtype=object)
        out["n_atoms"] = np.asarray(n_atoms, dtype=np.int64).reshape(b)
        out["error"] = np.array(messages, dtype=object).reshape(b)
        return out

    # --- producer: read, check, build graphs, plan batches -----------------------------------------------------------
    def _check_item(self, item: Item) -> str | None:
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

    def _prepare(self, units: list[Unit], skip: set) -> list[tuple]:
        """Load units and build their graphs: (meta, n_atoms, graph or None, error message or None) per structure.

        Runs in the graph-building threads; the neighbor search (vesin) releases the GIL.
        """
        cutoff, max_nb = self.model.cutoff, self.model.max_neighbors
        out = []
        for unit in units:
            try:
                items = unit.load()
            except Exception as exc:  # unreadable input: one error row stands for the unit
                out.append((Meta(unit.error_id, unit.index, 0, 1), 0, None,
                            f"cannot read: {type(exc).__name__}: {exc}"))
                continue
            items = [it for it in items if it.id not in skip]
            for sub, item in enumerate(items):
                meta = Meta(item.id, unit.index, sub, len(items))
                graph = None
                msg = self._check_item(item)
                if msg is None:
                    msg = self.sanity.problem(item.positions, item.numbers, item.cell, item.pbc)
                if msg is None:
                    meta.formula = formula_of(item.numbers)
                    try:
                        graph = graph_from_arrays(item.positions, item.numbers, item.cell, item.pbc, cutoff,
                                                  max_neighbors=max_nb, min_distance=self.min_distance)
                    except Exception as exc:  # StructureError and friends: reported, not fatal
                        msg = f"{type(exc).__name__}: {exc}"
                if msg is None and self.dispersion is not None:
                    try:
                        meta.dispersion = self._dispersion_of(item)
                    except DispersionError as exc:  # simple-dftd3 refused this structure: an error row
                        msg = str(exc)
                        graph = None
                out.append((meta, len(item.numbers), graph, msg))
        return out

    def _dispersion_of(self, item: Item) -> DispersionResult:
        assert self.dispersion is not None
        want_stress = "stress" in self.properties and bool(np.asarray(item.pbc).all())
        return self.dispersion.compute(item.numbers, item.positions, item.cell, item.pbc,
                                       forces="forces" in self.properties, stress=want_stress,
                                       energies="energies" in self.properties)

    def _unit_chunks(self, units: Iterable[Unit], skip: set, size: int) -> Iterator[list[Unit]]:
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

    def _produce(self, units: Iterable[Unit], skip: set, out: queue.Queue, stop: threading.Event) -> None:
        def put(x):
            while not stop.is_set():
                try:
                    out.put(x, timeout=0.2)
                    return
                except queue.Full:
                    continue

        try:
            planner = BatchPlanner(self.budget, self.oversize)
            errors: list[tuple[Meta, int, str]] = []

            def emit(planned):
                for p in planned:
                    if isinstance(p, Refusal):
                        errors.append((p.meta, p.n_atoms, p.message))
                    else:
                        gb = self.runtime.collate(p.graphs)
                        if self.device.type == "cuda":
                            gb = gb.pin_memory()
                        put(("batch", p, gb))
                if errors:
                    put(("errors", self.error_block([e[0] for e in errors], [e[1] for e in errors],
                                                    [e[2] for e in errors]), None))
                    errors.clear()

            def feed(prepared):
                for meta, n, graph, msg in prepared:
                    if msg is not None:
                        errors.append((meta, n, msg))
                    else:
                        emit(planner.add(graph, meta))
                emit([])

            chunks = self._unit_chunks(units, skip, 16)
            if self.workers <= 1:
                for chunk in chunks:
                    if stop.is_set():
                        return
                    feed(self._prepare(chunk, skip))
            else:  # several graph-building threads, results consumed in input order
                from collections import deque
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(self.workers, thread_name_prefix="gfm-screen-nl") as pool:
                    pending: deque = deque()
                    for chunk in chunks:
                        if stop.is_set():
                            return
                        pending.append(pool.submit(self._prepare, chunk, skip))
                        while len(pending) >= 2 * self.workers:
                            feed(pending.popleft().result())
                    while pending:
                        feed(pending.popleft().result())
            emit(planner.flush())
            emit([])
            put(("done", None, None))
        except BaseException as exc:  # surfaced in the consumer thread
            put(("exception", exc, None))

    # --- consumer: the model --------------------------------------------------------------------------------------
    def _evaluate(self, planned: PlannedBatch, gb) -> dict:
        batch = gb.to(self.device)
        want_f = "forces" in self.properties
        want_s = "stress" in self.properties
        out = to_numpy(self.runtime.evaluate(batch, forces=want_f, stress=want_s,
                                             extra_heads=self.family if self.spread is not None else None),
                       keys=self._output_keys)
        metas = planned.metas
        n_atoms = batch.n_atoms.cpu().numpy()
        block = self.error_block(metas, n_atoms, [""] * len(metas))
        energy = out["energy"]
        block["energy"] = energy
        block["energy_per_atom"] = energy / n_atoms
        if self.uncertainty and self.spread is not None:
            block["uncertainty"] = self.spread.energy_std(out["head_energies"], batch.numbers.cpu().numpy(),
                                                          batch.batch.cpu().numpy()) / n_atoms
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
            self._add_dispersion(block, metas)
        return block

    def _add_dispersion(self, block: dict, metas: list[Meta]) -> None:
        """Add each structure's D3 term (computed with its graph) to the model's outputs in ``block``."""
        terms = [m.dispersion for m in metas]
        assert all(d is not None for d in terms)
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

    def run(self, units: Iterable[Unit], skip: set | None = None,
            progress: Callable[[int, int], None] | None = None) -> Iterator[dict]:
        """Evaluate ``units``, skipping ids in ``skip``; yields column blocks (one per batch / error group)."""
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        _ = self.budget  # calibrate before the producer starts, in this thread
        t = threading.Thread(target=self._produce, args=(units, skip or set(), q, stop), daemon=True,
                             name="gfm-screen-graphs")
        t.start()
        n_done = n_atoms = 0
        try:
            while True:
                kind, payload, extra = q.get()
                if kind == "done":
                    break
                if kind == "exception":
                    raise payload
                block = payload if kind == "errors" else self._evaluate(payload, extra)
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
        """Evaluate ``ase.Atoms`` (or pymatgen structures) in memory; returns one column block in input order."""
        structures = list(structures)
        ids = [str(i) for i in ids] if ids is not None else [str(k) for k in range(len(structures))]
        if len(ids) != len(structures):
            raise ValueError(f"{len(ids)} ids for {len(structures)} structures")
        units = (Unit(k, (i,), i, _atoms_loader(i, s)) for k, (i, s) in enumerate(zip(ids, structures)))
        block = concat(list(self.run(units)))
        if not block:
            return block
        order = np.lexsort((block["sub"], block["unit"]))
        from gfm_ase.screening.rows import take

        return take(block, order)


def _atoms_loader(id_: str, structure):
    def load():
        from gfm_ase.calculator import to_atoms

        if isinstance(structure, Item):
            return [structure]
        return [Item.from_atoms(id_, to_atoms(structure), with_energy=False)]

    return load


__all__ = ["Screener", "Meta", "PROPERTIES", "formula_of"]
