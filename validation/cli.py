"""``gfm validate SUITE [--model M --head H | --calculator NAME] [suite options] -o OUTDIR``.

Without --model and --calculator the suite runs the default gfm-ase model (``gfm_ase.hub.default_model``); give
--head for a model with several heads.

Every suite writes OUTDIR/summary.json (headline numbers first), its PNG plots, OUTDIR/report.md and report.html.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ase.calculators.calculator import BaseCalculator

    from gfm_ase.validation.output import SuiteResult
    from gfm_ase.validation.suites.registry import Suite

Command = Callable[[argparse.Namespace], int]


def _common(p: argparse.ArgumentParser, outdir_required: bool = True) -> None:
    from gfm_ase.cli.options import add_dispersion_option
    from gfm_ase.hub import default_model_help

    g = p.add_argument_group("calculator (one of; neither: the default gfm-ase model)")
    g.add_argument(
        "--model",
        default=None,
        help="gfm-ase model: built-in name, model directory, training output directory or URL " + default_model_help(),
    )
    g.add_argument("--head", default=None, help="head (level of theory) of --model")
    g.add_argument(
        "--calculator",
        default=None,
        metavar="NAME",
        help="'emt' or 'module:factory' (a callable returning an ASE calculator)",
    )
    g.add_argument("--device", default="auto", help="device for --model (auto, cpu, cuda)")
    g.add_argument(
        "--dtype",
        default="float64",
        choices=["float64", "float32"],
        help="precision for --model (float64 default: phonons and EOS need it)",
    )
    g.add_argument(
        "--allow-unknown-elements",
        action="store_true",
        help="let a --model head evaluate elements outside its training data",
    )
    add_dispersion_option(g, "a --model head")
    p.add_argument("-o", "--outdir", required=outdir_required, help="output directory")


def register(sub: argparse._SubParsersAction) -> None:
    from gfm_ase.validation.suites import SUITES

    p = sub.add_parser(
        "validate",
        help=f"validate a calculator against DFT references ({', '.join([*SUITES, 'report'])})",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    suites = p.add_subparsers(dest="suite", metavar="SUITE")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    for suite in SUITES.values():  # the registry (validation/suites): options and runner of each suite
        s = suites.add_parser(suite.name, help=suite.help)
        _common(s)
        suite.add_arguments(s)
        s.set_defaults(func=_guard(_runner(suite)))

    s = suites.add_parser("report", help="run several suites from one YAML file into one report")
    _common(s)
    s.add_argument("config", help="YAML: calculator (optional if given here) and suites with their options")
    s.set_defaults(func=_run_report)


# ----------------------------------------------------------------------------------------------------------------
def _calculator(args: argparse.Namespace) -> BaseCalculator:
    from gfm_ase.hub import default_model
    from gfm_ase.validation.calculators import make_calculator

    model = args.model
    if args.calculator is None and model is None:  # neither given: the default gfm-ase model
        model = default_model()
    return make_calculator(
        args.calculator,
        model=model,
        head=args.head,
        device=args.device,
        dtype=args.dtype,
        allow_unknown_elements=args.allow_unknown_elements,
        dispersion=args.dispersion,
        uncertainty=getattr(args, "uncertainty", False),
    )


def _finish(result: SuiteResult, args: argparse.Namespace) -> int:
    print(f"{result.suite}: {args.outdir}/summary.json, {args.outdir}/report.md")
    for k, v in result.summary.items():
        if not isinstance(v, (dict, list)):
            print(f"  {k}: {v}")
    return 0


def _guard(fn: Command) -> Command:
    def run(args: argparse.Namespace) -> int:
        from gfm_ase.checkpoint import CheckpointError
        from gfm_ase.cli.errors import report

        try:
            return fn(args)
        except (ValueError, KeyError, OSError, TypeError, CheckpointError) as exc:
            return report(f"gfm validate {args.suite}", exc, getattr(args, "debug", False))

    return run


def _runner(suite: Suite) -> Command:
    def run(args: argparse.Namespace) -> int:
        return _finish(suite.run_args(args, lambda: _calculator(args)), args)

    return run


@_guard
def _run_report(args: argparse.Namespace) -> int:
    from gfm_ase.validation.report import load_config, run_report

    if args.calculator or args.model:
        calc = _calculator(args)
    elif load_config(args.config).get("calculator") is not None:
        calc = None  # the YAML's calculator
    else:
        calc = _calculator(args)  # the default model
    result = run_report(args.config, calc=calc, outdir=args.outdir)
    print(json.dumps(result.summary, indent=1, default=str))
    return 0 if not result.summary.get("n_failed") else 1
