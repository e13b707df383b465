"""The ``errors`` suite's inputs: energy/force/stress MAE and RMSE on labelled structures (validation/errors.py)."""

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

    s.add_argument(
        "--data",
        required=True,
        help="labelled structures: a gfm data store, or any file ASE reads with energies/forces "
        "(extxyz, vasprun.xml, ...)",
    )
    s.add_argument(
        "--split",
        default=None,
        choices=["train", "val", "test"],
        help="use one split of a store (gfm_ase.data.splits, seeded)",
    )
    s.add_argument("--split-seed", type=int, default=0)
    s.add_argument("--max-structures", type=positive(int), default=None, help="random subset of at most N (seeded)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--align",
        default="none",
        choices=["none", "per-element"],
        help="per-element: fit per-element energy offsets first (for another level of theory)",
    )
    s.add_argument(
        "--uncertainty",
        action="store_true",
        help="--model head's spread (committee or family; GFMCalculator(uncertainty=True)): adds the "
        "calibration table, calibration.png and the *_within_1sigma / *_spread_spearman numbers",
    )


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.errors import load_structures, run_errors

    structures, name = load_structures(args.data, split=args.split, split_seed=args.split_seed)
    return run_errors(
        calculator(),
        structures,
        name=name,
        align=args.align,
        max_structures=args.max_structures,
        seed=args.seed,
        outdir=args.outdir,
    )


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.errors import load_structures, run_errors

    if "data" not in opts:
        raise ValueError("errors: 'data' (a store or an ASE-readable file) is required")
    structures, name = load_structures(
        resolve_path(base, opts.pop("data")), split=opts.pop("split", None), split_seed=opts.pop("split_seed", 0)
    )
    opts.setdefault("name", name)
    return run_errors(calc, structures, outdir=outdir, **keyword_options(run_errors, opts, ("outdir",), "errors"))


def compare_table(runs: dict[str, dict]) -> list[str]:
    """Energy / force MAE per element and over all structures."""
    from gfm_ase.validation.suites.tables import by_z, fmt

    names = list(runs)
    per = {n: r["details"].get("per_element", {}) for n, r in runs.items()}
    els = sorted(set.union(*(set(p) for p in per.values())), key=by_z)
    lines = [
        "| element | " + " | ".join(f"{n} E MAE (meV/atom) / F MAE (meV/A)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for el in els:
        cells = []
        for n in names:
            d = per[n].get(el, {})
            e = d.get("energy_meV_atom", {}).get("mae")
            f = d.get("forces_meV_A", {}).get("mae")
            cells.append(f"{fmt(e)} / {fmt(f)}")
        lines.append(f"| {el} | " + " | ".join(cells) + " |")
    lines.append(
        "| all | "
        + " | ".join(
            f"{fmt(runs[n]['summary'].get('energy_mae_meV_atom'))} / {fmt(runs[n]['summary'].get('forces_mae_meV_A'))}"
            for n in names
        )
        + " |"
    )
    return lines


def compare_slopes(runs: dict[str, dict]) -> list[str]:
    """Force slope and energy slope (structures of one element) per element, and both over all structures."""
    from gfm_ase.validation.suites.tables import by_z, fmt

    names = list(runs)
    per = {n: r["details"].get("per_element", {}) for n, r in runs.items()}
    els = sorted(set.union(*(set(p) for p in per.values())), key=by_z)
    lines = [
        "| element | " + " | ".join(f"{n} F slope / E slope" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for el in els:
        pairs = [
            (per[n].get(el, {}).get("forces_slope"), per[n].get(el, {}).get("energy_slope_elemental")) for n in names
        ]
        lines.append(f"| {el} | " + " | ".join(f"{fmt(f, 3)} / {fmt(e, 3)}" for f, e in pairs) + " |")
    pairs = [(runs[n]["summary"].get("forces_slope"), runs[n]["summary"].get("energy_slope")) for n in names]
    lines.append("| all | " + " | ".join(f"{fmt(f, 3)} / {fmt(e, 3)}" for f, e in pairs) + " |")
    return lines


def compare_overall(runs: dict[str, dict]) -> list[str]:
    """Energy / force / stress MAE over all structures (one row per calculator)."""
    from gfm_ase.validation.suites.tables import fmt

    lines = [
        "| calculator | structures | E MAE (meV/atom) | F MAE (meV/A) | S MAE (GPa) |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, r in runs.items():
        s = r["summary"]
        maes = [s.get("energy_mae_meV_atom"), s.get("forces_mae_meV_A"), s.get("stress_mae_GPa")]
        lines.append(f"| {n} | {s.get('n_structures', '-')} | " + " | ".join(fmt(c) for c in maes) + " |")
    return lines


# validation/card_runs.sh runs the suite on the mlearn test sets twice (raw energies into errors/, --align
# per-element into errors-aligned/) and on the FitSNAP held-out test splits (fitsnap_X/, aligned)
SUITE = register_suite(
    Suite(
        "errors",
        "energy/force/stress MAE and RMSE on labelled structures",
        add_arguments,
        run_args,
        run_yaml,
        (
            Comparison("errors", "mlearn test sets, raw energies", compare_table, 30),
            Comparison("errors-aligned", "mlearn test sets, per-element energy offsets fitted", compare_table, 31),
            Comparison(
                "errors-aligned",
                "mlearn test sets, energy and force scale (least-squares slope against DFT; below 1 = softened)",
                compare_slopes,
                32,
            ),
            *(
                Comparison(
                    f"fitsnap_{x}",
                    f"FitSNAP {x} held-out test split, per-element energy offsets fitted",
                    compare_overall,
                    33 + k,
                )
                for k, x in enumerate(("Ta", "InP", "Fe"))
            ),
        ),
    )
)
