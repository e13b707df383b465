"""The ``dimers`` suite's inputs: short-range repulsion of dimer energy curves (validation/dimers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from gfm_ase.validation.suites.registry import Suite, keyword_options, register_suite

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from pathlib import Path

    from ase.calculators.calculator import BaseCalculator

    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.validation.calculators import CalculatorLike
    from gfm_ase.validation.output import SuiteResult


def add_arguments(s: argparse.ArgumentParser) -> None:
    from gfm_ase.cli.options import positive

    s.add_argument(
        "--elements",
        nargs="+",
        default=None,
        help="elements (each with itself and with O; default: the Delta-test elements covered)",
    )
    s.add_argument("--f-min", type=positive(float), default=0.2, help="closest distance / covalent-radius sum")
    s.add_argument("--f-max", type=positive(float), default=1.3, help="farthest distance / covalent-radius sum")
    s.add_argument("--step", type=positive(float), default=0.05)
    s.add_argument(
        "--f-wall",
        type=positive(float),
        default=0.7,
        help="the energy must rise monotonically towards f-min over f <= this",
    )
    s.add_argument(
        "--min-distance-factor",
        type=positive(float, zero=True),
        default=None,
        help="--model only: the calculator's geometry check (default: its own, 0.4; 0 evaluates every distance)",
    )


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.dimers import run_dimers

    calc = calculator()
    if args.min_distance_factor is not None:
        if not hasattr(calc, "sanity"):
            raise ValueError("--min-distance-factor only applies to a gfm-ase --model")
        from gfm_ase.graph.sanity import SanityCheck

        gfm = cast("GFMCalculator", calc)  # a calculator with a geometry check is a gfm-ase one
        gfm.sanity = SanityCheck(args.min_distance_factor, cutoff=gfm.model.cutoff)
    return run_dimers(
        calc, args.elements, f_min=args.f_min, f_max=args.f_max, step=args.step, f_wall=args.f_wall, outdir=args.outdir
    )


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.dimers import run_dimers

    elements = opts.pop("elements", None)
    return run_dimers(calc, elements, outdir=outdir, **keyword_options(run_dimers, opts, ("outdir",), "dimers"))


SUITE = register_suite(
    Suite(
        "dimers",
        "short-range repulsion: dimer energy curves below bonding distances",
        add_arguments,
        run_args,
        run_yaml,
        (),
    )
)  # no side-by-side table (python -m gfm_ase.validation.compare)
