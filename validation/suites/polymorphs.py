"""The ``polymorphs`` suite's inputs: energies of the elements' common lattices relative to the lowest
(validation/polymorphs.py)."""

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
    from gfm_ase.validation.polymorphs import LATTICES

    s.add_argument(
        "--elements",
        nargs="+",
        default=None,
        help="elements to test (default: the Delta-test elements the calculator covers)",
    )
    s.add_argument("--lattices", nargs="+", default=list(LATTICES), choices=list(LATTICES))


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.polymorphs import run_polymorphs

    return run_polymorphs(calculator(), args.elements, lattices=args.lattices, outdir=args.outdir)


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.polymorphs import run_polymorphs

    elements = opts.pop("elements", None)
    return run_polymorphs(
        calc, elements, outdir=outdir, **keyword_options(run_polymorphs, opts, ("outdir",), "polymorphs")
    )


def compare_table(runs: dict[str, dict]) -> list[str]:
    """dE of every lattice per element and calculator; summary rows against the **last** calculator (the
    reference, e.g. a model's teacher) over the element-lattices every calculator evaluated."""
    import numpy as np

    from gfm_ase.validation.polymorphs import NEAR_EV, ORDER_EV
    from gfm_ase.validation.suites.tables import by_z

    per = {n: r["details"]["elements"] for n, r in runs.items()}
    names = list(runs)
    ref = names[-1]
    lattices = [
        k for k in runs[ref]["summary"]["lattices"] if all(k in r["summary"]["lattices"] for r in runs.values())
    ]
    allel = sorted(set.union(*(set(e) for e in per.values())), key=by_z)
    common = [el for el in allel if all(el in per[n] for n in names)]
    head = "/".join(lattices)
    lines = [
        f"dE = E(lattice) - E(lowest lattice), eV/atom, in the order {head}; `*`: the lowest point of that lattice "
        f"is at the end of the volume scan (an upper bound). Summary rows against the last column, {ref}.",
        "",
        "| element | " + " | ".join(f"{n} dE {head}" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def cell(row: dict[str, Any] | None) -> str:
        if row is None:
            return "-"
        return " / ".join(f"{row['dE_eV'][k]:.2f}" + ("*" if k in row["at_edge"] else "") for k in lattices)

    for el in allel:
        lines.append(f"| {el} | " + " | ".join(cell(per[n].get(el)) for n in names) + " |")

    def deviations(n: str) -> dict[tuple[str, str], float]:
        """Per element-lattice: this calculator's E(lattice) - E(the reference's lowest lattice) minus the
        reference's, over the lattices (and reference-lowest lattices) neither run flagged at the end of its scan.
        Measured from the reference's lowest lattice, so a calculator with a wrong lowest lattice is not offset."""
        out = {}
        for el in common:
            mine, theirs = per[n][el], per[ref][el]
            low = theirs["lowest"]
            if low in mine["at_edge"] or low in theirs["at_edge"]:
                continue
            for k in lattices:
                if k == low or k in mine["at_edge"] or k in theirs["at_edge"]:
                    continue
                out[el, k] = (mine["dE_eV"][k] - mine["dE_eV"][low]) - theirs["dE_eV"][k]
        return out

    devs = {n: deviations(n) for n in names}
    lines.append(
        f"| **mean abs deviation from {ref} of E(lattice) - E({ref}'s lowest lattice) (eV/atom; the other lattices "
        f"of the {len(common)} common elements, none with a scan-edge minimum; number in brackets)** | "
        + " | ".join(f"**{np.mean(np.abs(list(d.values()))):.3f}** ({len(d)})" if d else "-" for d in devs.values())
        + " |"
    )
    lines.append(
        f"| of them more than {NEAR_EV:g} eV/atom from {ref}'s | "
        + " | ".join(str(int(np.sum(np.abs(list(d.values())) > NEAR_EV))) for d in devs.values())
        + " |"
    )
    lines.append(
        f"| elements where {ref}'s lowest lattice is more than {ORDER_EV:g} eV/atom above this calculator's lowest | "
        + " | ".join(
            " ".join(el for el in common if per[n][el]["dE_eV"][per[ref][el]["lowest"]] > ORDER_EV) or "0"
            for n in names
        )
        + " |"
    )
    worst = []
    for d in devs.values():
        (el, k), v = max(d.items(), key=lambda kv: abs(kv[1])) if d else (("-", "-"), 0.0)
        worst.append(f"{v:+.2f} ({el} {k})")
    lines.append(f"| largest deviation from {ref} (eV/atom) | " + " | ".join(worst) + " |")
    return lines


SUITE = register_suite(
    Suite(
        "polymorphs",
        "energies of the elements' common lattices (fcc, bcc, hcp, sc, diamond) relative to the lowest",
        add_arguments,
        run_args,
        run_yaml,
        (Comparison("polymorphs", "Polymorph energies of the elements", compare_table, 15),),
    )
)
