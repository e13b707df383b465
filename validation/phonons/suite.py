"""Phonon suite: recompute a phonopy reference's displaced supercells with a calculator and compare.

For displacement references: force constants, band-path and mesh frequencies (MAE, max-frequency error,
imaginary modes), DOS overlap and thermodynamics at chosen temperatures, with band structure + DOS overlaid in
one plot. For quasi-harmonic folders without forces: free energy / entropy / heat capacity vs T per volume and
the E(V) curve (Birch-Murnaghan V0, B0, B', Delta).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from gfm_ase.validation.calculators import CalculatorLike, as_calculator, covered_elements, describe
from gfm_ase.validation.delta import delta_mev
from gfm_ase.validation.eos_fit import fit_birch_murnaghan
from gfm_ase.validation.output import SuiteResult, table
from gfm_ase.validation.phonons.compare import compare_phonons, thermal
from gfm_ase.validation.phonons.compute import calculator_phonopy, reference_phonopy
from gfm_ase.validation.phonons.plots import plot_band_dos, plot_ev, plot_thermal
from gfm_ase.validation.phonons.qha import EVReference, ThermalReference
from gfm_ase.validation.phonons.reference import PhononReference, load_references

if TYPE_CHECKING:
    from phonopy.phonon.mesh import Mesh

    from gfm_ase.validation.eos_fit import EOSParams
    from gfm_ase.validation.phonons.reference import AnyReference

Rows = dict[str, dict[str, Any]]  # reference name -> its numbers


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__"))


def _uncovered(atoms_list: Iterable[Atoms], covered: Iterable[str] | None) -> list[str]:
    if covered is None:
        return []
    return sorted({s for a in atoms_list for s in a.get_chemical_symbols()} - set(covered))


def run_phonons(
    calc: CalculatorLike,
    reference: str | os.PathLike | AnyReference | list[AnyReference] | tuple[AnyReference, ...],
    *,
    relax: bool = False,
    supercell: npt.ArrayLike | None = None,
    primitive: str | npt.ArrayLike | None = None,
    mesh: float | Sequence[int] = 50.0,
    band_points: int = 51,
    nac: bool = True,
    subtract_residual: bool = True,
    imag_tol: float = 0.1,
    fmax: float = 1e-3,
    optimizer: str = "BFGS",
    temperatures: Sequence[float] = (300.0,),
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """Compare ``calc`` with the phonon reference(s) in ``reference`` (a folder, or loaded references).

    relax: relax the unit cell with the calculator first (symmetry kept), then compare frequencies.
    supercell / primitive: override the reference's supercell and primitive matrices.
    mesh: q-mesh (three integers, or a length in A as phonopy understands it).
    nac: apply the reference's BORN charges (to both) when it has them.
    subtract_residual: subtract the calculator's forces on the undisplaced supercell (like phonopy --fz).
    Structures with elements the calculator does not cover are skipped and listed.
    """
    calc = as_calculator(calc)
    refs = (
        list(reference)
        if isinstance(reference, (list, tuple))
        else (
            [reference]
            if isinstance(reference, (PhononReference, ThermalReference, EVReference))
            else load_references(reference, supercell, primitive)
        )
    )
    outdir = Path(outdir) if outdir is not None else None
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
    covered = covered_elements(calc)
    phonon_rows: Rows = {}
    thermal_rows: Rows = {}
    ev_rows: Rows = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    plots: list[str] = []
    notes: list[str] = []
    thermal_curves: dict[str, list[dict[str, Any]]] = {}
    opts: dict[str, Any] = dict(
        relax=relax, subtract_residual=subtract_residual, nac=nac, fmax=fmax, optimizer=optimizer
    )
    for ref in refs:
        atoms_list = [c for _, c in ref.cells] if isinstance(ref, EVReference) else [ref.unitcell]
        missing = _uncovered(atoms_list, covered)
        if missing:
            skipped[ref.name] = f"elements not covered by the calculator: {missing}"
            continue
        try:
            if isinstance(ref, PhononReference):
                row, curves = _phonon_reference(ref, calc, mesh, band_points, imag_tol, temperatures, opts)
                phonon_rows[ref.name] = row
                if outdir is not None:
                    plots.append(
                        plot_band_dos(
                            curves,
                            f"{ref.name} ({'relaxed' if relax else 'reference geometry'})",
                            outdir / f"phonons_{_slug(ref.name)}.png",
                        )
                    )
            elif isinstance(ref, ThermalReference):
                row, curve = _thermal_reference(ref, calc, mesh, imag_tol, opts)
                thermal_rows[ref.name] = row
                thermal_curves.setdefault(str(Path(ref.name).parent), []).append(curve)
            else:
                row, fits = _ev_reference(ref, calc)
                ev_rows[ref.name] = row
                if outdir is not None:
                    plots.append(
                        plot_ev(
                            row["volumes"],
                            row["energies_ref"],
                            row["energies_calc"],
                            fits,
                            ref.name,
                            outdir / f"ev_{_slug(ref.name)}.png",
                        )
                    )
        except Exception as exc:  # one reference must not end the suite; the report lists it
            failed[ref.name] = f"{type(exc).__name__}: {exc}"
    if outdir is not None:
        for group, group_curves in thermal_curves.items():
            plots.append(plot_thermal(group_curves, group, outdir / f"thermal_{_slug(group)}.png"))
    notes.extend(_grouped_notes(refs))
    summary = _summary(refs, phonon_rows, thermal_rows, ev_rows, skipped, failed, relax)
    sections = _sections(phonon_rows, thermal_rows, ev_rows, skipped, failed)
    notes.append(
        f"imaginary modes: mesh frequencies below -{imag_tol} THz (counted over the full mesh); "
        "band/mesh errors compare bands sorted by frequency at each q-point"
    )
    details = {
        "phonons": phonon_rows,
        "thermal": thermal_rows,
        "eos": ev_rows,
        "skipped": skipped,
        "failed": failed,
        "sources": {r.name: r.sources for r in refs},
    }
    result = SuiteResult("phonons", describe(calc), summary, details, sections, plots, notes)
    if outdir is not None:
        result.write(outdir)
    return result


def _grouped_notes(refs: Iterable[AnyReference]) -> list[str]:
    """Reference notes, each text once with the references it applies to."""
    by_text: dict[str, list[str]] = {}
    for ref in refs:
        for n in ref.notes:
            by_text.setdefault(n, []).append(ref.name)
    return [
        f"{', '.join(names) if len(names) < 4 else f'{len(names)} references'}: {n}" for n, names in by_text.items()
    ]


def _phonon_reference(
    ref: PhononReference,
    calc: BaseCalculator,
    mesh: float | Sequence[int],
    band_points: int,
    imag_tol: float,
    temperatures: Sequence[float],
    opts: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    ph_ref = reference_phonopy(ref, nac=opts["nac"])
    fc_ref = np.array(ph_ref.force_constants)
    # without relaxation the calculator uses the same cell: reuse the Phonopy object (its set-up is the slow part)
    cp = calculator_phonopy(ref, calc, phonopy=None if opts["relax"] else ph_ref, **opts)
    metrics, curves = compare_phonons(
        ph_ref,
        cp.phonopy,
        fc_ref=fc_ref,
        fc_calc=np.array(cp.phonopy.force_constants),
        mesh=mesh,
        band_points=band_points,
        imag_tol=imag_tol,
        temperatures=temperatures,
    )
    row = {
        "formula": ref.unitcell.get_chemical_formula(),
        "supercell": np.diag(ref.supercell_matrix).tolist()
        if np.count_nonzero(ref.supercell_matrix - np.diag(np.diag(ref.supercell_matrix))) == 0
        else ref.supercell_matrix.tolist(),
        "nac": bool(ref.has_nac and opts["nac"]),
        "residual_force_max_eV_A": cp.residual_force_max,
        "n_calculations": cp.n_force_calls,
        "seconds": cp.seconds,
        **cp.info,
        **metrics,
    }
    return row, curves


def _thermal_reference(
    ref: ThermalReference,
    calc: BaseCalculator,
    mesh: float | Sequence[int],
    imag_tol: float,
    opts: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Phonons of ``calc`` for the reference cell (own displacements) and thermodynamics per atom vs T."""
    t0 = time.perf_counter()
    pref = PhononReference(ref.name, ref.folder, ref.unitcell, ref.supercell_matrix, "auto")
    cp = calculator_phonopy(pref, calc, **opts)
    ph = cp.phonopy
    ph.run_mesh(mesh, is_gamma_center=True)
    ph_mesh = cast("Mesh", ph.mesh)  # set by run_mesh (a Mesh: no use_iter_mesh)
    fmin = float(np.asarray(ph_mesh.frequencies).min())
    tc = thermal(ph, ref.temperatures)
    n_calc = len(ph.primitive)
    per_atom_ref = {"F": ref.free_energy / ref.natom, "S": ref.entropy / ref.natom, "Cv": ref.heat_capacity / ref.natom}
    per_atom_calc = {"F": tc["free_energy"] / n_calc, "S": tc["entropy"] / n_calc, "Cv": tc["heat_capacity"] / n_calc}
    row = {
        "formula": ref.unitcell.get_chemical_formula(),
        "volume_per_atom": ref.unitcell.get_volume() / len(ref.unitcell),
        "supercell": np.diag(ref.supercell_matrix).tolist(),
        "mesh": [int(x) for x in ph_mesh.mesh_numbers],
        "min_freq_calc_THz": fmin,
        "imaginary_calc": fmin < -imag_tol,
        "residual_force_max_eV_A": cp.residual_force_max,
        "seconds": time.perf_counter() - t0,
        **cp.info,
    }
    for k, unit in (("F", "kJ_mol"), ("S", "J_K_mol"), ("Cv", "J_K_mol")):
        err = per_atom_calc[k] - per_atom_ref[k]
        row[f"{k}_mae_{unit}_atom"] = float(np.mean(np.abs(err)))
        i300 = np.flatnonzero(np.isclose(ref.temperatures, 300.0))
        if len(i300):
            row[f"{k}_300K_err_{unit}_atom"] = float(err[i300[0]])
    if ref.temperatures[0] == 0:
        row["zpe_err_kJ_mol_atom"] = float(per_atom_calc["F"][0] - per_atom_ref["F"][0])
    curve = {
        "temperatures": ref.temperatures,
        "F_ref": per_atom_ref["F"],
        "F_calc": per_atom_calc["F"],
        "Cv_ref": per_atom_ref["Cv"],
        "Cv_calc": per_atom_calc["Cv"],
    }
    return row, curve


def _ev_reference(ref: EVReference, calc: BaseCalculator) -> tuple[dict[str, Any], dict[str, EOSParams]]:
    n = np.array([len(a) for _, a in ref.cells])
    if len(set(n.tolist())) != 1:
        raise ValueError("e-v.dat cells must all have the same number of atoms")
    e_cells = []
    for _, cell in ref.cells:
        a = cell.copy()
        a.calc = calc
        e_cells.append(a.get_potential_energy())
    v = ref.volumes / n
    e_ref = ref.energies / n
    e_calc = np.array(e_cells) / n
    fit_ref, fit_calc = fit_birch_murnaghan(v, e_ref), fit_birch_murnaghan(v, e_calc)
    pr, pc = fit_ref.params, fit_calc.params
    row = {
        "n_volumes": len(v),
        "v0_ref": pr.v0,
        "v0_calc": pc.v0,
        "v0_err_pct": 100 * (pc.v0 / pr.v0 - 1),
        "b0_ref_GPa": pr.b0,
        "b0_calc_GPa": pc.b0,
        "b0_err_pct": 100 * (pc.b0 / pr.b0 - 1),
        "b1_ref": pr.b1,
        "b1_calc": pc.b1,
        "delta_meV": delta_mev(pc, pr),
        "extrapolated": fit_calc.extrapolated,
        "volumes": v,
        "energies_ref": e_ref,
        "energies_calc": e_calc,
    }
    return row, {"ref": pr, "calc": pc}


def _mean(rows: Rows, key: str, absolute: bool = True) -> float | None:
    vals = [abs(r[key]) if absolute else r[key] for r in rows.values() if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def _summary(
    refs: Sequence[AnyReference],
    ph: Rows,
    th: Rows,
    ev: Rows,
    skipped: dict[str, str],
    failed: dict[str, str],
    relax: bool,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "mode": "relax-first" if relax else "reference geometry",
        "n_references": len(refs),
        "n_compared": len(ph) + len(th) + len(ev),
        "n_skipped": len(skipped),
        "n_failed": len(failed),
    }
    if ph:
        s.update(
            {
                "mesh_mae_THz": _mean(ph, "mesh_mae_THz"),
                "band_mae_THz": _mean(ph, "band_mae_THz"),
                "max_freq_abs_err_THz": _mean(ph, "max_freq_err_THz"),
                "fc_rel_error": _mean(ph, "fc_rel_error"),
                "n_imaginary_calc": sum(bool(r["imaginary_calc"]) for r in ph.values()),
                "n_imaginary_ref": sum(bool(r["imaginary_ref"]) for r in ph.values()),
            }
        )
    if th:
        s.update(
            {
                "n_imaginary_thermal_calc": sum(bool(r["imaginary_calc"]) for r in th.values()),
                "thermal_F_mae_kJ_mol_atom": _mean(th, "F_mae_kJ_mol_atom"),
                "thermal_Cv_mae_J_K_mol_atom": _mean(th, "Cv_mae_J_K_mol_atom"),
                "thermal_S_mae_J_K_mol_atom": _mean(th, "S_mae_J_K_mol_atom"),
            }
        )
    if ev:
        s.update(
            {
                "ev_delta_mean_meV": _mean(ev, "delta_meV"),
                "ev_v0_mae_pct": _mean(ev, "v0_err_pct"),
                "ev_b0_mae_pct": _mean(ev, "b0_err_pct"),
            }
        )
    return s


def _sections(ph: Rows, th: Rows, ev: Rows, skipped: dict[str, str], failed: dict[str, str]) -> list[str]:
    out: list[str] = []
    if ph:
        out += [
            "## Phonons (displacement references)",
            "",
            table(
                [
                    "reference",
                    "formula",
                    "mesh MAE THz",
                    "band MAE THz",
                    "max-freq err THz",
                    "max |err| THz",
                    "FC rel err",
                    "imag. ref/calc",
                    "F(300K) err kJ/mol",
                    "residual |F| eV/Å",
                ],
                [
                    [
                        k,
                        r["formula"],
                        r["mesh_mae_THz"],
                        r["band_mae_THz"],
                        r["max_freq_err_THz"],
                        r["mesh_max_abs_err_THz"],
                        r.get("fc_rel_error"),
                        f"{r['imag_modes_ref']}/{r['imag_modes_calc']}",
                        r.get("free_energy_300K_err_kJ_mol"),
                        r["residual_force_max_eV_A"],
                    ]
                    for k, r in ph.items()
                ],
            ),
            "",
        ]
    if th:
        out += [
            "## Thermodynamics (quasi-harmonic references without forces)",
            "",
            "Per atom, averaged over the reference's temperature grid; imaginary modes (min freq < 0) make the "
            "calculator's thermodynamics unreliable at that volume.",
            "",
            table(
                [
                    "reference",
                    "V Å³/atom",
                    "F MAE kJ/mol/atom",
                    "S MAE J/K/mol/atom",
                    "Cv MAE J/K/mol/atom",
                    "ZPE err kJ/mol/atom",
                    "min freq THz",
                ],
                [
                    [
                        k,
                        r["volume_per_atom"],
                        r["F_mae_kJ_mol_atom"],
                        r["S_mae_J_K_mol_atom"],
                        r["Cv_mae_J_K_mol_atom"],
                        r.get("zpe_err_kJ_mol_atom"),
                        r["min_freq_calc_THz"],
                    ]
                    for k, r in th.items()
                ],
            ),
            "",
        ]
    if ev:
        out += [
            "## E(V) (e-v.dat)",
            "",
            table(
                [
                    "reference",
                    "Delta meV/atom",
                    "V0 ref",
                    "V0 calc",
                    "V0 err %",
                    "B0 ref GPa",
                    "B0 calc GPa",
                    "B' ref",
                    "B' calc",
                ],
                [
                    [
                        k,
                        r["delta_meV"],
                        r["v0_ref"],
                        r["v0_calc"],
                        r["v0_err_pct"],
                        r["b0_ref_GPa"],
                        r["b0_calc_GPa"],
                        r["b1_ref"],
                        r["b1_calc"],
                    ]
                    for k, r in ev.items()
                ],
            ),
            "",
        ]
    if skipped:
        out += ["## Skipped", "", table(["reference", "reason"], [[k, v] for k, v in skipped.items()]), ""]
    if failed:
        out += ["## Failed", "", table(["reference", "error"], [[k, v] for k, v in failed.items()]), ""]
    return out
