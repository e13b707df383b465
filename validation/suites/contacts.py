"""The ``contacts`` suite's inputs: pair contact scans inside a host structure (validation/contacts.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gfm_ase.validation.suites.registry import Comparison, Suite, keyword_options, register_suite, resolve_path

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from pathlib import Path

    from ase.calculators.calculator import BaseCalculator

    from gfm_ase.validation.calculators import CalculatorLike
    from gfm_ase.validation.output import SuiteResult


def add_arguments(s: argparse.ArgumentParser) -> None:
    from gfm_ase.cli.options import positive

    s.add_argument("--structure", required=True, help="the host structure (any ASE-readable file; first frame)")
    s.add_argument(
        "--pair",
        nargs=2,
        action="append",
        required=True,
        metavar=("A", "B"),
        help="species pair whose closest pair is pulled together (repeatable), e.g. --pair O O",
    )
    s.add_argument("--distances", nargs="+", type=positive(float), default=None, help="A (default 2.6 ... 1.0)")


def _pairs(raw: Any) -> list[tuple[str, str]]:
    from ase.data import atomic_numbers

    pairs = []
    for p in raw:
        if len(p) != 2 or any(el not in atomic_numbers for el in p):
            raise ValueError(f"a pair is two element symbols, got {p!r}")
        pairs.append((str(p[0]), str(p[1])))
    return pairs


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.contacts import DEFAULT_DISTANCES, run_contacts
    from gfm_ase.validation.md import starting_structure

    atoms = starting_structure(structure=args.structure)
    distances = args.distances or DEFAULT_DISTANCES
    return run_contacts(calculator(), atoms, _pairs(args.pair), distances=distances, outdir=args.outdir)


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.contacts import run_contacts
    from gfm_ase.validation.md import starting_structure

    structure = opts.pop("structure", None)
    if structure is None:
        raise ValueError("contacts: give 'structure'")
    atoms = starting_structure(structure=resolve_path(base, structure))
    pairs = _pairs(opts.pop("pairs", None) or [])
    return run_contacts(
        calc, atoms, pairs, outdir=outdir, **keyword_options(run_contacts, opts, ("outdir",), "contacts")
    )


def compare_table(runs: dict[str, dict]) -> list[str]:
    """E(r) - E(start) per pair and distance, one column per calculator."""
    from gfm_ase.validation.suites.tables import fmt

    names = list(runs)
    curves = {n: r["details"]["curves"] for n, r in runs.items()}
    lines = ["| pair | r (A) | " + " | ".join(f"{n} (eV)" for n in names) + " |", "|---|---:|" + "---:|" * len(names)]
    for key in dict.fromkeys(k for c in curves.values() for k in c):
        grid = next(c[key]["distances_A"] for c in curves.values() if key in c)
        for m, r in enumerate(grid):
            cells = []
            for n in names:
                c = curves[n].get(key)
                ok = c is not None and m < len(c["distances_A"]) and abs(c["distances_A"][m] - r) < 1e-9
                cells.append(fmt(c["energy_eV"][m], 2) if ok and c is not None else "-")
            lines.append(f"| {key} | {r:.2f} | " + " | ".join(cells) + " |")
    return lines


SUITE = register_suite(
    Suite(
        "contacts",
        "pair contact scans inside a host structure (one pair pulled together, the rest fixed)",
        add_arguments,
        run_args,
        run_yaml,
        (Comparison("contacts", "Contact scans inside a host (E - E(start), eV)", compare_table, 55),),
    )
)
