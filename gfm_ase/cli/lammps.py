"""``gfm lammps``: run a LAMMPS input with a gfm-ase model and head (fix external; docs/simulation.md)."""

from __future__ import annotations

import argparse

import sys
import traceback


def register(sub: argparse._SubParsersAction) -> None:
    from gfm_ase.cli.options import add_dispersion_option

    p = sub.add_parser(
        "lammps",
        help="run a LAMMPS input with a gfm-ase model (needs the engines extra)",
        description="Run a LAMMPS input file (units metal) whose forces, energy and virial come from a gfm-ase model "
        "and head through fix external. The input needs no pair_style (or 'pair_style gfm' with "
        "'pair_coeff * * El1 El2 ...' to map atom types to elements); all atom types must be mapped "
        "before the first run or minimize. One MPI rank.",
    )
    p.add_argument("input", help="LAMMPS input file")
    p.add_argument(
        "--model", default=None, help="built-in name, model directory or URL (default: the default built-in model)"
    )
    p.add_argument("--head", default=None, help="head (level of theory); optional for single-head models")
    p.add_argument(
        "--types",
        nargs="+",
        default=None,
        metavar="EL",
        help="element of each atom type in type order (Si O), or TYPE=EL pairs (1=Si 2=O)",
    )
    p.add_argument(
        "--dtype",
        default="float64",
        choices=["float64", "float32", "bfloat16"],
        help="model precision (default float64)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, auto")
    p.add_argument(
        "--var",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="define a LAMMPS index variable (like lmp -var NAME VALUE); repeatable",
    )
    p.add_argument("--log", default="none", help="LAMMPS log file (default: none)")
    p.add_argument("--quiet", action="store_true", help="no LAMMPS screen output")
    p.add_argument(
        "--allow-unknown-elements",
        action="store_true",
        help="evaluate elements the head was not trained on (with a warning)",
    )
    add_dispersion_option(p)
    p.add_argument(
        "--no-mass-check",
        action="store_true",
        help="accept type masses that differ from the mapped elements' (isotopes)",
    )
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gfm_ase.graph.neighbors import StructureError
    from gfm_ase.simulation.lammps import GFMLammps, LammpsInputError, read_commands

    cmdargs = ["-log", args.log] + (["-screen", "none"] if args.quiet else [])
    for name, value in args.var:
        cmdargs += ["-var", name, value]
    try:
        commands = read_commands(args.input)  # an unreadable input fails before the model is loaded
        with GFMLammps(
            args.model,
            args.head,
            types=args.types,
            device=args.device,
            dtype=args.dtype,
            allow_unknown_elements=args.allow_unknown_elements,
            check_masses=not args.no_mass_check,
            cmdargs=cmdargs,
            dispersion=args.dispersion,
        ) as sim:
            sim.run_commands(commands)
    except (LammpsInputError, StructureError, ValueError, ImportError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"gfm lammps: error: {exc}", file=sys.stderr)
        return 2
    return 0
