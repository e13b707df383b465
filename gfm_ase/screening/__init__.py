"""High-throughput screening: streaming batched inference with one head of a gfm-ase model.

``screen(inputs, out, model, head, ...)`` reads extxyz files, ASE databases, gfm-ase HDF5 stores and folders of
CIF/POSCAR files, evaluates them in batches formed by an atom and edge budget (graph building overlapped with the
model), commits results in crash-safe chunks (rerunning resumes), shards over ranks, and writes one HDF5 or Parquet
file with an id per input structure, energies, optional forces/stress/per-atom energies, the head family's spread,
formation energies and energies above a convex hull, optionally with DFT-D3 dispersion. :class:`Screener` is the
in-memory engine underneath; the options of both are one typed config (:class:`ScreenConfig`,
:class:`ScreenerConfig`).
"""

from gfm_ase.screening.budget import Budget, MemoryModel, calibrate_memory, make_budget
from gfm_ase.screening.config import ScreenConfig, ScreenConfigError, ScreenerConfig
from gfm_ase.screening.engine import PROPERTIES, Screener
from gfm_ase.screening.hull import FormationReference, HullReference
from gfm_ase.screening.output import OutputError, read_metadata, read_results
from gfm_ase.screening.planner import BatchPlanner
from gfm_ase.screening.readers import InputError, open_sources
from gfm_ase.screening.screen import load_hull_references, screen, write_shortlist
from gfm_ase.screening.shards import Shard, detect_shard

__all__ = [
    "screen",
    "Screener",
    "ScreenConfig",
    "ScreenerConfig",
    "ScreenConfigError",
    "PROPERTIES",
    "read_results",
    "read_metadata",
    "write_shortlist",
    "load_hull_references",
    "HullReference",
    "FormationReference",
    "Budget",
    "MemoryModel",
    "calibrate_memory",
    "make_budget",
    "BatchPlanner",
    "InputError",
    "OutputError",
    "open_sources",
    "Shard",
    "detect_shard",
]
