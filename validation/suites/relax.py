"""The ``relax`` suite's inputs: relaxations compared with reference relaxed structures (validation/relax.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gfm_ase.validation.suites.registry import Suite, keyword_options, register_suite, resolve_path

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from pathlib import Path

    from ase.calculators.calculator import BaseCalculator

    from gfm_ase.validation.calculators import CalculatorLike
    from gfm_ase.validation.output import SuiteResult


def add_arguments(s: argparse.ArgumentParser) -> None:
    from gfm_ase.cli.options import positive

    s.add_argument(
        "--reference",
        required=True,
        nargs="+",
        help="reference relaxed structures (any ASE-readable files; all frames are used)",
    )
    s.add_argument(
        "--initial",
        nargs="+",
        default=None,
        help="starting structures in the same order (default: the references, perturbed)",
    )
    s.add_argument(
        "--rattle", type=positive(float, zero=True), default=0.03, help="perturbation: random displacement std (A)"
    )
    s.add_argument("--strain", type=positive(float, zero=True), default=0.02, help="perturbation: max random strain")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--optimizer", default="FIRE", choices=["FIRE", "BFGS"])
    s.add_argument("--fmax", type=positive(float), default=0.01)
    s.add_argument("--steps", type=positive(int), default=500)
    s.add_argument("--fixed-cell", action="store_true", help="relax positions only")


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.relax import read_structures, run_relax

    refs = read_structures(args.reference)
    initial = read_structures(args.initial) if args.initial else None
    return run_relax(
        calculator(),
        refs,
        initial=initial,
        rattle=args.rattle,
        strain=args.strain,
        seed=args.seed,
        optimizer=args.optimizer,
        fmax=args.fmax,
        steps=args.steps,
        relax_cell=not args.fixed_cell,
        outdir=args.outdir,
    )


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.relax import read_structures, run_relax

    if "reference" not in opts:
        raise ValueError("relax: 'reference' (structure files) is required")
    refs = read_structures(resolve_path(base, opts.pop("reference")))
    if "initial" in opts:
        opts["initial"] = read_structures(resolve_path(base, opts.pop("initial")))
    return run_relax(calc, refs, outdir=outdir, **keyword_options(run_relax, opts, ("outdir",), "relax"))


SUITE = register_suite(
    Suite(
        "relax", "relax structures and compare with reference relaxed structures", add_arguments, run_args, run_yaml, ()
    )
)  # no side-by-side table (python -m gfm_ase.validation.compare)
