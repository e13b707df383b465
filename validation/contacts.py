"""Contact scans inside a host: the energy of pulling one pair of atoms of a structure together, for any ASE
calculator.

The ``dimers`` suite tests the repulsion of two atoms in vacuum; a model can have a wall there and still be too soft
for the same pair inside a solid, where the environment changes the learned part. This suite takes a structure (an
oxide, say) and, for each requested species pair, its closest pair of those species; it moves the two atoms
symmetrically along the line joining them (minimum image), every other atom fixed, to each distance of
``distances`` below its starting distance, and reports ``E(r) - E(start)`` in eV. A calculator that
refuses a geometry (gfm-ase's overlap check) gives NaN at that point, counted. Soft or flat curves at short
distances are where hot MD forms bonds that should not exist (gfm-base v1 and O-O in an oxide rocksalt:
docs/models/gfm-base.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from gfm_ase.validation.calculators import CalculatorLike, as_calculator, describe
from gfm_ase.validation.output import SuiteResult, pyplot, save_figure

DEFAULT_DISTANCES = (2.6, 2.3, 2.0, 1.8, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0)


def closest_pair_of(atoms: Atoms, a: str, b: str, cutoff: float = 6.0) -> tuple[int, int, float]:
    """Indices and distance of the closest ``a``-``b`` pair (minimum image); ValueError when there is none."""
    from ase.neighborlist import neighbor_list

    symbols = atoms.get_chemical_symbols()
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    ok = [k for k in range(len(d)) if i[k] < j[k] and sorted((symbols[i[k]], symbols[j[k]])) == sorted((a, b))]
    if not ok:
        raise ValueError(f"no {a}-{b} pair within {cutoff} A in {atoms.get_chemical_formula()}")
    k = min(ok, key=lambda m: d[m])
    return int(i[k]), int(j[k]), float(d[k])


def pulled(atoms: Atoms, i: int, j: int, r: float) -> Atoms:
    """A copy with atoms ``i`` and ``j`` moved symmetrically along their (minimum-image) bond to distance ``r``."""
    vec = atoms.get_distance(i, j, mic=True, vector=True)
    d0 = float(np.linalg.norm(vec))
    shift = 0.5 * (d0 - r) * vec / d0
    out = atoms.copy()
    pos = out.get_positions()
    pos[i] += shift
    pos[j] -= shift
    out.set_positions(pos)
    return out


def run_contacts(
    calc: CalculatorLike,
    atoms: Atoms,
    pairs: Sequence[tuple[str, str]],
    *,
    distances: Sequence[float] = DEFAULT_DISTANCES,
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """``E(r) - E(start)`` for the closest pair of each species pair of ``atoms`` pulled to each distance."""
    calc = as_calculator(calc)
    if not pairs:
        raise ValueError("give at least one species pair")
    dist = sorted((float(r) for r in distances), reverse=True)
    if not dist or dist[-1] <= 0:
        raise ValueError("distances must be positive")
    host = atoms.copy()
    host.calc = calc
    e_start = float(host.get_potential_energy())
    curves: dict[str, Any] = {}
    for a, b in pairs:
        i, j, d0 = closest_pair_of(atoms, a, b)
        closer = [r for r in dist if r < d0]  # only towards each other
        energies: list[float] = []
        for r in closer:
            probe = pulled(atoms, i, j, r)
            probe.calc = calc
            try:
                energies.append(float(probe.get_potential_energy()) - e_start)
            except Exception:  # a calculator refusing the geometry (too close) is recorded, not fatal
                energies.append(float("nan"))
        curves[f"{a}-{b}"] = {"atoms": [i, j], "start_A": d0, "distances_A": closer, "energy_eV": energies}
    summary: dict[str, Any] = {
        "structure": atoms.get_chemical_formula(),
        "pairs": list(curves),
        "refused_points": int(sum(np.isnan(c["energy_eV"]).sum() for c in curves.values())),
    }
    for key, c in curves.items():
        e = np.asarray(c["energy_eV"])
        finite = e[np.isfinite(e)]
        summary[f"{key}_start_A"] = c["start_A"]
        summary[f"{key}_lowest_eV"] = float(finite.min()) if finite.size else None
        # a wall: every closer point higher than the one before (the start counts as 0)
        summary[f"{key}_monotonic"] = bool(finite.size and np.all(np.diff(np.concatenate([[0.0], finite])) > 0))
    result = SuiteResult(
        "contacts",
        describe(calc),
        summary,
        {"curves": curves},
        notes=[
            "each pair: its closest pair in the structure, moved symmetrically along the bond, all other atoms fixed; "
            "E relative to the unmoved structure (eV)"
        ],
    )
    if outdir is not None:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        result.plots.append(plot_contacts(curves, outdir / "contacts.png"))
        result.write(outdir)
    return result


def plot_contacts(curves: dict[str, Any], path: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for key, c in curves.items():
        ax.plot(c["distances_A"], c["energy_eV"], "o-", ms=3, label=f"{key} (from {c['start_A']:.2f} A)")
    ax.set_xlabel("pair distance (A)")
    ax.set_ylabel("E - E(start) (eV)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
