"""The inference runtime: everything between "a model name and a head" and "energies, forces and stress of a
batch", in one place for every consumer (ASE calculator, screening, validation, benchmarks, simulation engines).

* :mod:`~gfm_ase.runtime.loading` resolves a model (built-in name, directory, URL, in-memory) and loads it;
* :mod:`~gfm_ase.runtime.device` resolves the device;
* :mod:`gfm_ase.model.precision` is the one precision table (parameter dtype, autocast dtype);
* :mod:`~gfm_ase.runtime.heads` selects the head and checks element coverage;
* :mod:`~gfm_ase.runtime.compile` optionally compiles the trunk;
* :mod:`~gfm_ase.runtime.evaluate` evaluates a :class:`~gfm_ase.graph.batch.GraphBatch`;
* :class:`~gfm_ase.runtime.session.InferenceRuntime` ties them together.
"""

from gfm_ase.model.precision import PRECISIONS, parameter_dtype, precision_info
from gfm_ase.runtime.compile import compile_runner
from gfm_ase.runtime.device import resolve_device
from gfm_ase.runtime.evaluate import evaluate, to_numpy
from gfm_ase.runtime.heads import HeadSelection
from gfm_ase.runtime.loading import LoadedModel, load, model_document, model_fingerprint
from gfm_ase.runtime.session import InferenceRuntime

__all__ = [
    "InferenceRuntime",
    "HeadSelection",
    "LoadedModel",
    "PRECISIONS",
    "compile_runner",
    "evaluate",
    "load",
    "model_document",
    "model_fingerprint",
    "parameter_dtype",
    "precision_info",
    "resolve_device",
    "to_numpy",
]
