"""Calibration of a predicted spread against the actual errors (the errors suite, when the calculator gives
``energy_std`` / ``forces_std``, e.g. ``GFMCalculator(..., uncertainty=True)``).

For each quantity (energy per atom: |E_pred - E_ref| / n against energy_std / n; forces: the per-atom error norm
|F_pred - F_ref| against forces_std):

* the fraction of errors within 1, 2, 3 predicted sigma, beside what a calibrated Gaussian spread gives
  (:func:`gfm_ase.runtime.uncertainty.gaussian_within`);
* the Spearman rank correlation of |error| and sigma (does a larger spread mean a larger error?);
* RMSE / RMS(sigma) over everything (1 when calibrated on average);
* equal-count bins of sigma with the RMS sigma and the RMSE of each bin: the calibration plot (error against
  predicted spread; calibrated bins lie on the diagonal).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gfm_ase.runtime.uncertainty import gaussian_within

QUANTITIES = {"energy": ("energy (meV/atom)", 1, 1000.0), "forces": ("force per atom (meV/Å)", 3, 1000.0)}


def spread_calibration(err: np.ndarray, sigma: np.ndarray, dof: int, n_bins: int = 8) -> dict:
    """Calibration numbers of error magnitudes ``err`` against predicted spreads ``sigma`` (same units)."""
    err = np.abs(np.asarray(err, dtype=float).ravel())
    sigma = np.asarray(sigma, dtype=float).ravel()
    if err.shape != sigma.shape:
        raise ValueError(f"{err.size} errors but {sigma.size} spreads")
    n = int(err.size)
    if n == 0:
        return {"n": 0}
    out: dict = {"n": n}
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, err / sigma, np.inf)
    for k in (1, 2, 3):
        out[f"within_{k}sigma"] = float(np.mean(z <= k))
        out[f"expected_within_{k}sigma"] = gaussian_within(k, dof)
    out["spearman"] = _spearman(err, sigma)
    rms_sigma = float(np.sqrt(np.mean(sigma**2)))
    out["rmse"] = float(np.sqrt(np.mean(err**2)))
    out["rms_sigma"] = rms_sigma
    out["rmse_over_rms_sigma"] = out["rmse"] / rms_sigma if rms_sigma > 0 else None
    order = np.argsort(sigma, kind="stable")
    bins = []
    for idx in np.array_split(order, min(n_bins, n)):
        bins.append(
            {
                "n": int(idx.size),
                "rms_sigma": float(np.sqrt(np.mean(sigma[idx] ** 2))),
                "rmse": float(np.sqrt(np.mean(err[idx] ** 2))),
            }
        )
    out["bins"] = bins
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def collect(rows: Iterable[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(|error|, sigma) per quantity from the errors suite's rows (those whose prediction carries a spread)."""
    e_err, e_sig, f_err, f_sig = [], [], [], []
    for r in rows:
        pred, ref = r["pred"], r["ref"]
        if "energy_std" in pred and "e_err" in r:
            e_err.append(abs(r["e_err"]))
            e_sig.append(pred["energy_std"] / r["n"])
        if "forces_std" in pred and "forces" in ref:
            f_err.append(np.linalg.norm(pred["forces"] - ref["forces"], axis=1))
            f_sig.append(np.asarray(pred["forces_std"], dtype=float))
    out = {}
    if e_err:
        out["energy"] = (np.array(e_err), np.array(e_sig))
    if f_err:
        out["forces"] = (np.concatenate(f_err), np.concatenate(f_sig))
    return out


def calibration_report(rows: Iterable[dict[str, Any]]) -> dict[str, dict]:
    """quantity -> :func:`spread_calibration` (energies per atom, forces per atom), for rows with a spread."""
    return {q: spread_calibration(err, sig, QUANTITIES[q][1]) for q, (err, sig) in collect(rows).items()}


def summary_numbers(report: dict[str, dict]) -> dict:
    """The headline numbers for summary.json."""
    out = {}
    for q, c in report.items():
        if c.get("n"):
            out[f"{q}_within_1sigma"] = c["within_1sigma"]
            out[f"{q}_expected_within_1sigma"] = c["expected_within_1sigma"]
            out[f"{q}_spread_spearman"] = c["spearman"]
            out[f"{q}_rmse_over_rms_sigma"] = c["rmse_over_rms_sigma"]
    return out


def table_rows(report: dict[str, dict]) -> list[list]:
    rows = []
    for q, c in report.items():
        if not c.get("n"):
            continue
        label, _, factor = QUANTITIES[q]
        rows.append(
            [
                label,
                c["n"],
                *(f"{100 * c[f'within_{k}sigma']:.1f} ({100 * c[f'expected_within_{k}sigma']:.1f})" for k in (1, 2, 3)),
                None if c["spearman"] is None else round(c["spearman"], 3),
                c["rmse"] * factor,
                c["rms_sigma"] * factor,
            ]
        )
    return rows


TABLE_HEADER = [
    "quantity",
    "n",
    "% within 1σ (Gaussian)",
    "% within 2σ",
    "% within 3σ",
    "Spearman ρ(error, σ)",
    "RMSE",
    "RMS σ",
]


def plot_calibration(rows: Iterable[dict[str, Any]], report: dict[str, dict], path: Path) -> str:
    """Error against predicted spread: points (|error|, sigma) and the binned RMSE against RMS sigma."""
    from gfm_ase.validation.output import pyplot, save_figure

    plt = pyplot()
    data = collect(rows)
    panels = [q for q in QUANTITIES if q in data and report.get(q, {}).get("n")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.6), squeeze=False)
    for ax, q in zip(axes[0], panels):
        label, _, factor = QUANTITIES[q]
        err, sig = data[q]
        ok = (sig > 0) & (err > 0)
        ax.scatter(sig[ok] * factor, err[ok] * factor, s=3, alpha=0.25, color="0.5", label="|error|")
        b = report[q]["bins"]
        xs = np.array([x["rms_sigma"] for x in b]) * factor
        ys = np.array([x["rmse"] for x in b]) * factor
        ax.plot(xs, ys, "o-", color="C3", label="binned RMSE")
        pos = np.concatenate([sig[ok], err[ok]]) * factor
        if pos.size:  # symmetric atoms (zero force, zero spread) would stretch the axes over ten decades
            lo, hi = float(np.percentile(pos, 2)), float(pos.max())
            ax.set_xlim(lo / 2, hi * 2)
            ax.set_ylim(lo / 2, hi * 2)
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="calibrated")
            ax.set_xscale("log")
            ax.set_yscale("log")
        rho = report[q]["spearman"]
        ax.set_title(
            f"{q}: {100 * report[q]['within_1sigma']:.0f}% within 1σ" + (f", ρ={rho:.2f}" if rho is not None else ""),
            fontsize=9,
        )
        ax.set_xlabel(f"predicted σ, {label}")
        ax.set_ylabel(f"|error|, {label}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["calibration_report", "collect", "plot_calibration", "spread_calibration", "summary_numbers"]
