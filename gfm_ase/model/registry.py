"""Trunk registry: architectures are added without touching heads, model, runtime or calculator.

Registering a trunk
-------------------
A trunk module decorates its class with ``@register_trunk("name", OptionsModel)`` (``OptionsModel``: a
:class:`gfm_ase.config.StrictModel`, so unknown or mistyped options are errors) and is imported once: the built-in
trunks by :mod:`gfm_ase.model` (one import line each), others by whoever uses them before building a model. This
module imports no trunk, so there is no import cycle. A ``TrunkConfig`` (``model.trunk`` in a YAML file) is
validated against the options model when it is read, with dotted paths in the errors
(``model.trunk.options.num_featres: Extra inputs are not permitted``).

The trunk contract
------------------
A trunk is an ``nn.Module`` built as ``cls(options)`` with attributes

* ``cutoff`` (Angstrom; the radius graph the trunk receives), ``max_neighbors`` (None or nearest-k per atom),
  ``num_features`` (F, the width of the invariant per-atom features the heads read);
* optionally ``needs_batch = True`` to receive the graph index of every atom (below);
* optionally ``accepts_condition = True`` to receive a per-atom ``condition`` [N, F] (keyword argument) that it
  adds to its initial invariant features (the fidelity embedding, :mod:`gfm_ase.model.fidelity`); a model with
  fidelities refuses a trunk without it.

``forward(numbers, edge_index, edge_vec, **context)``:

* ``numbers`` [N] int64 atomic numbers; ``edge_index`` [2, E] int64, row 0 the receiving atom i, row 1 the
  sending atom j; ``edge_vec`` [E, 3] = r_j - r_i + shift (Angstrom), built under the strain of
  :func:`gfm_ase.model.outputs.predict`, so forces and stress come by autograd through it. Edge attributes
  (radial bases, spherical harmonics, Cartesian tensors) are computed from ``edge_vec`` inside the trunk; anything
  computed without it would be invisible to forces and stress;
* with ``needs_batch``: ``batch`` [N] (graph index of each atom) and ``num_graphs`` (int) as keyword arguments,
  for per-structure operations (a global state, a per-graph normalisation);
* returns the invariant per-atom features [N, F], or a :class:`TrunkFeatures` that also carries equivariant
  features (vectors [N, 3, F_v], rank-2 tensors [N, 3, 3, F_t], or any named tensor): heads read ``scalars``,
  the rest is there for heads or routers that need it. Features must be invariant (scalars) or equivariant
  (the rest) under rotations and translations; energies are sums of per-atom head outputs.

PaiNN (:mod:`gfm_ase.model.painn`) returns plain invariant features; ``tests/test_trunk_contract.py`` registers a
minimal TensorNet-like trunk (per-atom Cartesian vector and tensor features, batch index) that runs through the
model, calculator and runtime unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

_TRUNKS: dict[str, tuple[type[BaseModel], Callable[[Any], nn.Module]]] = {}
T = TypeVar("T", bound=type)


@dataclass
class TrunkFeatures:
    """What a trunk may return instead of a plain [N, F] tensor."""

    scalars: torch.Tensor  # [N, F] invariant features: what the energy heads read
    equivariant: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. vectors [N, 3, Fv]


def register_trunk(name: str, options_cls: type[BaseModel]) -> Callable[[T], T]:
    """Class decorator: register a trunk architecture under ``name`` with its pydantic options model."""

    def deco(cls: T) -> T:
        if name in _TRUNKS and _TRUNKS[name][1] is not cls:
            raise ValueError(f"a trunk named {name!r} is already registered ({_TRUNKS[name][1].__qualname__})")
        _TRUNKS[name] = (options_cls, cls)
        return cls

    return deco


def available_trunks() -> list[str]:
    return sorted(_TRUNKS)


def trunk_options_class(name: str) -> type[BaseModel]:
    """The options model of trunk ``name``; ValueError naming the registered trunks otherwise."""
    if name not in _TRUNKS:
        raise ValueError(f"unknown trunk {name!r}; available: {available_trunks()}")
    return _TRUNKS[name][0]


def trunk_options(name: str, options: dict[str, Any]) -> BaseModel:
    """``options`` validated by trunk ``name``'s options model (defaults filled in)."""
    options_cls = trunk_options_class(name)
    try:
        return options_cls(**options)
    except ValidationError as exc:
        raise ValueError(f"invalid options for trunk {name!r}: {exc}") from exc


def run_trunk(
    trunk: Callable[..., Any],
    numbers: torch.Tensor,
    edge_index: torch.Tensor,
    edge_vec: torch.Tensor,
    batch: torch.Tensor | None = None,
    num_graphs: int | None = None,
    needs_batch: bool | None = None,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """Call ``trunk`` by the contract above and return its invariant features [N, F]. ``needs_batch``: override
    of the trunk's own attribute (for wrappers such as a compiled trunk); ``condition``: per-atom [N, F] added to
    the initial features (only for a trunk with ``accepts_condition``)."""
    if needs_batch is None:
        needs_batch = bool(getattr(trunk, "needs_batch", False))
    kwargs: dict[str, Any] = {}
    if condition is not None:
        kwargs["condition"] = condition
    if needs_batch:
        if batch is None:
            raise ValueError(f"trunk {type(trunk).__name__} needs the batch index of every atom (batch=...)")
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        out = trunk(numbers, edge_index, edge_vec, batch=batch, num_graphs=num_graphs, **kwargs)
    else:
        out = trunk(numbers, edge_index, edge_vec, **kwargs)
    features: torch.Tensor = out.scalars if isinstance(out, TrunkFeatures) else out
    return features


def build_trunk(name: str, options: dict[str, Any]) -> nn.Module:
    opts = trunk_options(name, options)
    return _TRUNKS[name][1](opts)


__all__ = [
    "TrunkFeatures",
    "register_trunk",
    "available_trunks",
    "trunk_options_class",
    "trunk_options",
    "build_trunk",
    "run_trunk",
]
