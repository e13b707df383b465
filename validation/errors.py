"""Errors suite: energy / force / stress MAE and RMSE of a calculator on labelled structures.

Input: a gfm-ase data store or its records (labels read from the records), a sequence of ``ase.Atoms`` whose
calculator (a SinglePointCalculator) holds the reference labels, or a file ASE reads with labels. Energies are
compared per atom, forces per Cartesian component, stresses per Voigt component (ASE sign: tension positive;
reported in GPa). Breakdowns per element (forces of that element's atoms; energies of structures containing it)
and per group (a record's group, ``atoms.info["group"]``).

Scale (softening): ``forces_slope`` is the least-squares slope through the origin of the calculator's force components
against the reference's, ``energy_slope`` the slope (with intercept) of its energies per atom against the reference's
(after any alignment); per element, forces of that element's atoms and energies of the structures made of that element
alone. A slope below 1 is a compressed potential-energy surface, the systematic softening of universal potentials
(Deng et al., "Overcoming systematic softening in universal machine learning interatomic potentials by fine-tuning",
arXiv:2405.07105, measure it by the force slope), which an MAE alone does not tell from noise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from ase import Atoms

from gfm_ase.data import Store, StructureRecord, split_indices
from gfm_ase.units import to_voigt
from gfm_ase.validation.calculators import CalculatorLike, as_calculator, describe
from gfm_ase.validation.calibration import (
    TABLE_HEADER,
    calibration_report,
    plot_calibration,
    summary_numbers,
    table_rows,
)
from gfm_ase.validation.eos_fit import GPA
from gfm_ase.validation.output import SuiteResult, pyplot, save_figure, table


def load_structures(
    path: str | os.PathLike, split: str | None = None, split_seed: int = 0
) -> tuple[list[StructureRecord] | list[Atoms], str]:
    """(labelled structures, dataset name): the records of a gfm-ase store (.h5 or shard folder), or the Atoms of
    an ASE-readable file (labels in their calculators)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir() or path.suffix in (".h5", ".hdf5"):
        store = Store(path)
        indices = np.arange(len(store))
        if split is not None:
            indices = split_indices(store, seed=split_seed)[split]
        name = str(store.attrs.get("name") or path.stem) + (f" ({split} split, seed {split_seed})" if split else "")
        return [store[int(i)] for i in indices], name
    if split is not None:
        raise ValueError("--split needs a gfm-ase store (.h5); for other files pass the structures to evaluate")
    from ase.io import read

    try:
        frames = cast("list[Atoms]", read(path, index=":"))
    except Exception as exc:
        raise ValueError(f"cannot read {path} with ASE: {type(exc).__name__}: {exc}") from exc
    return list(frames), path.name


def _reference(structure: StructureRecord | Atoms) -> tuple[Atoms, dict[str, Any]]:
    """(Atoms to evaluate, reference labels) of a store record (labels read from the record) or of an Atoms (labels
    from its calculator's results; the Atoms is copied, without the calculator)."""
    if isinstance(structure, StructureRecord):
        return structure.to_atoms(labels=False), _labels(structure.results())
    return structure.copy(), _labels(dict(getattr(structure.calc, "results", {}) or {}))


def _labels(res: dict[str, Any]) -> dict[str, Any]:
    """Energy, forces and stress (Voigt-6) of ASE-named results."""
    out: dict[str, Any] = {}
    if res.get("energy") is not None:
        out["energy"] = float(res["energy"])
    if res.get("forces") is not None:
        out["forces"] = np.asarray(res["forces"], dtype=float)
    if res.get("stress") is not None:
        s = np.asarray(res["stress"], dtype=float)
        out["stress"] = s if s.shape == (6,) else to_voigt(s.reshape(3, 3))
    return out


def _metrics(err: npt.ArrayLike) -> dict[str, Any]:
    err = np.asarray(err, dtype=float).ravel()
    if err.size == 0:
        return {"mae": None, "rmse": None, "n": 0}
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "n": int(err.size)}


def slope(ref: npt.ArrayLike, pred: npt.ArrayLike, intercept: bool) -> float | None:
    """Least-squares slope of ``pred`` against ``ref`` (with an intercept, or through the origin); None for fewer
    than 3 points or no spread in ``ref``."""
    x, y = np.asarray(ref, dtype=float).ravel(), np.asarray(pred, dtype=float).ravel()
    if x.size < 3:
        return None
    if intercept:
        x, y = x - x.mean(), y - y.mean()
    sxx = float(x @ x)
    return float(x @ y) / sxx if sxx > 1e-12 * x.size else None


def fit_element_offsets(compositions: np.ndarray, delta_e: np.ndarray) -> np.ndarray:
    """Per-element energy offsets (least squares) so that compositions @ offsets ~ delta_e."""
    offsets, *_ = np.linalg.lstsq(compositions, delta_e, rcond=None)
    return offsets


def run_errors(
    calc: CalculatorLike,
    structures: Store | Iterable[StructureRecord | Atoms],
    *,
    name: str | None = None,
    align: str = "none",
    max_structures: int | None = None,
    seed: int = 0,
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """Errors of ``calc`` on labelled ``structures`` (a Store, its StructureRecords, or Atoms with
    SinglePointCalculator labels).

    align: "none", or "per-element" to first remove a least-squares per-element energy offset (for comparing
      with another level of theory; the report says so).
    max_structures: evaluate a seeded random subset of at most this many.
    """
    if align not in ("none", "per-element"):
        raise ValueError(f"align must be 'none' or 'per-element', got {align!r}")
    calc = as_calculator(calc)
    items: Store | list[StructureRecord | Atoms]
    if isinstance(structures, Store):
        items = structures
        name = name or str(structures.attrs.get("name", "store"))
    else:
        items = list(structures)
    if not len(items):
        raise ValueError("no structures to evaluate")
    pick = np.arange(len(items))
    if max_structures is not None and len(items) > max_structures:
        pick = np.sort(np.random.default_rng(seed).choice(len(items), max_structures, replace=False))
    picked = [items[int(i)] for i in pick]  # a store reads only the structures picked

    rows: list[dict[str, Any]] = []
    failed: list[tuple[int, str]] = []
    for k, structure in enumerate(picked):
        a, lab = _reference(structure)
        if not lab:
            failed.append((k, "no labels (energy/forces/stress) on this structure"))
            continue
        a.calc = calc
        try:
            pred: dict[str, Any] = {"energy": float(a.get_potential_energy())}
            if "forces" in lab:
                pred["forces"] = np.asarray(a.get_forces(), dtype=float)
            if "stress" in lab and a.pbc.all():
                pred["stress"] = np.asarray(a.get_stress(voigt=True), dtype=float)
            results = getattr(a.calc, "results", {}) or {}
            for key in ("energy_std", "forces_std"):  # a calculator that gives a spread (uncertainty=True)
                if results.get(key) is not None:
                    pred[key] = results[key] if key == "energy_std" else np.asarray(results[key], dtype=float)
        except Exception as exc:  # a structure the calculator refuses is reported, not fatal
            failed.append((k, f"{type(exc).__name__}: {exc}"))
            continue
        rows.append(
            {
                "index": k,
                "symbols": a.get_chemical_symbols(),
                "n": len(a),
                "group": str(a.info.get("group", "") or "all"),
                "ref": lab,
                "pred": pred,
            }
        )
    if not rows:
        raise ValueError(f"the calculator evaluated none of the {len(picked)} structures: {failed[:3]}")

    elements = sorted({s for r in rows for s in r["symbols"]})
    with_e = [r for r in rows if "energy" in r["ref"]]
    e_ref = np.array([r["ref"]["energy"] for r in with_e])
    e_pred = np.array([r["pred"]["energy"] for r in with_e])
    notes = []
    if align == "per-element" and with_e:
        comp = np.array([[r["symbols"].count(el) for el in elements] for r in with_e], dtype=float)
        offsets = fit_element_offsets(comp, e_ref - e_pred)
        e_pred = e_pred + comp @ offsets
        notes.append(
            "energies aligned with a least-squares per-element offset (fitted on these structures): "
            + ", ".join(f"{el} {o:+.4f} eV" for el, o in zip(elements, offsets))
        )
    n_at = np.array([r["n"] for r in with_e], dtype=float)
    e_err = (e_pred - e_ref) / n_at if with_e else np.array([])
    for r, err, ref, pred, n in zip(with_e, e_err, e_ref, e_pred, n_at):
        r["e_err"] = float(err)
        r["e_per_atom"] = (float(ref / n), float(pred / n))  # (reference, calculator; aligned)

    def force_pairs(rs: list[dict[str, Any]], element: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(reference, predicted) force components of ``rs`` (of ``element``'s atoms only, if given)."""
        ref, pred = [], []
        for r in rs:
            if "forces" in r["ref"]:
                keep = slice(None) if element is None else np.array(r["symbols"]) == element
                ref.append(r["ref"]["forces"][keep].ravel())
                pred.append(r["pred"]["forces"][keep].ravel())
        return (np.concatenate(ref), np.concatenate(pred)) if ref else (np.array([]), np.array([]))

    def force_err(rs: list[dict[str, Any]]) -> np.ndarray:
        ref, pred = force_pairs(rs)
        return pred - ref

    def energy_slope(rs: list[dict[str, Any]]) -> float | None:
        pairs = np.array([r["e_per_atom"] for r in rs if "e_per_atom" in r]).reshape(-1, 2)
        return slope(pairs[:, 0], pairs[:, 1], intercept=True)

    def stress_err(rs: list[dict[str, Any]]) -> np.ndarray:
        out = [(r["pred"]["stress"] - r["ref"]["stress"]) / GPA for r in rs if "stress" in r["pred"]]
        return np.concatenate(out) if out else np.array([])

    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        e = np.array([r["e_err"] for r in rs if "e_err" in r])
        return {
            "energy_meV_atom": _scaled(_metrics(e), 1000),
            "forces_meV_A": _scaled(_metrics(force_err(rs)), 1000),
            "stress_GPa": _metrics(stress_err(rs)),
            "n_structures": len(rs),
        }

    overall = block(rows)
    per_element: dict[str, dict[str, Any]] = {}
    for el in elements:
        rs = [r for r in rows if el in r["symbols"]]
        f_ref, f_pred = force_pairs(rs, el)
        per_element[el] = {
            "energy_meV_atom": _scaled(_metrics([r["e_err"] for r in rs if "e_err" in r]), 1000),
            "forces_meV_A": _scaled(_metrics(f_pred - f_ref), 1000),
            "n_structures": len(rs),
            "forces_slope": slope(f_ref, f_pred, intercept=False),
            "energy_slope_elemental": energy_slope([r for r in rs if set(r["symbols"]) == {el}]),
        }
    groups = sorted({r["group"] for r in rows})
    per_group = {g: block([r for r in rows if r["group"] == g]) for g in groups} if len(groups) > 1 else {}

    summary = {
        "dataset": name or "structures",
        "n_structures": len(rows),
        "n_failed": len(failed),
        "energy_mae_meV_atom": overall["energy_meV_atom"]["mae"],
        "energy_rmse_meV_atom": overall["energy_meV_atom"]["rmse"],
        "forces_mae_meV_A": overall["forces_meV_A"]["mae"],
        "forces_rmse_meV_A": overall["forces_meV_A"]["rmse"],
        "stress_mae_GPa": overall["stress_GPa"]["mae"],
        "stress_rmse_GPa": overall["stress_GPa"]["rmse"],
        "energy_slope": energy_slope(with_e),
        "forces_slope": slope(*force_pairs(rows), intercept=False),
        "energy_alignment": align,
    }
    sections = [
        "## Per element",
        "",
        table(
            [
                "element",
                "structures",
                "E MAE meV/atom",
                "E RMSE meV/atom",
                "F MAE meV/Å",
                "F RMSE meV/Å",
                "F slope",
                "E slope (element alone)",
            ],
            [
                [
                    el,
                    d["n_structures"],
                    d["energy_meV_atom"]["mae"],
                    d["energy_meV_atom"]["rmse"],
                    d["forces_meV_A"]["mae"],
                    d["forces_meV_A"]["rmse"],
                    d["forces_slope"],
                    d["energy_slope_elemental"],
                ]
                for el, d in per_element.items()
            ],
        ),
        "",
    ]
    if per_group:
        sections += [
            "## Per group",
            "",
            table(
                ["group", "structures", "E MAE meV/atom", "F MAE meV/Å", "S MAE GPa"],
                [
                    [
                        g,
                        d["n_structures"],
                        d["energy_meV_atom"]["mae"],
                        d["forces_meV_A"]["mae"],
                        d["stress_GPa"]["mae"],
                    ]
                    for g, d in per_group.items()
                ],
            ),
            "",
        ]
    calibration = calibration_report(rows)
    if calibration:
        summary.update(summary_numbers(calibration))
        sections += [
            "## Uncertainty calibration",
            "",
            "Errors against the calculator's predicted spread (energy_std / n_atoms, forces_std per atom); "
            "in brackets the fraction a calibrated Gaussian spread gives.",
            "",
            table(TABLE_HEADER, table_rows(calibration)),
            "",
        ]
    notes.append(
        "slopes: calculator against reference by least squares (forces through the origin, energies per atom with "
        "an intercept); below 1 = a compressed (softened) energy surface"
    )
    if failed:
        sections += ["## Not evaluated", "", table(["structure", "reason"], [[str(k), v] for k, v in failed[:50]]), ""]
    details = {
        "overall": overall,
        "per_element": per_element,
        "per_group": per_group,
        "failed": [{"index": k, "reason": v} for k, v in failed],
    }
    if calibration:
        details["calibration"] = calibration
    result = SuiteResult("errors", describe(calc), summary, details, sections, notes=notes)
    if outdir is not None:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        result.plots.append(
            plot_parity(
                rows, e_ref / n_at if with_e else None, e_pred / n_at if with_e else None, outdir / "parity.png"
            )
        )
        if calibration:
            result.plots.append(plot_calibration(rows, calibration, outdir / "calibration.png"))
        result.write(outdir)
    return result


def _scaled(m: dict[str, Any], factor: float) -> dict[str, Any]:
    return {k: (v * factor if (v is not None and k != "n") else v) for k, v in m.items()}


def plot_parity(rows: list[dict[str, Any]], e_ref: np.ndarray | None, e_pred: np.ndarray | None, path: Path) -> str:
    plt = pyplot()
    panels: list[tuple[str, np.ndarray, np.ndarray]] = []
    if e_ref is not None and e_pred is not None:  # None without energy labels
        panels.append(("energy (eV/atom)", e_ref, e_pred))
    f = [(r["ref"]["forces"].ravel(), r["pred"]["forces"].ravel()) for r in rows if "forces" in r["ref"]]
    if f:
        panels.append(("force component (eV/Å)", np.concatenate([a for a, _ in f]), np.concatenate([b for _, b in f])))
    s = [(r["ref"]["stress"], r["pred"]["stress"]) for r in rows if "stress" in r["pred"]]
    if s:
        panels.append(
            ("stress component (GPa)", np.concatenate([a for a, _ in s]) / GPA, np.concatenate([b for _, b in s]) / GPA)
        )
    panels = [p for p in panels if len(p[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (label, ref, pred) in zip(axes[0], panels):
        ax.scatter(ref, pred, s=4, alpha=0.5)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"calculator {label}")
    fig.tight_layout()
    return save_figure(fig, path)
