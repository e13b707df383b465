"""EOS suite: the Delta test against the WIEN2k PBE equations of state of ``ase.collections.dcdft`` (71 elements).

For each element: take the reference crystal, scale it uniformly (fixed cell shape and fractional positions, as
in the Delta protocol) to ``n_points`` volumes spanning [0.94, 1.06] x the reference V0, evaluate E(V) with the
calculator, fit a 3rd-order Birch-Murnaghan EOS, and compare V0, B0, B' and the Delta gauge with the reference.

A calculator whose own equilibrium volume lies outside that window (the fit finds no minimum there, or only an
extrapolated one) is not dropped: its minimum is searched by stepping the volume outward (6 % steps, 0.5-2.0 x
the reference V0, :data:`SEARCH_RANGE`), the E(V) is sampled again over the same relative window around that
minimum, and the element is counted with ``recentred_at`` (the factor) in its row. Without that, the elements a
model gets worst would silently leave the mean. An element with no minimum in the search range is reported as
failed, with the volume at which the energy was still falling.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from gfm_ase.validation.calculators import CalculatorLike, as_calculator, covered_elements, describe
from gfm_ase.validation.delta import WINDOW, delta_mev
from gfm_ase.validation.eos_fit import EOSFit, EOSParams, fit_birch_murnaghan
from gfm_ase.validation.output import SuiteResult, pyplot, save_figure, table

REFERENCES = ("wien2k", "exp")
SEARCH_RANGE = (0.5, 2.0)  # volume factors (x the reference V0) searched for a calculator's own E(V) minimum
SEARCH_STEP = 1.06  # ratio of successive volumes in that search
V0_OFF_PCT = 5.0  # summary: elements whose fitted V0 is further than this from the reference


def dcdft_elements() -> list[str]:
    from ase.collections import dcdft

    return list(dcdft.names)


def reference_params(element: str, reference: str = "wien2k") -> EOSParams:
    """Per-atom reference EOS (V0 A^3/atom, B0 GPa, B') of ``element`` from ase.collections.dcdft."""
    from ase.collections import dcdft

    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if element not in dcdft.data:
        raise KeyError(f"{element!r} is not in ase.collections.dcdft (71 elements H-Rn, no lanthanides)")
    d = dcdft.data[element]
    keys = (f"{reference}_volume", f"{reference}_B", f"{reference}_Bp")
    if not all(k in d for k in keys):
        raise KeyError(f"ase.collections.dcdft has no {reference} EOS for {element}")
    return EOSParams(v0=float(d[keys[0]]), b0=float(d[keys[1]]), b1=float(d[keys[2]]))


def reference_structure(element: str, volume_per_atom: float | None = None) -> Atoms:
    """The dcdft crystal of ``element`` scaled (shape fixed) to ``volume_per_atom`` (default: WIEN2k V0)."""
    from ase.collections import dcdft

    atoms = dcdft[element].copy()
    v = reference_params(element).v0 if volume_per_atom is None else volume_per_atom
    scale = (v * len(atoms) / atoms.get_volume()) ** (1.0 / 3.0)
    atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    return atoms


def energy_volume(calc: CalculatorLike, atoms: Atoms, volume_factors: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """E(V) per cell for uniform scalings of ``atoms`` (volume factors relative to its current volume)."""
    v0 = atoms.get_volume()
    vols, energies = [], []
    for f in volume_factors:
        a = atoms.copy()
        a.set_cell(atoms.cell.array * f ** (1.0 / 3.0), scale_atoms=True)
        a.calc = calc
        energies.append(a.get_potential_energy())
        vols.append(v0 * f)
    return np.array(vols), np.array(energies)


def _fit_or_none(volumes: np.ndarray, energies: np.ndarray) -> EOSFit | None:
    try:
        fit = fit_birch_murnaghan(volumes, energies)
    except ValueError:
        return None
    return None if fit.extrapolated else fit


def own_minimum_factor(
    calc: CalculatorLike,
    atoms: Atoms,
    factors: np.ndarray,
    energies: np.ndarray,
    search: tuple[float, float] = SEARCH_RANGE,
    step: float = SEARCH_STEP,
) -> float:
    """Volume factor (x the volume of ``atoms``) of the lowest E(V) sample on a walk towards lower energy.

    Starts from the samples ``energies`` at ``factors`` (sorted ascending) and steps outward from the lower-energy
    end by the ratio ``step`` until the energy rises again; raises ValueError if it is still falling at the bounds
    ``search``.
    """
    i = int(np.argmin(energies))
    if 0 < i < len(factors) - 1:  # the window brackets a minimum (the fit failed for another reason)
        return float(factors[i])
    going_up = i == len(factors) - 1
    f, e_best = float(factors[i]), float(energies[i])
    while True:
        nxt = f * step if going_up else f / step
        if not (search[0] <= nxt <= search[1]):
            side = "larger" if going_up else "smaller"
            raise ValueError(
                f"no E(V) minimum within {search[0]}-{search[1]} x the reference V0: the energy still falls "
                f"towards {side} volumes at {f:.2f} x V0"
            )
        _, e = energy_volume(calc, atoms, [nxt])
        if e[0] >= e_best:
            return f
        f, e_best = nxt, float(e[0])


def eos_for_element(
    calc: CalculatorLike,
    element: str,
    reference: str = "wien2k",
    n_points: int = 7,
    window: tuple[float, float] = WINDOW,
) -> dict[str, Any]:
    """E(V), fit and errors for one element (per-atom quantities); see the module docstring for the recentring."""
    ref = reference_params(element, reference)
    atoms = reference_structure(element, ref.v0)
    n = len(atoms)
    factors = np.linspace(window[0], window[1], n_points)
    vols, energies = energy_volume(calc, atoms, factors)
    fit = _fit_or_none(vols / n, energies / n)
    recentred_at = None
    if fit is None:
        recentred_at = own_minimum_factor(calc, atoms, factors, energies)
        vols, energies = energy_volume(calc, atoms, recentred_at * factors)
        fit = fit_birch_murnaghan(vols / n, energies / n)
    p = fit.params
    return {
        "element": element,
        "n_atoms": n,
        "volumes": vols / n,
        "energies": energies / n,
        "v0": p.v0,
        "b0": p.b0,
        "b1": p.b1,
        "e0": p.e0,
        "ref_v0": ref.v0,
        "ref_b0": ref.b0,
        "ref_b1": ref.b1,
        "delta_meV": delta_mev(p, ref),
        "v0_err_pct": 100.0 * (p.v0 - ref.v0) / ref.v0,
        "b0_err_pct": 100.0 * (p.b0 - ref.b0) / ref.b0,
        "b1_err": p.b1 - ref.b1,
        "fit_rms_meV": 1000.0 * fit.rms_residual,
        "extrapolated": fit.extrapolated,
        "recentred_at": recentred_at,
    }


def run_eos(
    calc: CalculatorLike,
    elements: Sequence[str] | None = None,
    *,
    reference: str = "wien2k",
    n_points: int = 7,
    window: tuple[float, float] = WINDOW,
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """Delta test of ``calc`` (an ASE calculator or a factory) on ``elements``.

    elements: symbols to test; default: the dcdft elements the calculator covers (all 71 when it does not say).
    An element that fails (the calculator refuses it, or E(V) has no minimum) is reported, not fatal.
    """
    calc = as_calculator(calc)
    available = dcdft_elements()
    notes = []
    if elements is None:
        covered = covered_elements(calc)
        elements = [e for e in available if covered is None or e in covered]
        if covered is not None:
            notes.append(f"elements restricted to those the calculator covers: {len(elements)} of {len(available)}")
    else:
        unknown = [e for e in elements if e not in available]
        if unknown:
            raise ValueError(f"not in ase.collections.dcdft: {unknown} (available: {' '.join(available)})")
    if not elements:
        raise ValueError("no dcdft element to test (the calculator covers none of them)")
    if n_points < 5:
        raise ValueError("n_points must be at least 5 for a Birch-Murnaghan fit")

    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for el in elements:
        try:
            rows[el] = eos_for_element(calc, el, reference, n_points, window)
        except Exception as exc:  # one element must not end the suite; the report lists it
            failed[el] = f"{type(exc).__name__}: {exc}"
    deltas = np.array([r["delta_meV"] for r in rows.values()])
    summary = {
        "reference": f"{reference} (ase.collections.dcdft)",
        "n_elements": len(rows),
        "n_failed": len(failed),
        "delta_mean_meV": float(deltas.mean()) if len(deltas) else None,
        "delta_median_meV": float(np.median(deltas)) if len(deltas) else None,
        "delta_max_meV": float(deltas.max()) if len(deltas) else None,
        "delta_max_element": max(rows, key=lambda e: rows[e]["delta_meV"]) if rows else None,
        "v0_mae_pct": _mean_abs(rows, "v0_err_pct"),
        "b0_mae_pct": _mean_abs(rows, "b0_err_pct"),
        "b1_mae": _mean_abs(rows, "b1_err"),
        "n_recentred": sum(r["recentred_at"] is not None for r in rows.values()),
        "v0_off_pct_threshold": V0_OFF_PCT,
        "n_v0_off": sum(abs(r["v0_err_pct"]) > V0_OFF_PCT for r in rows.values()),
        "v0_off_elements": [el for el, r in rows.items() if abs(r["v0_err_pct"]) > V0_OFF_PCT],
    }
    header = [
        "element",
        "Delta meV/atom",
        "V0 A^3/atom",
        "V0 ref",
        "V0 err %",
        "B0 GPa",
        "B0 ref",
        "B0 err %",
        "B'",
        "B' ref",
        "fit rms meV",
        "resampled at x V0",
    ]
    body = [
        [
            el,
            r["delta_meV"],
            r["v0"],
            r["ref_v0"],
            r["v0_err_pct"],
            r["b0"],
            r["ref_b0"],
            r["b0_err_pct"],
            r["b1"],
            r["ref_b1"],
            r["fit_rms_meV"],
            r["recentred_at"],
        ]
        for el, r in rows.items()
    ]
    sections = ["## Per element", "", table(header, body)]
    if failed:
        sections += ["", "## Failed", "", table(["element", "error"], [[k, v] for k, v in failed.items()])]
    recentred = [f"{el} ({r['recentred_at']:.2f})" for el, r in rows.items() if r["recentred_at"] is not None]
    if recentred:
        notes.append(
            f"E(V) minimum outside [{window[0]}, {window[1]}] x the reference V0, resampled over the same window "
            "around the calculator's own minimum (factor x V0 in brackets): " + " ".join(recentred)
        )
    extrapolated = [el for el, r in rows.items() if r["extrapolated"]]
    if extrapolated:
        notes.append(
            "fitted V0 outside the sampled volumes (EOS extrapolated, Delta less reliable): " + " ".join(extrapolated)
        )
    notes.append(
        f"Delta (Lejaeghere et al.): rms of the minimum-aligned BM curves over "
        f"[{window[0]}, {window[1]}] x mean V0; {n_points} volumes per element around the reference V0 (around "
        "the calculator's own minimum where that lies outside)."
    )
    result = SuiteResult(
        "eos", describe(calc), summary, details={"elements": rows, "failed": failed}, sections=sections, notes=notes
    )
    if outdir is not None:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        if rows:
            result.plots.append(plot_eos(rows, outdir / "eos_curves.png"))
            result.plots.append(plot_delta(rows, outdir / "eos_delta.png"))
        result.write(outdir)
    return result


def _mean_abs(rows: dict[str, dict[str, Any]], key: str) -> float | None:
    vals = [abs(r[key]) for r in rows.values()]
    return float(np.mean(vals)) if vals else None


def plot_eos(rows: dict[str, dict[str, Any]], path: Path) -> str:
    plt = pyplot()
    n = len(rows)
    ncol = min(6, n)
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.3 * nrow), squeeze=False)
    for ax, (el, r) in zip(axes.flat, rows.items()):
        v = np.asarray(r["volumes"])
        vv = np.linspace(v.min() * 0.99, v.max() * 1.01, 100)
        fit = EOSParams(r["v0"], r["b0"], r["b1"], r["e0"])
        ref = EOSParams(r["ref_v0"], r["ref_b0"], r["ref_b1"], 0.0)
        ax.plot(v, 1000 * (np.asarray(r["energies"]) - r["e0"]), "o", ms=3, label="calc")
        ax.plot(vv, 1000 * (fit.energy(vv) - r["e0"]), "-", lw=1, label="BM fit")
        ax.plot(vv, 1000 * ref.energy(vv), "--", lw=1, label="reference")
        ax.set_title(f"{el}  Δ={r['delta_meV']:.2f} meV", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.supxlabel("volume (Å³/atom)")
    fig.supylabel("E − E0 (meV/atom)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_delta(rows: dict[str, dict[str, Any]], path: Path) -> str:
    plt = pyplot()
    els = list(rows)
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(els) + 1), 3))
    ax.bar(els, [rows[e]["delta_meV"] for e in els])
    ax.set_ylabel("Δ (meV/atom)")
    ax.set_yscale("log" if max(rows[e]["delta_meV"] for e in els) > 50 else "linear")
    ax.tick_params(axis="x", labelsize=7, rotation=90)
    fig.tight_layout()
    return save_figure(fig, path)
