"""Relax suite: relax structures with a calculator and compare with reference relaxed structures.

Each reference (a relaxed DFT structure, its energy optional) is relaxed by the calculator from a starting
structure: one given in ``initial``, or the reference itself perturbed (seeded random strain and rattle) so that
the calculator has to find its own minimum. Positions and cell relax together (FrechetCellFilter) for periodic
structures. Compared: pymatgen StructureMatcher match and RMSD (normalised by (V/n)^(1/3), as pymatgen reports
it, plus the maximum distance in A), volume error, and the energy per atom where the reference has one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from ase import Atoms

from gfm_ase.validation.calculators import CalculatorLike, as_calculator, describe
from gfm_ase.validation.output import SuiteResult, pyplot, save_figure, table

OPTIMIZERS = ("FIRE", "BFGS")


def read_structures(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Atoms]:
    """All frames of every file (ASE-readable); each gets ``info['name']`` (file[:frame]) unless it has one."""
    from ase.io import read

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for path in paths:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        try:
            frames = cast("list[Atoms]", read(p, index=":"))
        except Exception as exc:
            raise ValueError(f"cannot read {p} with ASE: {type(exc).__name__}: {exc}") from exc
        for i, a in enumerate(frames):
            a.info.setdefault("name", p.name if len(frames) == 1 else f"{p.name}:{i}")
            out.append(a)
    return out


def perturb(atoms: Atoms, rattle: float, strain: float, rng: np.random.Generator) -> Atoms:
    """A copy with a random symmetric strain (|e_ij| <= strain, periodic only) and Gaussian displacements."""
    a = atoms.copy()
    a.calc = None
    if strain > 0 and a.pbc.all():
        e = rng.uniform(-strain, strain, (3, 3))
        e = 0.5 * (e + e.T)
        a.set_cell(a.cell.array @ (np.eye(3) + e), scale_atoms=True)
    if rattle > 0:
        a.positions = a.positions + rng.normal(0.0, rattle, a.positions.shape)
    return a


def relax(
    atoms: Atoms,
    calc: CalculatorLike,
    *,
    optimizer: str = "FIRE",
    fmax: float = 0.01,
    steps: int = 500,
    relax_cell: bool = True,
) -> tuple[bool, int, float]:
    """Relax ``atoms`` (ase.Atoms) in place; returns (converged, steps taken, final max force in eV/A). For a
    pymatgen Structure or Molecule use :func:`gfm_ase.relax`, which returns the same type."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    if not isinstance(atoms, Atoms):
        raise TypeError(
            f"gfm_ase.validation.relax.relax relaxes ase.Atoms in place, got {type(atoms).__name__}; "
            "gfm_ase.relax(structure, calc) relaxes a pymatgen Structure/Molecule and returns one"
        )

    if optimizer.upper() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    atoms.calc = calc
    target = FrechetCellFilter(atoms) if (relax_cell and atoms.pbc.all()) else atoms
    opt = {"FIRE": FIRE, "BFGS": BFGS}[optimizer.upper()](target, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    fmax_final = float(np.sqrt((target.get_forces() ** 2).sum(axis=1).max()))
    return converged, int(opt.nsteps), fmax_final


def compare_structures(relaxed: Atoms, reference: Atoms) -> dict[str, Any]:
    """StructureMatcher match / RMSD for periodic structures, Kabsch RMSD for molecules; volume error."""
    out: dict[str, Any] = {}
    if reference.pbc.all():
        from pymatgen.analysis.structure_matcher import StructureMatcher
        from pymatgen.io.ase import AseAtomsAdaptor

        s1 = AseAtomsAdaptor.get_structure(relaxed)
        s2 = AseAtomsAdaptor.get_structure(reference)
        rms = StructureMatcher().get_rms_dist(s1, s2)
        out["matched"] = rms is not None
        out["rmsd"] = float(rms[0]) if rms is not None else None
        out["max_dist"] = float(rms[1]) if rms is not None else None
        out["volume_err_pct"] = 100.0 * (relaxed.get_volume() / reference.get_volume() - 1.0)
    else:
        from ase.build import minimize_rotation_and_translation

        a, b = relaxed.copy(), reference.copy()
        minimize_rotation_and_translation(b, a)
        d = np.linalg.norm(a.positions - b.positions, axis=1)
        out.update(
            {"matched": True, "rmsd": float(np.sqrt((d**2).mean())), "max_dist": float(d.max()), "volume_err_pct": None}
        )
    return out


def _reference_energy(atoms: Atoms) -> float | None:
    res = getattr(atoms.calc, "results", None) or {}
    e = res.get("energy")
    return None if e is None else float(e)


def run_relax(
    calc: CalculatorLike,
    references: Iterable[Atoms],
    *,
    initial: Sequence[Atoms] | None = None,
    rattle: float = 0.03,
    strain: float = 0.02,
    seed: int = 0,
    optimizer: str = "FIRE",
    fmax: float = 0.01,
    steps: int = 500,
    relax_cell: bool = True,
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """Relax with ``calc`` and compare with ``references`` (relaxed structures; energies optional)."""
    calc = as_calculator(calc)
    references = list(references)
    if not references:
        raise ValueError("no reference structures")
    if initial is not None and len(initial) != len(references):
        raise ValueError(f"{len(initial)} initial structures for {len(references)} references")
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for i, ref in enumerate(references):
        name = str(ref.info.get("name", i))
        if name in rows or name in failed:
            name = f"{name}#{i}"
        start = initial[i].copy() if initial is not None else perturb(ref, rattle, strain, rng)
        if len(start) != len(ref) or sorted(start.numbers) != sorted(ref.numbers):
            failed[name] = "initial and reference structures differ in composition"
            continue
        try:
            e_ref_calc = _energy(calc, ref)
            converged, nsteps, fmax_final = relax(
                start, calc, optimizer=optimizer, fmax=fmax, steps=steps, relax_cell=relax_cell
            )
            e = float(start.get_potential_energy())
            row = {
                "formula": ref.get_chemical_formula(),
                "n_atoms": len(ref),
                "converged": converged,
                "steps": nsteps,
                "fmax_final": fmax_final,
                **compare_structures(start, ref),
                "energy_calc_eV_atom": e / len(ref),
                "relaxation_energy_meV_atom": 1000.0 * (e - e_ref_calc) / len(ref),
            }
            e_ref = _reference_energy(ref)
            if e_ref is not None:
                row["energy_err_meV_atom"] = 1000.0 * (e - e_ref) / len(ref)
            rows[name] = row
        except Exception as exc:  # one structure must not end the suite; the report lists it
            failed[name] = f"{type(exc).__name__}: {exc}"
    summary = {
        "n_structures": len(references),
        "n_relaxed": len(rows),
        "n_failed": len(failed),
        "n_converged": sum(r["converged"] for r in rows.values()),
        "n_matched": sum(bool(r["matched"]) for r in rows.values()),
        "rmsd_mean": _mean(rows, "rmsd"),
        "max_dist_mean_A": _mean(rows, "max_dist"),
        "volume_mae_pct": _mean(rows, "volume_err_pct"),
        "energy_mae_meV_atom": _mean(rows, "energy_err_meV_atom"),
        "relaxation_energy_mean_meV_atom": _mean(rows, "relaxation_energy_meV_atom", absolute=False),
        "optimizer": f"{optimizer} + {'FrechetCellFilter' if relax_cell else 'fixed cell'}, fmax {fmax} eV/A",
    }
    sections = [
        "## Per structure",
        "",
        table(
            [
                "structure",
                "formula",
                "converged",
                "steps",
                "matched",
                "RMSD",
                "max dist Å",
                "ΔV %",
                "ΔE meV/atom",
                "E(relaxed) − E(ref geometry) meV/atom",
            ],
            [
                [
                    k,
                    r["formula"],
                    r["converged"],
                    r["steps"],
                    r["matched"],
                    r["rmsd"],
                    r["max_dist"],
                    r["volume_err_pct"],
                    r.get("energy_err_meV_atom"),
                    r["relaxation_energy_meV_atom"],
                ]
                for k, r in rows.items()
            ],
        ),
        "",
    ]
    if failed:
        sections += ["## Failed", "", table(["structure", "error"], [[k, v] for k, v in failed.items()]), ""]
    notes = [
        "RMSD is pymatgen's StructureMatcher value (normalised by (V/n)^(1/3)); max dist is in A",
        "E(relaxed) − E(ref geometry): how far below the reference structure the calculator's own minimum lies",
    ]
    if initial is None:
        notes.append(
            f"starting structures: references strained (|e| <= {strain}) and rattled ({rattle} A), seed {seed}"
        )
    result = SuiteResult(
        "relax", describe(calc), summary, {"structures": rows, "failed": failed}, sections, notes=notes
    )
    if outdir is not None:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        if rows:
            result.plots.append(plot_relax(rows, outdir / "relax.png"))
        result.write(outdir)
    return result


def _energy(calc: CalculatorLike, atoms: Atoms) -> float:
    a = atoms.copy()
    a.calc = calc
    return float(a.get_potential_energy())


def _mean(rows: dict[str, dict[str, Any]], key: str, absolute: bool = True) -> float | None:
    vals = [r[key] for r in rows.values() if r.get(key) is not None]
    if not vals:
        return None
    return float(np.mean(np.abs(vals) if absolute else vals))


def plot_relax(rows: dict[str, dict[str, Any]], path: Path) -> str:
    plt = pyplot()
    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 0.5 * len(names) + 3), 3.2))
    axes[0].bar(names, [rows[n]["volume_err_pct"] or 0.0 for n in names])
    axes[0].set_ylabel("volume error (%)")
    axes[1].bar(names, [rows[n]["rmsd"] if rows[n]["rmsd"] is not None else np.nan for n in names])
    axes[1].set_ylabel("RMSD (StructureMatcher)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=90, labelsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
