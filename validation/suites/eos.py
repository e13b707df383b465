"""The ``eos`` suite's inputs: the Delta test against ase.collections.dcdft (validation/eos.py)."""
from __future__ import annotations

from validation.suites.registry import Suite, keyword_options, register_suite


def add_arguments(s) -> None:
    from gfm_ase.cli.options import positive

    s.add_argument("--elements", nargs="+", default=None,
                   help="elements to test (default: those the calculator covers, else all 71)")
    s.add_argument("--reference", default="wien2k", choices=["wien2k", "exp"])
    s.add_argument("--points", type=positive(int), default=7, help="volumes per element over 0.94-1.06 V0")


def run_args(args, calculator):
    from validation.eos import run_eos

    return run_eos(calculator(), args.elements, reference=args.reference, n_points=args.points, outdir=args.outdir)


def run_yaml(calc, opts, base, outdir):
    from validation.eos import run_eos

    elements = opts.pop("elements", None)
    return run_eos(calc, elements, outdir=outdir, **keyword_options(run_eos, opts, ("outdir",), "eos"))


SUITE = register_suite(Suite("eos", "Delta test against the WIEN2k references of ase.collections.dcdft",
                             add_arguments, run_args, run_yaml))
