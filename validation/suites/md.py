"""The ``md`` suite's inputs: NVE energy drift, stability and an NVT temperature check (validation/md.py)."""

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

    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--structure", help="starting structure (any ASE-readable file; first frame)")
    src.add_argument("--bulk", help="an ase.build.bulk crystal, e.g. Cu, or 'Si:diamond:5.43'")
    s.add_argument("--repeat", nargs=3, type=positive(int), default=None, help="supercell repetitions")
    s.add_argument("--temperature", type=positive(float), default=300.0, help="K")
    s.add_argument("--timestep", type=positive(float), default=1.0, help="fs")
    s.add_argument("--nve-ps", type=positive(float), default=1.0, help="NVE length (ps)")
    s.add_argument(
        "--nvt-ps", type=positive(float, zero=True), default=1.0, help="NVT length (ps); 0 skips the NVT check"
    )
    s.add_argument(
        "--min-distance", type=positive(float, zero=True), default=0.5, help="A: closer atoms count as a collapse"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--checkpoint-every",
        type=positive(int),
        default=100,
        help="steps between saves of OUTDIR/md_state.json; running the same command again resumes",
    )


def run_args(args: argparse.Namespace, calculator: Callable[[], BaseCalculator]) -> SuiteResult:
    from gfm_ase.validation.md import run_md, starting_structure

    atoms = starting_structure(structure=args.structure, bulk=args.bulk, repeat=args.repeat)
    return run_md(
        calculator(),
        atoms,
        temperature=args.temperature,
        timestep_fs=args.timestep,
        nve_ps=args.nve_ps,
        nvt_ps=args.nvt_ps,
        min_distance=args.min_distance,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        outdir=args.outdir,
    )


def run_yaml(calc: CalculatorLike, opts: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    from gfm_ase.validation.md import run_md, starting_structure

    structure = opts.pop("structure", None)
    atoms = starting_structure(
        structure=resolve_path(base, structure) if structure else None,
        bulk=opts.pop("bulk", None),
        repeat=opts.pop("repeat", None),
    )
    return run_md(calc, atoms, outdir=outdir, **keyword_options(run_md, opts, ("outdir",), "md"))


def compare_table(runs: dict[str, dict]) -> list[str]:
    """One MD run per calculator (the same command): stable or not, how far it ran, the closest contact over the
    run with its species, the pair most often closest, temperature and NVE drift."""
    from gfm_ase.validation.md import contact_summary
    from gfm_ase.validation.suites.tables import fmt

    lines = [
        "| calculator | stable | NVE + NVT (ps) | closest contact (A) | most often closest | T error (%) "
        "| NVE drift (meV/atom/ps) |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for name, run in runs.items():
        s = run["summary"]
        d = run["details"]
        if "closest_pair" not in d["nve"]:  # a run written before the species were recorded
            d = {ph: (v if v is None else {**v, "closest_pair": [""] * len(v["min_distance"])}) for ph, v in d.items()}
        c = contact_summary(d["nve"], d.get("nvt"))
        pair = f" ({c['closest_pair']})" if c["closest_pair"] else ""
        top, n_top = next(iter(c["closest_pair_counts"].items()))
        share = f"{top} ({100 * n_top / sum(c['closest_pair_counts'].values()):.0f} %)" if top else "-"
        lines.append(
            f"| {name} | {'yes' if s.get('stable') else '**no**'} | {fmt(s.get('nve_ps'), 2)} + "
            f"{fmt(s.get('nvt_ps'), 2)} | {c['min_distance_A']:.2f}{pair} | {share} | "
            f"{fmt(s.get('nvt_temperature_err_pct'), 1)} | {fmt(s.get('nve_drift_meV_atom_ps'), 3)} |"
        )
    return lines


def _comparisons() -> tuple[Comparison, ...]:
    """One table per composition of validation/card_md.sh (folders md10_<name>)."""
    from gfm_ase.validation.novel_compositions import NAMES

    return tuple(
        Comparison(f"md10_{name}", f"MD, 1,000 K, 0.2 ps NVE + 10 ps NVT: {name}", compare_table, 60 + k)
        for k, name in enumerate(NAMES)
    )


SUITE = register_suite(
    Suite(
        "md",
        "NVE energy drift, stability and an NVT temperature check",
        add_arguments,
        run_args,
        run_yaml,
        _comparisons(),
    )
)
