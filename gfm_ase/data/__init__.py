"""Datasets: the HDF5 structure store, converters from the field's formats, splits, reference energies, loaders.

>>> from gfm_ase.data import Store, StoreWriter, GraphDataset, StructureRecord
"""

from gfm_ase.data.dataset import GraphDataset, graph_loader
from gfm_ase.data.record import RecordError, StructureRecord
from gfm_ase.data.references import fit_reference_energies
from gfm_ase.data.splits import split_indices
from gfm_ase.data.store import SCHEMA_VERSION, Store, StoreError, StoreWriter, read_store_attrs

__all__ = [
    "GraphDataset",
    "RecordError",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreWriter",
    "StructureRecord",
    "fit_reference_energies",
    "graph_loader",
    "read_store_attrs",
    "split_indices",
]
