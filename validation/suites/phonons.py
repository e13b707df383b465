"""The ``phonons`` suite's inputs: phonons against a phonopy reference folder (validation/phonons)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gfm_ase.validation.suites.registry import Comparison, Suite, keyword_options, register_suite, resolve_path

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
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
        help="reference folder(s): phonopy yaml / FORCE_SETS / vasprun.xml / pw.x outputs / BORN, "
        "or a folder of such folders",
    )
    s.add_argument("--relax-first", action="store_true", help="relax the unit cell with the calculator first")
    s.add_argument(
        "--supercell",
        nargs="+",
        type=positive(int),
        default=None,
        help="override the supercell matrix (3 or 9 integers)",
    )
    s.add_argument("--primitive", default=None, help="override the primitive matrix ('auto', 'F', or 9 numbers)")
    s.add_argument(
        "--mesh",
        nargs="+",
        type=positive(float),
        default=[50.0],
        help="q-mesh: three integers, or one length in A (default 50)",
    )
    s.add_argument("--band-points", type=positive(int), default=51)
    s.add_argument("--no-nac", action="store_true", help="ignore BORN (no non-analytical correction)")
    s.add_argument(
        "--no-subtract-residual",
        action="store_true",
        help="do not subtract the calculator's forces on the undisplaced supercell",
    )
    s.add_argument(
        "--imag-tol", type=positive(float, zero=True), default=0.1, help="THz below zero counted as imaginary"
    )
    s.add_argument("--fmax", type=positive(float), default=1e-3, help="relax-first force threshold (eV/A)")


def _mesh(values: Sequence[float]) -> float | list[int]:
    if len(values) == 1:
        return float(values[0])
    if len(values) == 3 and all(float(v).is_integer() for v in values):
        return [int(v) for v in values]
    raise ValueError("--mesh takes three integers or one length")


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.phonons import load_references, run_phonons

    if args.supercell is not None and len(args.supercell) not in (3, 9):
        raise ValueError("--supercell takes 3 or 9 integers")
    smat = (
        None
        if args.supercell is None
        else (args.supercell if len(args.supercell) == 3 else [args.supercell[i : i + 3] for i in (0, 3, 6)])
    )
    refs = [r for path in args.reference for r in load_references(path, smat, args.primitive)]
    return run_phonons(
        calculator(),
        refs,
        relax=args.relax_first,
        mesh=_mesh(args.mesh),
        band_points=args.band_points,
        nac=not args.no_nac,
        subtract_residual=not args.no_subtract_residual,
        imag_tol=args.imag_tol,
        fmax=args.fmax,
        outdir=args.outdir,
    )


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.phonons import load_references, run_phonons

    if "reference" not in opts:
        raise ValueError("phonons: 'reference' (a folder) is required")
    paths = opts.pop("reference")
    supercell, primitive = opts.pop("supercell", None), opts.pop("primitive", None)
    refs = [
        r
        for p in ([paths] if isinstance(paths, str) else paths)
        for r in load_references(resolve_path(base, p), supercell, primitive)
    ]
    return run_phonons(calc, refs, outdir=outdir, **keyword_options(run_phonons, opts, ("outdir",), "phonons"))


def compare_table(runs: dict[str, dict]) -> list[str]:
    """Band / mesh MAE per reference (marked where the calculator has imaginary modes the DFT has not, with its
    lowest frequency), and how often each calculator has the lowest band MAE."""
    from gfm_ase.validation.suites.tables import fmt

    per = {n: r["details"]["phonons"] for n, r in runs.items()}
    systems = sorted(set.union(*(set(p) for p in per.values())))
    names = list(runs)
    lines = [
        "| reference | " + " | ".join(f"{n} band / mesh MAE (THz)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    wins = {n: 0 for n in names}
    spurious = {n: 0 for n in names}

    def cell(n: str, s: str) -> str:
        r = per[n].get(s, {})
        text = f"{fmt(r.get('band_mae_THz'), 2)} / {fmt(r.get('mesh_mae_THz'), 2)}"
        if r.get("imaginary_calc") and not r.get("imaginary_ref"):
            spurious[n] += 1
            text += f" (imaginary, min {fmt(r.get('min_freq_calc_THz'), 1)})"
        return text

    for s in systems:
        vals = {n: per[n].get(s, {}).get("band_mae_THz") for n in names}
        ok = {n: v for n, v in vals.items() if v is not None}
        if len(ok) == len(names):
            wins[min(ok, key=lambda n: ok[n])] += 1
        lines.append(f"| {s} | " + " | ".join(cell(n, s) for n in names) + " |")
    lines.append(
        "| references where this calculator is best (band MAE) | " + " | ".join(str(wins[n]) for n in names) + " |"
    )
    lines.append(
        "| references with imaginary modes the DFT does not have | "
        + " | ".join(str(spurious[n]) for n in names)
        + " |"
    )
    return lines


SUITE = register_suite(
    Suite(
        "phonons",
        "phonons against a phonopy reference folder (VASP, QE, FORCE_SETS, QHA)",
        add_arguments,
        run_args,
        run_yaml,
        (Comparison("phonons", "Phonons against the DFT force sets", compare_table, 20),),
    )
)
