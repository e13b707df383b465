"""Which calculator a suite runs: an ASE calculator, a factory returning one, a gfm-ase head, or a CLI name."""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable

from ase.calculators.calculator import BaseCalculator

CalculatorLike = Any  # an ASE calculator or a zero-argument callable returning one


def make_calculator(
    spec: str | None = None,
    *,
    model: str | None = None,
    head: str | None = None,
    device: str = "auto",
    dtype: str = "float64",
    allow_unknown_elements: bool = False,
    dispersion: str | None = None,
    uncertainty: bool = False,
) -> BaseCalculator:
    """Build a calculator from CLI-style arguments.

    spec: ``"emt"`` (ASE's EMT), ``"module:factory"`` (``factory()`` must return an ASE calculator; a
      ``module.path:Class`` works too), or None with ``model``/``head`` for a gfm-ase head.
    dispersion: a DFT-D3 variant added to the gfm-ase head (``GFMCalculator(dispersion=...)``); not for ``spec``.
    uncertainty: the gfm-ase head also gives energy_std / forces_std (``GFMCalculator(uncertainty=True)``).
    """
    if spec is not None and model is not None:
        raise ValueError("give either a calculator name or --model/--head, not both")
    if spec is None:
        from gfm_ase.calculator import GFMCalculator

        return GFMCalculator(
            model=model,
            head=head,
            device=device,
            dtype=dtype,
            allow_unknown_elements=allow_unknown_elements,
            dispersion=dispersion,
            uncertainty=uncertainty,
        )
    if head is not None:
        raise ValueError("--head only applies to --model (a gfm-ase model)")
    if dispersion is not None:
        raise ValueError("--dispersion only applies to --model (a gfm-ase model)")
    if uncertainty:
        raise ValueError("--uncertainty only applies to --model (a gfm-ase model)")
    name = spec.strip()
    if name.lower() == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"calculator {name!r}: cannot import module {module_name!r}: {exc}") from exc
        factory = module
        for part in attr.split("."):
            if not hasattr(factory, part):
                raise ValueError(f"calculator {name!r}: {module_name!r} has no attribute {attr!r}")
            factory = getattr(factory, part)
        return as_calculator(factory, what=name)
    raise ValueError(
        f"unknown calculator {name!r}: use 'emt' or 'module:factory' (a callable returning an "
        "ASE calculator), or --model/--head for a gfm-ase model"
    )


def as_calculator(calc_or_factory: CalculatorLike | Callable[[], Any], what: str | None = None) -> BaseCalculator:
    """An ASE calculator from a calculator or a zero-argument factory."""
    if isinstance(calc_or_factory, BaseCalculator):
        return calc_or_factory
    if callable(calc_or_factory):
        calc = calc_or_factory()
        if not isinstance(calc, BaseCalculator):
            raise TypeError(f"{what or calc_or_factory!r} returned {type(calc).__name__}, not an ASE calculator")
        return calc
    raise TypeError(f"expected an ASE calculator or a factory returning one, got {type(calc_or_factory).__name__}")


def describe(calc: BaseCalculator) -> str:
    """A one-line description for reports: class name plus model/head where known. A gfm-ase model is named by
    its built-in name or directory name and its weights' sha256 (12 hex digits), never by a machine path."""
    name = type(calc).__name__
    head = getattr(calc, "head", None)
    if head is None:
        return name
    return f"{name}(model={model_label(getattr(calc, 'model_path', None))}, head={head})"


def model_label(path: str | os.PathLike | None) -> str:
    """``gfm-base (sha256 0123456789ab)`` for a model directory; ``in-memory`` without one."""
    if path is None:
        return "in-memory"
    from pathlib import Path

    from gfm_ase.checkpoint import read_model_json

    try:
        sha = read_model_json(path).get("weights_sha256", "")
    except Exception:  # a report line must not fail on an unreadable model document
        sha = ""
    label = Path(path).name
    return f"{label} (sha256 {sha[:12]})" if sha else label


def covered_elements(calc: BaseCalculator) -> list[str] | None:
    """Elements a calculator is meant for, where it says so; None when unknown (try everything).

    gfm-ase heads list their training elements (an empty list means any); EMT knows its parameter table; any
    calculator may declare ``calc.elements`` (or ``calc.supported_elements``) itself.
    """
    if getattr(calc, "allow_unknown_elements", False):
        return None  # the user asked to evaluate elements outside the training data
    head_config = getattr(calc, "head_config", None)
    if head_config is not None:
        return list(head_config.elements) or None
    for attr in ("elements", "supported_elements"):
        els = getattr(calc, attr, None)
        if els:
            return [str(e) for e in els]
    from ase.calculators.emt import EMT

    if isinstance(calc, EMT):
        from ase.calculators.emt import parameters

        return sorted(parameters)
    return None
