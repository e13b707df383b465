"""``gfm validate SUITE [--model M --head H | --calculator NAME] [suite options] -o OUTDIR``.

Without --model and --calculator the suite runs the default gfm-ase model (``gfm_ase.hub.default_model``); give
--head for a model with several heads.

Every suite writes OUTDIR/summary.json (headline numbers first), its PNG plots, OUTDIR/report.md and report.html.
"""
from __future__ import annotations

import argparse
import json


def _common(p: argparse.ArgumentParser, outdir_required: bool = True) -> None:
    from gfm_ase.dispersion import DAMPING
    from gfm_ase.hub import default_model_help

    g = p.add_argument_group("calculator (one of; neither: the default gfm-ase model)")
    g.add_argument("--model", default=None,
                   help="gfm-ase model: built-in name, model directory, training output directory or URL "
                        + default_model_help())
    g.add_argument("--head", default=None, help="head (level of theory) of --model")
    g.add_argument("--calculator", default=None, metavar="NAME",
                   help="'emt' or 'module:factory' (a callable returning an ASE calculator)")
    g.add_argument("--device", default="auto", help="device for --model (auto, cpu, cuda)")
    g.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="precision for --model (float64 default: phonons and EOS need it)")
    g.add_argument("--allow-unknown-elements", action="store_true",
                   help="let a --model head evaluate elements outside its training data")
    g.add_argument("--dispersion", default=None, choices=sorted(DAMPING),
                   help="add DFT-D3 dispersion to a --model head, with its functional's damping parameters "
                        "(gfm_ase.dispersion; needs the d3 extra)")
    p.add_argument("-o", "--outdir", required=outdir_required, help="output directory")


def register(sub) -> None:
    from gfm_ase.cli.options import positive

    p = sub.add_parser("validate", help="validate a calculator against DFT references (errors, eos, phonons, "
                       "relax, md, report)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    suites = p.add_subparsers(dest="suite", metavar="SUITE")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = suites.add_parser("errors", help="energy/force/stress MAE and RMSE on labelled structures")
    _common(s)
    s.add_argument("--data", required=True,
                   help="labelled structures: a gfm data store, or any file ASE reads with energies/forces "
                        "(extxyz, vasprun.xml, ...)")
    s.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="use one split of a store (gfm_ase.data.splits, seeded)")
    s.add_argument("--split-seed", type=int, default=0)
    s.add_argument("--max-structures", type=positive(int), default=None, help="random subset of at most N (seeded)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--align", default="none", choices=["none", "per-element"],
                   help="per-element: fit per-element energy offsets first (for another level of theory)")
    s.add_argument("--uncertainty", action="store_true",
                   help="--model head's spread (committee or family; GFMCalculator(uncertainty=True)): adds the "
                        "calibration table, calibration.png and the *_within_1sigma / *_spread_spearman numbers")
    s.set_defaults(func=_run_errors)

    s = suites.add_parser("eos", help="Delta test against the WIEN2k references of ase.collections.dcdft")
    _common(s)
    s.add_argument("--elements", nargs="+", default=None,
                   help="elements to test (default: those the calculator covers, else all 71)")
    s.add_argument("--reference", default="wien2k", choices=["wien2k", "exp"])
    s.add_argument("--points", type=positive(int), default=7, help="volumes per element over 0.94-1.06 V0")
    s.set_defaults(func=_run_eos)

    s = suites.add_parser("phonons", help="phonons against a phonopy reference folder (VASP, QE, FORCE_SETS, QHA)")
    _common(s)
    s.add_argument("--reference", required=True, nargs="+",
                   help="reference folder(s): phonopy yaml / FORCE_SETS / vasprun.xml / pw.x outputs / BORN, "
                        "or a folder of such folders")
    s.add_argument("--relax-first", action="store_true", help="relax the unit cell with the calculator first")
    s.add_argument("--supercell", nargs="+", type=positive(int), default=None,
                   help="override the supercell matrix (3 or 9 integers)")
    s.add_argument("--primitive", default=None, help="override the primitive matrix ('auto', 'F', or 9 numbers)")
    s.add_argument("--mesh", nargs="+", type=positive(float), default=[50.0],
                   help="q-mesh: three integers, or one length in A (default 50)")
    s.add_argument("--band-points", type=positive(int), default=51)
    s.add_argument("--no-nac", action="store_true", help="ignore BORN (no non-analytical correction)")
    s.add_argument("--no-subtract-residual", action="store_true",
                   help="do not subtract the calculator's forces on the undisplaced supercell")
    s.add_argument("--imag-tol", type=positive(float, zero=True), default=0.1,
                   help="THz below zero counted as imaginary")
    s.add_argument("--fmax", type=positive(float), default=1e-3, help="relax-first force threshold (eV/A)")
    s.set_defaults(func=_run_phonons)

    s = suites.add_parser("relax", help="relax structures and compare with reference relaxed structures")
    _common(s)
    s.add_argument("--reference", required=True, nargs="+",
                   help="reference relaxed structures (any ASE-readable files; all frames are used)")
    s.add_argument("--initial", nargs="+", default=None,
                   help="starting structures in the same order (default: the references, perturbed)")
    s.add_argument("--rattle", type=positive(float, zero=True), default=0.03,
                   help="perturbation: random displacement std (A)")
    s.add_argument("--strain", type=positive(float, zero=True), default=0.02, help="perturbation: max random strain")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--optimizer", default="FIRE", choices=["FIRE", "BFGS"])
    s.add_argument("--fmax", type=positive(float), default=0.01)
    s.add_argument("--steps", type=positive(int), default=500)
    s.add_argument("--fixed-cell", action="store_true", help="relax positions only")
    s.set_defaults(func=_run_relax)

    s = suites.add_parser("md", help="NVE energy drift, stability and an NVT temperature check")
    _common(s)
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--structure", help="starting structure (any ASE-readable file; first frame)")
    src.add_argument("--bulk", help="an ase.build.bulk crystal, e.g. Cu, or 'Si:diamond:5.43'")
    s.add_argument("--repeat", nargs=3, type=positive(int), default=None, help="supercell repetitions")
    s.add_argument("--temperature", type=positive(float), default=300.0, help="K")
    s.add_argument("--timestep", type=positive(float), default=1.0, help="fs")
    s.add_argument("--nve-ps", type=positive(float), default=1.0, help="NVE length (ps)")
    s.add_argument("--nvt-ps", type=positive(float, zero=True), default=1.0,
                   help="NVT length (ps); 0 skips the NVT check")
    s.add_argument("--min-distance", type=positive(float, zero=True), default=0.5,
                   help="A: closer atoms count as a collapse")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_run_md)

    s = suites.add_parser("dimers", help="short-range repulsion: dimer energy curves below bonding distances")
    _common(s)
    s.add_argument("--elements", nargs="+", default=None,
                   help="elements (each with itself and with O; default: the Delta-test elements covered)")
    s.add_argument("--f-min", type=positive(float), default=0.2, help="closest distance / covalent-radius sum")
    s.add_argument("--f-max", type=positive(float), default=1.3, help="farthest distance / covalent-radius sum")
    s.add_argument("--step", type=positive(float), default=0.05)
    s.add_argument("--f-wall", type=positive(float), default=0.7,
                   help="the energy must rise monotonically towards f-min over f <= this")
    s.add_argument("--min-distance-factor", type=positive(float, zero=True), default=None,
                   help="--model only: the calculator's geometry check (default: its own, 0.4; 0 evaluates every "
                        "distance)")
    s.set_defaults(func=_run_dimers)

    s = suites.add_parser("report", help="run several suites from one YAML file into one report")
    _common(s)
    s.add_argument("config", help="YAML: calculator (optional if given here) and suites with their options")
    s.set_defaults(func=_run_report)


# ----------------------------------------------------------------------------------------------------------------
def _calculator(args):
    from gfm_ase.hub import default_model
    from validation.calculators import make_calculator

    model = args.model
    if args.calculator is None and model is None:  # neither given: the default gfm-ase model
        model = default_model()
    return make_calculator(args.calculator, model=model, head=args.head, device=args.device, dtype=args.dtype,
                           allow_unknown_elements=args.allow_unknown_elements, dispersion=args.dispersion,
                           uncertainty=getattr(args, "uncertainty", False))


def _finish(result, args) -> int:
    print(f"{result.suite}: {args.outdir}/summary.json, {args.outdir}/report.md")
    for k, v in result.summary.items():
        if not isinstance(v, (dict, list)):
            print(f"  {k}: {v}")
    return 0


def _guard(fn):
    def run(args) -> int:
        from gfm_ase.checkpoint import CheckpointError
        from gfm_ase.cli.errors import report

        try:
            return fn(args)
        except (ValueError, KeyError, OSError, TypeError, CheckpointError) as exc:
            return report(f"gfm validate {args.suite}", exc, getattr(args, "debug", False))
    return run


@_guard
def _run_errors(args) -> int:
    from validation.errors import load_structures, run_errors

    structures, name = load_structures(args.data, split=args.split, split_seed=args.split_seed)
    return _finish(run_errors(_calculator(args), structures, name=name, align=args.align,
                              max_structures=args.max_structures, seed=args.seed, outdir=args.outdir), args)


@_guard
def _run_eos(args) -> int:
    from validation.eos import run_eos

    return _finish(run_eos(_calculator(args), args.elements, reference=args.reference, n_points=args.points,
                           outdir=args.outdir), args)


def _mesh(values):
    if len(values) == 1:
        return float(values[0])
    if len(values) == 3 and all(float(v).is_integer() for v in values):
        return [int(v) for v in values]
    raise ValueError("--mesh takes three integers or one length")


@_guard
def _run_phonons(args) -> int:
    from validation.phonons import load_references, run_phonons

    if args.supercell is not None and len(args.supercell) not in (3, 9):
        raise ValueError("--supercell takes 3 or 9 integers")
    smat = None if args.supercell is None else (
        args.supercell if len(args.supercell) == 3 else [args.supercell[i:i + 3] for i in (0, 3, 6)])
    refs = [r for path in args.reference for r in load_references(path, smat, args.primitive)]
    return _finish(run_phonons(_calculator(args), refs, relax=args.relax_first, mesh=_mesh(args.mesh),
                               band_points=args.band_points, nac=not args.no_nac,
                               subtract_residual=not args.no_subtract_residual, imag_tol=args.imag_tol,
                               fmax=args.fmax, outdir=args.outdir), args)


@_guard
def _run_relax(args) -> int:
    from validation.relax import read_structures, run_relax

    refs = read_structures(args.reference)
    initial = read_structures(args.initial) if args.initial else None
    return _finish(run_relax(_calculator(args), refs, initial=initial, rattle=args.rattle, strain=args.strain,
                             seed=args.seed, optimizer=args.optimizer, fmax=args.fmax, steps=args.steps,
                             relax_cell=not args.fixed_cell, outdir=args.outdir), args)


@_guard
def _run_md(args) -> int:
    from validation.md import run_md, starting_structure

    atoms = starting_structure(structure=args.structure, bulk=args.bulk, repeat=args.repeat)
    return _finish(run_md(_calculator(args), atoms, temperature=args.temperature, timestep_fs=args.timestep,
                          nve_ps=args.nve_ps, nvt_ps=args.nvt_ps, min_distance=args.min_distance, seed=args.seed,
                          outdir=args.outdir), args)


@_guard
def _run_dimers(args) -> int:
    from validation.dimers import run_dimers

    calc = _calculator(args)
    if args.min_distance_factor is not None:
        if not hasattr(calc, "sanity"):
            raise ValueError("--min-distance-factor only applies to a gfm-ase --model")
        from gfm_ase.graph.sanity import SanityCheck

        calc.sanity = SanityCheck(args.min_distance_factor, cutoff=calc.model.cutoff)
    return _finish(run_dimers(calc, args.elements, f_min=args.f_min, f_max=args.f_max, step=args.step,
                              f_wall=args.f_wall, outdir=args.outdir), args)


@_guard
def _run_report(args) -> int:
    from validation.report import load_config, run_report

    if args.calculator or args.model:
        calc = _calculator(args)
    elif load_config(args.config).get("calculator") is not None:
        calc = None  # the YAML's calculator
    else:
        calc = _calculator(args)  # the default model
    result = run_report(args.config, calc=calc, outdir=args.outdir)
    print(json.dumps(result.summary, indent=1, default=str))
    return 0 if not result.summary.get("n_failed") else 1
