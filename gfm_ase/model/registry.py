"""Trunk registry: architectures are added here without touching heads, model or calculator.

A trunk is an ``nn.Module`` built from a pydantic options class, with attributes ``cutoff``, ``max_neighbors`` and
``num_features``, whose ``forward(numbers, edge_index, edge_vec, num_atoms)`` returns per-atom invariant features
``[N, num_features]``.
"""
from __future__ import annotations

from typing import Callable

from pydantic import ValidationError

_TRUNKS: dict[str, tuple[type, Callable]] = {}


def register_trunk(name: str, options_cls: type):
    def deco(cls):
        _TRUNKS[name] = (options_cls, cls)
        return cls

    return deco


def available_trunks() -> list[str]:
    _load_builtin()
    return sorted(_TRUNKS)


def _load_builtin():
    from gfm_ase.model import painn  # noqa: F401  (registers itself)


def trunk_options(name: str, options: dict):
    _load_builtin()
    if name not in _TRUNKS:
        raise ValueError(f"unknown trunk {name!r}; available: {sorted(_TRUNKS)}")
    options_cls, _ = _TRUNKS[name]
    try:
        return options_cls(**options)
    except ValidationError as exc:
        raise ValueError(f"invalid options for trunk {name!r}: {exc}") from exc


def build_trunk(name: str, options: dict):
    opts = trunk_options(name, options)
    return _TRUNKS[name][1](opts)
