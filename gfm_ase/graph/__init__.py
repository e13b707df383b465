"""Graphs: neighbor lists and the batched graph type."""

from gfm_ase.graph.batch import AtomicGraph, GraphBatch, collate, graph_from_arrays, graph_from_atoms
from gfm_ase.graph.neighbors import StructureError, radius_graph
from gfm_ase.graph.verlet import VerletGraph

__all__ = [
    "AtomicGraph",
    "GraphBatch",
    "StructureError",
    "collate",
    "graph_from_arrays",
    "graph_from_atoms",
    "VerletGraph",
    "radius_graph",
]
