"""The ``eos`` suite's inputs: the Delta test against ase.collections.dcdft (validation/eos.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gfm_ase.validation.suites.registry import Comparison, Suite, keyword_options, register_suite

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
        "--elements",
        nargs="+",
        default=None,
        help="elements to test (default: those the calculator covers, else all 71)",
    )
    s.add_argument("--reference", default="wien2k", choices=["wien2k", "exp"])
    s.add_argument("--points", type=positive(int), default=7, help="volumes per element over 0.94-1.06 V0")


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.eos import run_eos

    return run_eos(calculator(), args.elements, reference=args.reference, n_points=args.points, outdir=args.outdir)


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.eos import run_eos

    elements = opts.pop("elements", None)
    return run_eos(calc, elements, outdir=outdir, **keyword_options(run_eos, opts, ("outdir",), "eos"))


def compare_table(runs: dict[str, dict]) -> list[str]:
    """Delta per element, and its mean and median over the elements every calculator evaluated."""
    import numpy as np

    from gfm_ase.validation.suites.tables import by_z, fmt

    per = {n: r["details"]["elements"] for n, r in runs.items()}
    common = sorted(set.intersection(*(set(e) for e in per.values())), key=by_z)
    allel = sorted(set.union(*(set(e) for e in per.values())), key=by_z)
    names = list(runs)
    lines = ["| element | " + " | ".join(f"{n} Delta (meV/atom)" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for el in allel:
        lines.append(f"| {el} | " + " | ".join(fmt(per[n].get(el, {}).get("delta_meV")) for n in names) + " |")
    means = [np.mean([per[n][el]["delta_meV"] for el in common]) for n in names]
    meds = [np.median([per[n][el]["delta_meV"] for el in common]) for n in names]
    lines.append(
        f"| **mean over the {len(common)} common elements** | " + " | ".join(f"**{m:.2f}**" for m in means) + " |"
    )
    lines.append("| median over the common elements | " + " | ".join(f"{m:.2f}" for m in meds) + " |")
    lines.append(
        "| elements evaluated / failed | "
        + " | ".join(f"{len(per[n])} / {len(runs[n]['details'].get('failed', {}))}" for n in names)
        + " |"
    )
    # rows written before the recentring (runs of older versions) have no recentred_at: counted as not recentred
    lines.append(
        "| of them resampled around the calculator's own minimum (outside 0.94-1.06 x V0) | "
        + " | ".join(str(sum(r.get("recentred_at") is not None for r in per[n].values())) for n in names)
        + " |"
    )
    from gfm_ase.validation.eos import V0_OFF_PCT

    off = [sorted((el for el, r in per[n].items() if abs(r["v0_err_pct"]) > V0_OFF_PCT), key=by_z) for n in names]
    lines.append(
        f"| elements with V0 more than {V0_OFF_PCT:g} % from WIEN2k | "
        + " | ".join(f"{len(o)}: {' '.join(o)}" if o else "0" for o in off)
        + " |"
    )
    lines.append(
        "| mean abs V0 error over the common elements (%) | "
        + " | ".join(f"{np.mean([abs(per[n][el]['v0_err_pct']) for el in common]):.1f}" for n in names)
        + " |"
    )
    return lines


SUITE = register_suite(
    Suite(
        "eos",
        "Delta test against the WIEN2k references of ase.collections.dcdft",
        add_arguments,
        run_args,
        run_yaml,
        (Comparison("eos", "Equation of state: Delta against WIEN2k", compare_table, 10),),
    )
)
