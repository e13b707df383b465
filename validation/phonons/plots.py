"""Phonon plots: band structure and DOS of reference and calculator overlaid in one figure; QHA thermodynamics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gfm_ase.validation.output import pyplot, save_figure

if TYPE_CHECKING:
    from gfm_ase.validation.eos_fit import EOSParams


def _ticks(
    distances: Sequence[np.ndarray], labels: Sequence[tuple[str, str]], connections: Sequence[bool]
) -> tuple[list[float], list[str]]:
    pos: list[float] = []
    names: list[str] = []
    for i, (d, (a, b)) in enumerate(zip(distances, labels)):
        if i == 0:
            pos.append(d[0])
            names.append(a)
        elif not connections[i - 1]:  # a jump: "U|X"
            names[-1] = f"{names[-1]}|{a}"
        pos.append(d[-1])
        names.append(b)
    return pos, names


def plot_band_dos(
    curves: dict[str, Any], title: str, path: Path, ref_label: str = "reference", calc_label: str = "calculator"
) -> str:
    plt = pyplot()
    fig, (ax, axd) = plt.subplots(1, 2, figsize=(8, 4), sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    for i, (d, fr, fc) in enumerate(zip(curves["distances"], curves["band_ref"], curves["band_calc"])):
        ax.plot(d, fr, color="k", lw=1.0, label=ref_label if i == 0 else None)
        ax.plot(d, fc, color="tab:red", lw=1.0, ls="--", label=calc_label if i == 0 else None)
    # one legend entry per curve kind
    handles, labels = ax.get_legend_handles_labels()
    seen: dict[str, Any] = {}  # label -> legend handle
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    ax.legend(seen.values(), seen.keys(), fontsize=8, loc="lower right", framealpha=0.9)
    pos, names = _ticks(curves["distances"], curves["labels"], curves["connections"])
    ax.set_xticks(pos, names)
    for p in pos:
        ax.axvline(p, color="0.8", lw=0.5)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_xlim(pos[0], pos[-1])
    ax.set_ylabel("frequency (THz)")
    ax.set_title(title, fontsize=10)
    f = curves["dos_freq"]
    axd.plot(curves["dos_ref"], f, color="k", lw=1.0)
    axd.plot(curves["dos_calc"], f, color="tab:red", lw=1.0, ls="--")
    axd.set_xlabel("DOS")
    axd.set_xlim(left=0)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_thermal(series: list[dict[str, Any]], title: str, path: Path) -> str:
    """Free energy and heat capacity per atom vs T for each volume: reference solid, calculator dashed."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    colors = plt.cm.viridis(np.linspace(0, 1, max(len(series), 2)))
    for c, s in zip(colors, series):
        t = s["temperatures"]
        axes[0].plot(t, s["F_ref"], color=c, lw=1)
        axes[0].plot(t, s["F_calc"], color=c, lw=1, ls="--")
        axes[1].plot(t, s["Cv_ref"], color=c, lw=1)
        axes[1].plot(t, s["Cv_calc"], color=c, lw=1, ls="--")
    axes[0].set_ylabel("F (kJ/mol/atom)")
    axes[1].set_ylabel("C_v (J/K/mol/atom)")
    for ax in axes:
        ax.set_xlabel("T (K)")
    axes[0].set_title(f"{title}: reference —, calculator --", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ev(
    v: np.ndarray, e_ref: np.ndarray, e_calc: np.ndarray, fits: dict[str, EOSParams], title: str, path: Path
) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    vv = np.linspace(min(v) * 0.99, max(v) * 1.01, 100)
    for label, e, fit, style in (
        ("reference", e_ref, fits["ref"], "k"),
        ("calculator", e_calc, fits["calc"], "tab:red"),
    ):
        ax.plot(v, 1000 * (np.asarray(e) - fit.e0), "o", color=style, ms=3)
        ax.plot(vv, 1000 * (fit.energy(vv) - fit.e0), "-", color=style, lw=1, label=label)
    ax.set_xlabel("volume (Å³/atom)")
    ax.set_ylabel("E − E0 (meV/atom)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
