#!/usr/bin/env python
"""Measure per-element energy offsets between a real-DFT store and a head's surrogate teacher, on the same structures.

    .venv-teachers/bin/python pretraining/corpus/align_references.py --teacher chgnet STORE.h5 [...] \
        [--max-structures 150] [--json out.json]

Real DFT sets (mlearn, FitSNAP) were computed with other VASP settings than the Materials Project data the teachers
reproduce, so their total energies differ by an (almost) per-element constant. Fitting each dataset's own reference
energies would align the *mean* energies of different structure distributions, which biases the offset. Here the
teacher relabels a seeded sample of the dataset's own structures and the offset is the least-squares fit of
``E_DFT - E_teacher = sum_Z n_Z delta_Z``; the result goes into the dataset's ``energy_offsets`` in the pretraining
config (subtracted from the DFT energies, so the head sees one energy scale while forces and stresses stay DFT).

Printed per dataset: the offsets (eV/atom), and the teacher's errors against the DFT labels after the offset
(energy MAE meV/atom, force MAE meV/A, stress MAE meV/A^3): a measurement of how good the surrogate is there.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gfm_ase.pretraining.corpus.teachers import TEACHERS, get_teacher

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator


def robust_offsets(
    A: np.ndarray, b: np.ndarray, n_atoms: np.ndarray, rounds: int = 5, k: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of ``b ~ A @ delta`` that ignores structures where the teacher fails (the per-atom residual
    further than ``k`` robust standard deviations, 1.4826 x the median absolute deviation, from the median):
    surrogates are wrong far from equilibrium (compressed cells, liquids), and such structures must not move the
    offset of the equilibrium region. Returns (delta, inlier mask)."""
    keep = np.ones(len(b), dtype=bool)
    coef = np.zeros(A.shape[1])
    for _ in range(rounds):
        coef, *_ = np.linalg.lstsq(A[keep], b[keep], rcond=None)
        r = (b - A @ coef) / n_atoms
        med = np.median(r[keep])
        sigma = max(1.4826 * np.median(np.abs(r[keep] - med)), 0.005)  # never clip below 5 meV/atom
        new = np.abs(r - med) <= k * sigma
        if new.sum() < A.shape[1] or np.array_equal(new, keep):
            break
        keep = new
    return coef, keep


def align(store_path: Path, calc: Calculator, max_structures: int, seed: int = 0) -> dict[str, Any]:
    from ase import Atoms
    from ase.data import chemical_symbols

    from gfm_ase.data import Store

    store = Store(store_path)
    n = len(store)
    idx = np.sort(np.random.default_rng([seed, 3]).permutation(n)[:max_structures])
    rows, d_e, f_err, s_err, n_atoms = [], [], [], [], []
    zs_all = sorted({int(z) for i in idx for z in store.labels_and_structure(int(i)).numbers})
    for i in idx:
        d = store.labels_and_structure(int(i))
        if d.energy is None:
            continue
        atoms = Atoms(numbers=d.numbers, positions=d.positions, cell=d.cell, pbc=d.pbc)
        atoms.calc = calc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = float(atoms.get_potential_energy())
            f = atoms.get_forces()
            s = atoms.get_stress() if all(atoms.pbc) else None
        counts = np.array([np.sum(d.numbers == z) for z in zs_all], dtype=float)
        rows.append(counts)
        d_e.append(d.energy - e)
        n_atoms.append(len(atoms))
        if d.forces is not None:
            f_err.append(np.abs(f - d.forces).ravel())
        if s is not None and d.stress is not None:
            s_err.append(np.abs(s - d.stress))
    A, b = np.array(rows), np.array(d_e)
    coef, inlier = robust_offsets(A, b, np.array(n_atoms, dtype=float))
    resid = (b - A @ coef) / np.array(n_atoms)
    return {
        "store": store_path.name,
        "structures": int(len(b)),
        "structures_in_fit": int(inlier.sum()),
        "energy_offsets": {chemical_symbols[z]: round(float(c), 6) for z, c in zip(zs_all, coef)},
        "teacher_energy_mae_meV_atom_after_offset": float(np.abs(resid).mean() * 1000),
        "teacher_energy_median_abs_meV_atom_after_offset": float(np.median(np.abs(resid)) * 1000),
        "teacher_force_mae_meV_A": float(np.concatenate(f_err).mean() * 1000) if f_err else None,
        "teacher_stress_mae_meV_A3": float(np.concatenate(s_err).mean() * 1000) if s_err else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", nargs="+", type=Path)
    ap.add_argument("--teacher", required=True, choices=sorted(TEACHERS))
    ap.add_argument("--max-structures", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t = get_teacher(args.teacher)
    calc = t.factory()
    out: dict[str, Any] = {"teacher": t.surrogate, "level_of_theory": t.level_of_theory, "datasets": {}}
    for p in args.stores:
        r = align(p, calc, args.max_structures, args.seed)
        out["datasets"][p.stem] = r
        print(json.dumps({p.stem: r}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
