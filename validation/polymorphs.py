"""Polymorph energies: each element in the common elemental lattices, relative to its lowest, for any ASE calculator.

The Delta test (``eos``) looks at every element in its ground-state crystal only. A model can fit that and still
put a competing lattice of the same element far too low or too high, which decides what a relaxation, an MD run or
a structure search finds (gfm-base's close-packed carbon came out 0.7-3 eV/atom below its teacher's with a fitted
diamond and graphite). This suite scans the volume of each lattice, takes the minimum energy per atom of each (the
vertex of a parabola through the lowest sampled point and its two neighbours; the point itself at the end of a
scan), and reports per element

* ``dE_eV``: ``E_min(lattice) - min over the lattices``, eV/atom (0 for the calculator's lowest lattice);
* ``at_edge``: the lattices whose lowest point is the first or last volume of the scan: their minimum lies outside
  it, so their ``dE`` is an upper bound (widen ``factors``).

Lattices: fcc, bcc, hcp (ideal c/a), simple cubic, diamond (one or two atoms per cell). Volumes: ``factors`` x a
per-element volume, the WIEN2k V0 per atom of ``ase.collections.dcdft`` where the element has one, else that of an
fcc crystal with nearest neighbours at twice the covalent radius (ASE's table). The default factors (0.5-2.0,
geometric) cover the open and the close-packed lattices of one element around one V0. Energies eV/atom, volumes
A^3/atom. A point the calculator refuses as a geometry is left out and counted; an element it refuses is reported
under ``failed``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from gfm_ase.validation.calculators import CalculatorLike, as_calculator, covered_elements, describe
from gfm_ase.validation.output import SuiteResult, pyplot, save_figure, table

LATTICES = ("fcc", "bcc", "hcp", "sc", "diamond")
# volume per atom of each lattice with nearest-neighbour distance d, in units of d^3
_VOLUME_PER_D3 = {"fcc": 2**-0.5, "bcc": 4 / 3**1.5, "hcp": 2**-0.5, "sc": 1.0, "diamond": 8 / 3**1.5}
DEFAULT_FACTORS = tuple(float(x) for x in np.round(np.geomspace(0.5, 2.0, 25), 6))
NEAR_EV = 0.1  # eV/atom: the comparison counts element-lattices whose dE is further than this from the reference's
ORDER_EV = 0.05  # eV/atom: a reference's lowest lattice this far above a calculator's lowest is a wrong ordering


def reference_volume(element: str) -> float:
    """Volume per atom (A^3) the scan is centred on: WIEN2k V0 of ase.collections.dcdft, else an fcc estimate."""
    from ase.collections import dcdft

    if element in dcdft.data and "wien2k_volume" in dcdft.data[element]:
        return float(dcdft.data[element]["wien2k_volume"])
    d = 2.0 * float(covalent_radii[atomic_numbers[element]])
    return _VOLUME_PER_D3["fcc"] * d**3


def lattice(element: str, kind: str, volume_per_atom: float) -> Atoms:
    """The element in lattice ``kind`` at ``volume_per_atom`` (A^3): the corpus generators' primitive cells
    (:func:`gfm_ase.pretraining.corpus.prototypes.elemental`) at the nearest-neighbour distance of that volume."""
    from gfm_ase.pretraining.corpus.prototypes import elemental

    if kind not in _VOLUME_PER_D3:
        raise ValueError(f"unknown lattice {kind!r}; choose from {LATTICES}")
    return elemental(element, kind, (volume_per_atom / _VOLUME_PER_D3[kind]) ** (1.0 / 3.0))


def scan_lattice(calc: Any, element: str, kind: str, volumes: np.ndarray) -> np.ndarray:
    """Energy per atom at each volume; NaN where the calculator refuses the geometry."""
    from gfm_ase.graph.neighbors import StructureError

    out = np.full(len(volumes), np.nan)
    for k, v in enumerate(volumes):
        atoms = lattice(element, kind, float(v))
        atoms.calc = calc
        try:
            out[k] = atoms.get_potential_energy() / len(atoms)
        except StructureError:  # an absurd geometry for this calculator, not an error of the model
            continue
    return out


def parabola_minimum(v: np.ndarray, e: np.ndarray, e_low: float, v_low: float) -> tuple[float, float]:
    """Vertex of the parabola through three (volume, energy) points around a sampled minimum; the sampled point
    itself where the parabola does not open upwards or its vertex leaves the three points' range."""
    c2, c1, c0 = np.polyfit(v, e, 2)
    if c2 <= 0:
        return e_low, v_low
    vx = -c1 / (2 * c2)
    if not v[0] <= vx <= v[-1]:
        return e_low, v_low
    return float(min(c0 + c1 * vx + c2 * vx * vx, e_low)), float(vx)


def element_polymorphs(
    calc: Any, element: str, lattices: Sequence[str] = LATTICES, factors: Sequence[float] = DEFAULT_FACTORS
) -> dict[str, Any]:
    """Scans of every lattice of one element and their energies relative to the lowest."""
    v_ref = reference_volume(element)
    volumes = v_ref * np.asarray(factors, dtype=float)
    scans: dict[str, dict[str, Any]] = {}
    refused = 0
    for kind in lattices:
        e = scan_lattice(calc, element, kind, volumes)
        refused += int(np.isnan(e).sum())
        if not np.isfinite(e).any():
            raise ValueError(f"the calculator refused every volume of {kind} {element}")
        k = int(np.nanargmin(e))
        finite = np.flatnonzero(np.isfinite(e))
        at_edge = bool(k in (finite[0], finite[-1]))
        e_min, v_min = float(e[k]), float(volumes[k])
        if not at_edge and np.isfinite(e[k - 1 : k + 2]).all():
            e_min, v_min = parabola_minimum(volumes[k - 1 : k + 2], e[k - 1 : k + 2], e_min, v_min)
        scans[kind] = {"energies": [float(x) for x in e], "e_min": e_min, "v_min": v_min, "at_edge": at_edge}
    lowest = min(scans, key=lambda kind: scans[kind]["e_min"])
    e0 = scans[lowest]["e_min"]
    return {
        "v_ref": v_ref,
        "volumes": [float(v) for v in volumes],
        "lowest": lowest,
        "dE_eV": {kind: s["e_min"] - e0 for kind, s in scans.items()},
        "v_min": {kind: s["v_min"] for kind, s in scans.items()},
        "at_edge": [kind for kind, s in scans.items() if s["at_edge"]],
        "scans": {kind: s["energies"] for kind, s in scans.items()},
        "n_refused": refused,
    }


def run_polymorphs(
    calc: CalculatorLike,
    elements: Sequence[str] | None = None,
    *,
    lattices: Sequence[str] = LATTICES,
    factors: Sequence[float] = DEFAULT_FACTORS,
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """Polymorph energies of ``calc`` (an ASE calculator or a factory) for ``elements`` (default: the Delta-test
    elements it covers)."""
    calc = as_calculator(calc)
    lattices = list(lattices)
    bad = [k for k in lattices if k not in LATTICES]
    if bad or len(set(lattices)) != len(lattices) or len(lattices) < 2:
        raise ValueError(f"lattices must be at least two different ones of {LATTICES}, got {lattices}")
    factors = sorted(float(f) for f in factors)
    if len(factors) < 3 or factors[0] <= 0:
        raise ValueError(f"need at least three positive volume factors, got {factors}")
    if elements is None:
        from gfm_ase.validation.eos import dcdft_elements

        covered = covered_elements(calc)
        elements = [e for e in dcdft_elements() if covered is None or e in covered]
    unknown = [e for e in elements if e not in atomic_numbers]
    if unknown:
        raise ValueError(f"unknown element symbols {unknown}")
    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for el in elements:
        try:
            rows[el] = element_polymorphs(calc, el, lattices, factors)
        except Exception as exc:  # a refused element is reported, not fatal
            failed[el] = f"{type(exc).__name__}: {exc}"
    n_edge = sum(len(r["at_edge"]) for r in rows.values())
    summary = {
        "n_elements": len(rows),
        "n_failed": len(failed),
        "lattices": lattices,
        "factor_range": [factors[0], factors[-1]],
        "n_at_edge": n_edge,
        "lowest_counts": {k: sum(r["lowest"] == k for r in rows.values()) for k in lattices},
    }
    header = ["element", "lowest", *(f"dE {k} eV/atom" for k in lattices), "at edge"]
    body = [
        [el, r["lowest"], *(r["dE_eV"][k] for k in lattices), " ".join(r["at_edge"]) or "-"] for el, r in rows.items()
    ]
    sections = ["## Per element", "", table(header, body)]
    if failed:
        sections += ["", "## Failed", "", table(["element", "error"], [[k, v] for k, v in failed.items()])]
    notes = [
        f"each lattice scanned over {len(factors)} volumes, {factors[0]:g}-{factors[-1]:g} x the element's V_ref "
        "(WIEN2k V0 of ase.collections.dcdft, else an fcc estimate from the covalent radius); minimum per lattice "
        "from a parabola through the lowest point and its neighbours; dE relative to the lowest lattice",
        "at edge: the lattice's lowest point is the first or last volume, its true minimum lies outside the scan "
        "(dE is an upper bound)",
    ]
    refused = sum(r["n_refused"] for r in rows.values())
    if refused:
        notes.append(f"{refused} points refused by the calculator's geometry check (left out)")
    result = SuiteResult(
        "polymorphs",
        describe(calc),
        summary,
        details={"elements": rows, "failed": failed},
        sections=sections,
        notes=notes,
        title="Validation: polymorph energies of the elements",
    )
    if outdir is not None:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        if rows:
            result.plots.append(plot_polymorphs(rows, lattices, outdir / "polymorphs.png"))
        result.write(outdir)
    return result


def plot_polymorphs(rows: dict[str, dict[str, Any]], lattices: list[str], path: Path) -> str:
    plt = pyplot()
    els = list(rows)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.18 * len(els)), 3.5))
    x = np.arange(len(els))
    for k, kind in enumerate(lattices):
        ax.scatter(x, [rows[el]["dE_eV"][kind] for el in els], s=8, label=kind, marker="os^vD"[k % 5])
    ax.set_xticks(x, els, fontsize=5, rotation=90)
    ax.set_ylabel("E − E(lowest lattice) (eV/atom)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.legend(fontsize=6, ncol=len(lattices))
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = [
    "DEFAULT_FACTORS",
    "LATTICES",
    "NEAR_EV",
    "ORDER_EV",
    "element_polymorphs",
    "lattice",
    "reference_volume",
    "run_polymorphs",
]
