"""Short-range repulsion: dimer energy curves E(r) below bonding distances, for any ASE calculator.

Models trained on near-equilibrium data have no data at short distances and may extrapolate to an energy that falls
as two atoms are pushed together; MD at high temperature then collapses into that hole. This suite puts pairs of
atoms at ``f`` times the sum of their covalent radii (ASE's table, Cordero et al. 2008), ``f`` from ``f_min`` to
``f_max``, in a large periodic box (so that calculators that need a cell accept it), and reports per pair:

* ``wall``: the energy rises monotonically as the atoms approach over ``f <= f_wall`` (a repulsive wall);
* ``hole_eV``: how far the energy at any ``f < 0.8`` falls below ``E(0.8)`` (0 when it never does);
* ``rise_eV``: ``E(f_min) - E(1.0)``.

Pairs: every element with itself and with oxygen (the oxides are where a missing wall showed in MD), over the
elements the calculator covers (default: those of the Delta test, ``ase.collections.dcdft``). Energies in eV,
distances in A.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from gfm_ase.validation.calculators import CalculatorLike, as_calculator, covered_elements, describe
from gfm_ase.validation.output import SuiteResult, pyplot, save_figure, table

BOX = 16.0  # A: larger than twice any cutoff of the models compared here, so a dimer sees no image
HOLE_REFERENCE = 0.8  # f of the energy a closer distance must not fall below


def default_elements() -> list[str]:
    from gfm_ase.validation.eos import dcdft_elements

    return dcdft_elements()


def default_pairs(elements: list[str], partners: tuple[str, ...] = ("O",)) -> list[tuple[str, str]]:
    """Each element with itself and with every partner (each unordered pair once)."""
    pairs: list[tuple[str, str]] = []
    for el in elements:
        for other in (el, *partners):
            first, second = sorted((el, other), key=lambda e: atomic_numbers[e])
            key = (first, second)
            if key not in pairs:
                pairs.append(key)
    return pairs


def dimer(a: str, b: str, r: float) -> Atoms:
    c = BOX / 2
    return Atoms([a, b], positions=[[c - r / 2, c, c], [c + r / 2, c, c]], cell=[BOX] * 3, pbc=True)


def dimer_curve(calc: CalculatorLike, a: str, b: str, factors: np.ndarray) -> dict[str, Any]:
    """Energies at each factor; a point the calculator refuses as a geometry (e.g. gfm-ase's sanity check, which
    refuses atoms closer than 0.4 x the covalent sum by default, and any closer than 0.3 A) is NaN and counted; an
    element it refuses raises."""
    from gfm_ase.graph.neighbors import StructureError

    r_cov = float(covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])
    energies = []
    for f in factors:
        atoms = dimer(a, b, f * r_cov)
        atoms.calc = calc
        try:
            energies.append(float(atoms.get_potential_energy()))
        except StructureError:  # an absurd geometry for this calculator (too close), not an error of the model
            energies.append(float("nan"))
    if not np.isfinite(energies).any():
        raise ValueError("the calculator refused every distance")
    return {"r_cov_sum": r_cov, "factors": [float(f) for f in factors], "energies": energies}


def curve_metrics(factors: np.ndarray, energies: np.ndarray, f_wall: float) -> dict[str, Any]:
    """wall / hole / rise of one curve (see the module docstring)."""
    factors = np.asarray(factors, dtype=float)
    energies = np.asarray(energies, dtype=float)
    ok = np.isfinite(energies)  # refused points are left out
    factors, energies = factors[ok], energies[ok]
    inner = factors <= f_wall + 1e-9
    wall = bool(np.all(np.diff(energies[inner]) < 0.0))
    e_ref = float(np.interp(HOLE_REFERENCE, factors, energies))
    closer = factors < HOLE_REFERENCE - 1e-9
    hole = max(0.0, e_ref - float(energies[closer].min())) if closer.any() else 0.0
    e_one = float(np.interp(1.0, factors, energies))
    return {
        "wall": wall,
        "hole_eV": hole,
        "rise_eV": float(energies[0] - e_one),
        "f_first": float(factors[0]),
        "n_refused": int((~ok).sum()),
    }


def run_dimers(
    calc: CalculatorLike,
    elements: Sequence[str] | None = None,
    *,
    pairs: Iterable[Sequence[str]] | None = None,
    f_min: float = 0.2,
    f_max: float = 1.3,
    step: float = 0.05,
    f_wall: float = 0.7,
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """Dimer curves of ``calc`` (an ASE calculator or a factory); ``pairs`` overrides the element-derived list."""
    calc = as_calculator(calc)
    if not 0 < f_min < f_wall < f_max:
        raise ValueError(f"need 0 < f_min < f_wall < f_max, got {f_min}, {f_wall}, {f_max}")
    if step <= 0 or step > (f_max - f_min) / 4:
        raise ValueError(f"step {step} must be positive and give at least 5 points over [{f_min}, {f_max}]")
    notes = []
    if pairs is None:
        covered = covered_elements(calc)
        if elements is None:
            elements = [e for e in default_elements() if covered is None or e in covered]
        unknown = [e for e in elements if e not in atomic_numbers]
        if unknown:
            raise ValueError(f"unknown element symbols {unknown}")
        partners = tuple(p for p in ("O",) if covered is None or p in covered)
        pairs = default_pairs(list(elements), partners)
        notes.append(f"pairs: each of {len(elements)} elements with itself and with {' '.join(partners) or 'none'}")
    pairs = [tuple(p) for p in pairs]
    if not pairs:
        raise ValueError("no pair to test")
    factors = np.round(np.arange(f_min, f_max + step / 2, step), 6)
    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for a, b in pairs:
        key = f"{a}-{b}"
        try:
            curve = dimer_curve(calc, a, b, factors)
        except Exception as exc:  # a refused element or geometry is reported, not fatal
            failed[key] = f"{type(exc).__name__}: {exc}"
            continue
        rows[key] = {**curve, **curve_metrics(factors, np.array(curve["energies"]), f_wall)}
    holes = np.array([r["hole_eV"] for r in rows.values()])
    n_wall = sum(r["wall"] for r in rows.values())
    worst = sorted(rows, key=lambda k: -rows[k]["hole_eV"])[:10]
    summary = {
        "n_pairs": len(rows),
        "n_failed": len(failed),
        "n_wall": int(n_wall),
        "wall_fraction": float(n_wall / len(rows)) if rows else None,
        "n_hole": int((holes > 0).sum()),
        "hole_max_eV": float(holes.max()) if len(holes) else None,
        "hole_max_pair": worst[0] if worst and rows[worst[0]]["hole_eV"] > 0 else None,
        "f_range": [float(factors[0]), float(factors[-1])],
        "f_wall": f_wall,
    }
    refused = sum(r["n_refused"] for r in rows.values())
    if refused:
        notes.append(
            f"{refused} points refused by the calculator's geometry check (NaN; each curve starts at its "
            "first accepted point, column 'from f')"
        )
    header = ["pair", "r_cov sum A", "wall", "hole eV", "E(first)-E(1) eV", "from f"]
    body = [
        [k, r["r_cov_sum"], "yes" if r["wall"] else "NO", r["hole_eV"], r["rise_eV"], r["f_first"]]
        for k, r in rows.items()
    ]
    sections = ["## Per pair", "", table(header, body)]
    if failed:
        sections += ["", "## Failed", "", table(["pair", "error"], [[k, v] for k, v in failed.items()])]
    notes.append(
        f"dimers at f x (r_cov,a + r_cov,b), f = {factors[0]:.2f}..{factors[-1]:.2f} step {step}, in a "
        f"{BOX:.0f} A periodic box; wall = E rises monotonically towards f = {factors[0]:.2f} over "
        f"f <= {f_wall}; hole = how far E at f < {HOLE_REFERENCE} falls below E({HOLE_REFERENCE})"
    )
    result = SuiteResult(
        "dimers",
        describe(calc),
        summary,
        details={"pairs": rows, "failed": failed},
        sections=sections,
        notes=notes,
        title="Validation: short-range repulsion (dimers)",
    )
    if outdir is not None:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        if rows:
            result.plots.append(
                plot_curves(
                    rows, [k for k in worst if rows[k]["hole_eV"] > 0] or list(rows)[:10], outdir / "dimers_worst.png"
                )
            )
        result.write(outdir)
    return result


def plot_curves(rows: dict[str, dict[str, Any]], keys: list[str], path: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k in keys:
        r = rows[k]
        e = np.asarray(r["energies"])
        ok = np.isfinite(e)
        f = np.asarray(r["factors"])[ok]
        ax.plot(f, e[ok] - np.interp(1.0, f, e[ok]), label=k, lw=1)
    ax.axvline(HOLE_REFERENCE, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("r / (r_cov,a + r_cov,b)")
    ax.set_ylabel("E − E(1.0) (eV)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)
