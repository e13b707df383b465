"""Batch budgets: how many atoms and edges go into one model call, estimated from the model and the device.

The memory of one evaluation (energy + forces [+ stress]) is modelled as ``fixed + a * atoms + b * edges`` bytes.
The coefficients are measured, not guessed: :func:`calibrate_memory` runs the model on a few synthetic graphs and
records what the autograd graph keeps for the backward pass (on CPU: the bytes of all saved tensors, times a
safety factor for transient buffers) or the peak allocation (on CUDA). The memory limit is a fraction of the
free device memory (CUDA) or of the available RAM (CPU), or what the user gives.

Two limits follow:

* the *batch budget* (``max_atoms``, ``max_edges``): the target size of a batch, for throughput. On a GPU it is as
  large as memory allows (capped); on a CPU smaller batches are faster (their tensors stay in cache), so the
  default is modest.
* the *memory limit*: a structure whose own estimate exceeds it cannot be evaluated; it is refused with a clear
  message instead of running out of memory. A structure above the batch budget but within the memory limit runs
  alone (or is refused, with ``oversize="refuse"``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from gfm_ase.graph.batch import AtomicGraph, collate

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel

CPU_SAFETY = 2.0  # saved tensors -> peak: transient buffers of the backward pass
CPU_MEMORY_FRACTION = 0.5
CUDA_MEMORY_FRACTION = 0.8
CPU_DEFAULT_ATOMS = 512  # on a CPU larger batches do not run faster (batch-size sweep in docs/benchmarks.md):
CPU_DEFAULT_EDGES = 8192  # small batches keep the memory low
CUDA_DEFAULT_ATOMS = 16384
CUDA_EDGES_PER_ATOM_CAP = 96


@dataclass(frozen=True)
class MemoryModel:
    """Estimated bytes of one model evaluation: ``fixed + per_atom * atoms + per_edge * edges``."""

    fixed: float
    per_atom: float
    per_edge: float

    def bytes(self, n_atoms: ArrayLike, n_edges: ArrayLike) -> np.ndarray:
        return (
            self.fixed
            + self.per_atom * np.asarray(n_atoms, dtype=float)
            + self.per_edge * np.asarray(n_edges, dtype=float)
        )


@dataclass(frozen=True)
class Budget:
    max_atoms: int
    max_edges: int
    memory_limit: float  # bytes one batch may use
    memory: MemoryModel

    def fits_memory(self, n_atoms: int, n_edges: int) -> bool:
        return float(self.memory.bytes(n_atoms, n_edges)) <= self.memory_limit

    def within_batch_budget(self, n_atoms: int, n_edges: int) -> bool:
        return n_atoms <= self.max_atoms and n_edges <= self.max_edges

    def describe(self) -> str:
        return (
            f"batches up to {self.max_atoms} atoms / {self.max_edges} edges; memory limit "
            f"{self.memory_limit / 2**30:.2f} GiB at ~{self.memory.per_atom / 1024:.1f} KiB/atom + "
            f"{self.memory.per_edge / 1024:.2f} KiB/edge"
        )


def _probe_graph(n_atoms: int, n_edges: int, z: int, rng: np.random.Generator) -> AtomicGraph:
    """A synthetic graph with the given size (random positions, random distinct-atom edges)."""
    positions = rng.uniform(0.0, 3.0 * n_atoms ** (1 / 3), size=(n_atoms, 3))
    i = rng.integers(0, n_atoms, size=n_edges)
    j = (i + rng.integers(1, n_atoms, size=n_edges)) % n_atoms
    return AtomicGraph(
        positions=positions,
        numbers=np.full(n_atoms, z, dtype=np.int64),
        cell=np.eye(3) * 100.0,
        pbc=np.ones(3, dtype=bool),
        edge_index=np.stack([i, j]).astype(np.int64),
        shifts=np.zeros((n_edges, 3)),
    )


def _measure_bytes(
    model: GFMModel,
    graph: AtomicGraph,
    head: str,
    device: torch.device,
    dtype: torch.dtype,
    precision: str,
    forces: bool,
    stress: bool,
) -> float:
    from gfm_ase.model.outputs import predict

    batch = collate([graph], dtype=dtype).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        predict(model, batch, head, forces=forces, stress=stress, precision=precision)
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    seen: dict = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        # energy-only evaluations keep less alive than this; forces are always measured (an upper bound)
        predict(model, batch, head, forces=True, stress=stress, precision=precision)
    return CPU_SAFETY * float(sum(seen.values()))


def calibrate_memory(
    model: GFMModel,
    head: str,
    device: torch.device,
    dtype: torch.dtype,
    precision: str,
    forces: bool = True,
    stress: bool = False,
    seed: int = 0,
) -> MemoryModel:
    """Fit ``fixed + a * atoms + b * edges`` to the memory of three small probe evaluations."""
    rng = np.random.default_rng(seed)
    z = 14
    elements = model.head_config(head).atomic_numbers
    if elements:
        z = elements[0]
    sizes = [(48, 1536), (96, 1536), (48, 3072)]
    y = np.array(
        [
            _measure_bytes(model, _probe_graph(n, e, z, rng), head, device, dtype, precision, forces, stress)
            for n, e in sizes
        ]
    )
    a = np.array([[1.0, n, e] for n, e in sizes])
    fixed, per_atom, per_edge = np.linalg.solve(a, y)
    # keep the model conservative: no negative slopes from measurement noise
    per_atom = max(per_atom, 0.0)
    per_edge = max(per_edge, 1.0)
    fixed = max(fixed, 0.0)
    return MemoryModel(fixed=float(fixed), per_atom=float(per_atom), per_edge=float(per_edge))


def available_memory(device: torch.device) -> float:
    """Bytes that one batch may use on ``device``: a fraction of the free GPU memory or of the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return CUDA_MEMORY_FRACTION * float(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return CPU_MEMORY_FRACTION * float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return CPU_MEMORY_FRACTION * float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 4.0 * 2**30


def check_budget_options(max_atoms: Any = None, max_edges: Any = None, max_memory: Any = None) -> None:
    """Refuse budget options that would be ignored (0 atoms) or mark every row too large (negative memory)."""
    for name, value, kind in (
        ("max_atoms", max_atoms, int),
        ("max_edges", max_edges, int),
        ("max_memory", max_memory, float),
    ):
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok or (kind is int and int(value) != value):
            raise ValueError(
                f"{name} must be a positive {'integer' if kind is int else 'number'} (GiB for "
                f"max_memory) or None for the default, got {value!r}"
            )


def make_budget(
    memory: MemoryModel,
    device: torch.device,
    *,
    max_atoms: int | None = None,
    max_edges: int | None = None,
    memory_limit: float | None = None,
) -> Budget:
    """The batch budget for ``device``. Explicit values win; derived ones are shrunk until a full batch fits."""
    limit = float(memory_limit) if memory_limit is not None else available_memory(device)
    if device.type == "cuda":
        atoms = max_atoms or CUDA_DEFAULT_ATOMS
        edges = max_edges or atoms * CUDA_EDGES_PER_ATOM_CAP
    else:
        atoms = max_atoms or CPU_DEFAULT_ATOMS
        edges = max_edges or CPU_DEFAULT_EDGES
    if max_atoms is None or max_edges is None:
        # derived limits must leave a full batch inside the memory limit
        while atoms > 1 and edges > 1 and float(memory.bytes(atoms, edges)) > limit:
            if max_atoms is None:
                atoms = max(1, atoms // 2)
            if max_edges is None:
                edges = max(1, edges // 2)
            if max_atoms is not None and max_edges is not None:
                break
    return Budget(max_atoms=int(atoms), max_edges=int(edges), memory_limit=limit, memory=memory)


__all__ = ["MemoryModel", "Budget", "calibrate_memory", "available_memory", "check_budget_options", "make_budget"]
