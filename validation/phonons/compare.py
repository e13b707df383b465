"""Compare two phonopy objects with force constants: FCs, band-path and mesh frequencies, DOS, thermal properties.

Both are evaluated at the same q-points (fractions of each one's own reciprocal primitive cell), so the
comparison also works after the calculator relaxed the cell. Frequencies are in THz; imaginary modes are
phonopy's negative frequencies.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from phonopy import Phonopy
    from phonopy.phonon.mesh import Mesh

GREEK = {"G": "Γ"}


@dataclass
class BandPath:
    qpoints: list[np.ndarray]  # per segment [nq, 3] fractional
    connections: list[bool]
    segment_labels: list[tuple[str, str]]
    path: str


def band_path(primitive_cell: np.ndarray, npoints: int = 51) -> BandPath:
    """High-symmetry path of the primitive cell (ASE's Setyawan-Curtarolo conventions)."""
    from ase.cell import Cell
    from ase.dft.kpoints import parse_path_string
    from phonopy.phonon.band_structure import get_band_qpoints_and_path_connections

    bp = Cell(np.asarray(primitive_cell)).bandpath(npoints=0)
    paths = parse_path_string(bp.path)
    band_paths = [[bp.special_points[p] for p in seg] for seg in paths]
    labels = [(GREEK.get(a, a), GREEK.get(b, b)) for seg in paths for a, b in zip(seg[:-1], seg[1:])]
    qpoints, connections = get_band_qpoints_and_path_connections(band_paths, npoints=npoints)
    return BandPath(qpoints, connections, labels, bp.path)


def band_frequencies(ph: Phonopy, path: BandPath) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(distances, frequencies) per segment."""
    ph.run_band_structure(path.qpoints, path_connections=path.connections)
    bs = ph.band_structure
    assert bs is not None  # set by run_band_structure
    return [np.asarray(d) for d in bs.distances], [np.asarray(f) for f in bs.frequencies]


def mesh_frequencies(ph: Phonopy, mesh: float | Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(irreducible q-points, weights, frequencies [nq, nbands]) on a Gamma-centred mesh."""
    ph.run_mesh(mesh, is_gamma_center=True)
    m = cast("Mesh", ph.mesh)  # set by run_mesh (a Mesh: no use_iter_mesh)
    return np.asarray(m.qpoints), np.asarray(m.weights), np.asarray(m.frequencies)


def qpoint_frequencies(ph: Phonopy, qpoints: npt.ArrayLike) -> np.ndarray:
    ph.run_qpoints(np.asarray(qpoints))
    q = ph.qpoints
    assert q is not None  # set by run_qpoints
    return np.asarray(q.frequencies)


def total_dos(ph: Phonopy, fmin: float, fmax: float, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    ph.run_total_dos(freq_min=fmin, freq_max=fmax, freq_pitch=pitch)
    d = ph.total_dos
    assert d is not None  # set by run_total_dos
    return np.asarray(d.frequency_points), np.asarray(d.dos)


def thermal(ph: Phonopy, temperatures: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
    """Free energy (kJ/mol), entropy and heat capacity (J/K/mol) per unit cell of the mesh just run.

    The three Gamma acoustic modes are included (phonopy's long-standing default, as in reference outputs).
    """
    category: type[Warning]
    try:
        from phonopy.phonon.thermal_properties import GammaAcousticWarning

        category = GammaAcousticWarning
    except ImportError:  # older phonopy: no such warning
        category = UserWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        ph.run_thermal_properties(temperatures=temperatures)
    t = ph.thermal_properties
    assert t is not None  # set by run_thermal_properties
    return {k: np.asarray(getattr(t, k), dtype=float) for k in ("free_energy", "entropy", "heat_capacity")}


def frequency_errors(ref: np.ndarray, calc: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """MAE / RMSE / max |error| (THz) over all modes, bands sorted at each q-point, q weighted."""
    ref = np.sort(np.asarray(ref), axis=-1)
    calc = np.sort(np.asarray(calc), axis=-1)
    err = calc - ref
    w = np.ones(len(ref)) if weights is None else np.asarray(weights, dtype=float)
    w = w[:, None] * np.ones_like(err) / (w.sum() * err.shape[1])
    return {
        "mae_THz": float(np.sum(w * np.abs(err))),
        "rmse_THz": float(np.sqrt(np.sum(w * err**2))),
        "max_abs_err_THz": float(np.abs(err).max()),
    }


def compare_phonons(
    ph_ref: Phonopy,
    ph_calc: Phonopy,
    *,
    fc_ref: np.ndarray | None = None,
    fc_calc: np.ndarray | None = None,
    mesh: float | Sequence[int] = 50.0,
    band_points: int = 51,
    imag_tol: float = 0.1,
    temperatures: npt.ArrayLike = (300.0,),
    dos_pitch: float = 0.05,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, curves): numbers for the summary and arrays for the plots.

    ``ph_ref`` and ``ph_calc`` may be one Phonopy object when ``fc_ref`` / ``fc_calc`` are given: each side's force
    constants are set before it is evaluated (building a Phonopy object is the slow part).
    """
    fc_ref = np.array(ph_ref.force_constants if fc_ref is None else fc_ref)
    fc_calc = np.array(ph_calc.force_constants if fc_calc is None else fc_calc)
    sides = {"ref": (ph_ref, fc_ref), "calc": (ph_calc, fc_calc)}

    def use(side: str) -> Phonopy:
        ph, fc = sides[side]
        ph.force_constants = fc
        return ph

    metrics: dict[str, Any] = {}
    if fc_ref.shape == fc_calc.shape:
        d = fc_calc - fc_ref
        metrics["fc_mae_eV_A2"] = float(np.abs(d).mean())
        metrics["fc_max_abs_err_eV_A2"] = float(np.abs(d).max())
        metrics["fc_rel_error"] = float(np.linalg.norm(d) / max(np.linalg.norm(fc_ref), 1e-30))

    path = band_path(ph_ref.primitive.cell, band_points)
    dist, f_band_ref = band_frequencies(use("ref"), path)
    _, f_band_calc = band_frequencies(use("calc"), path)
    band = frequency_errors(np.concatenate(f_band_ref), np.concatenate(f_band_calc))
    metrics.update({f"band_{k}": v for k, v in band.items()})

    ph = use("ref")
    q, w, f_mesh_ref = mesh_frequencies(ph, mesh)
    assert ph.mesh is not None  # set by mesh_frequencies
    mesh_numbers = [int(x) for x in ph.mesh.mesh_numbers]
    q_calc, w_calc, f_mesh_calc = mesh_frequencies(use("calc"), mesh)
    same_q = q_calc.shape == q.shape and np.allclose(q_calc, q)
    f_at_q = f_mesh_calc if same_q else qpoint_frequencies(use("calc"), q)
    metrics.update({f"mesh_{k}": v for k, v in frequency_errors(f_mesh_ref, f_at_q, w).items()})
    metrics["mesh"] = mesh_numbers
    fmax_r, fmax_c = float(f_mesh_ref.max()), float(f_mesh_calc.max())
    metrics.update(
        {
            "max_freq_ref_THz": fmax_r,
            "max_freq_calc_THz": fmax_c,
            "max_freq_err_THz": fmax_c - fmax_r,
            "min_freq_ref_THz": float(min(f_mesh_ref.min(), np.concatenate(f_band_ref).min())),
            "min_freq_calc_THz": float(min(f_mesh_calc.min(), np.concatenate(f_band_calc).min())),
            "imag_modes_ref": _n_imaginary(f_mesh_ref, w, imag_tol),
            "imag_modes_calc": _n_imaginary(f_mesh_calc, w_calc, imag_tol),
        }
    )
    metrics["imaginary_ref"] = metrics["imag_modes_ref"] > 0 or metrics["min_freq_ref_THz"] < -imag_tol
    metrics["imaginary_calc"] = metrics["imag_modes_calc"] > 0 or metrics["min_freq_calc_THz"] < -imag_tol

    lo = min(f_mesh_ref.min(), f_mesh_calc.min(), 0.0) - 0.5
    hi = max(fmax_r, fmax_c) + 0.5
    temps = np.asarray(temperatures, dtype=float)
    dos, th = {}, {}
    for side in ("ref", "calc"):
        ph = use(side)
        mesh_frequencies(ph, mesh)
        fr, dos[side] = total_dos(ph, lo, hi, dos_pitch)
        th[side] = thermal(ph, temps)
    metrics["dos_overlap"] = float(np.minimum(dos["ref"], dos["calc"]).sum() / max(dos["ref"].sum(), 1e-30))
    for i, t in enumerate(temps):
        tag = f"{t:g}K"
        metrics[f"free_energy_{tag}_err_kJ_mol"] = float(th["calc"]["free_energy"][i] - th["ref"]["free_energy"][i])
        metrics[f"entropy_{tag}_err_J_K_mol"] = float(th["calc"]["entropy"][i] - th["ref"]["entropy"][i])
        metrics[f"heat_capacity_{tag}_err_J_K_mol"] = float(
            th["calc"]["heat_capacity"][i] - th["ref"]["heat_capacity"][i]
        )
    curves = {
        "distances": dist,
        "band_ref": f_band_ref,
        "band_calc": f_band_calc,
        "labels": path.segment_labels,
        "connections": path.connections,
        "dos_freq": fr,
        "dos_ref": dos["ref"],
        "dos_calc": dos["calc"],
    }
    return metrics, curves


def _n_imaginary(freqs: np.ndarray, weights: np.ndarray, tol: float) -> int:
    """Number of modes below -tol on the full mesh (irreducible q-points counted with their weights)."""
    w = np.asarray(weights)
    return int(np.sum((np.asarray(freqs) < -tol).sum(axis=1) * w))
