#!/usr/bin/env python
"""Generate a small high-fidelity molecular set: PBE/def2-SVP (PySCF) with matching GFN2-xTB labels.

Level of theory (subset ``pbe``): Kohn-Sham DFT, PBE functional, def2-SVP basis, restricted closed-shell, PySCF
default integration grid (level 3), no density fitting, no dispersion correction, SCF conv_tol 1e-10 Ha, analytic
nuclear gradients.  Subset ``gfn2``: the same geometries labelled with GFN2-xTB (tblite, same settings as
generate_xtb.py).  Both files of a shard hold the same structures in the same order (``info["pair_id"]``), so the
fine-tuning task "GFN2-xTB -> PBE" (and delta learning) can be built from them.

Units (ASE): energy eV (total electronic energy converted from Hartree with ase.units.Hartree; free atoms are not at
zero), forces eV/A (from Hartree/Bohr).  Molecules are non-periodic: no stress.

Geometries: water, methanol and ethanol (ase.collections g2 starting structures), relaxed with GFN2-xTB, then per
shard a seeded mix of normal-mode samples (300-1500 K, GFN2 Hessian) and GFN2 Langevin MD snapshots (300-1000 K,
which visit the OH/CH3 rotamers of ethanol).  ``group`` is the molecule name.  Non-converged SCF (either method) drops
the structure from both subsets and is counted in the manifest.

Run with no arguments: ``python pretraining/corpus/generate_pyscf.py`` writes ``work_data/generated/pyscf_pbe/``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from gfm_ase.pretraining.corpus.corpus_io import attach_labels, base_parser, label_with, log_to_stderr, run_shards
from gfm_ase.pretraining.corpus.xtb_common import (
    XTB_LEVEL,
    XTB_SETTINGS,
    covalent_clash,
    hessian,
    md_snapshots,
    normal_mode_sample,
    relax,
    xtb_calc,
)

if TYPE_CHECKING:
    from ase import Atoms

NAME = "pyscf_pbe"
MOLECULES = {"water": "H2O", "methanol": "CH3OH", "ethanol": "CH3CH2OH"}
# shard k labels SCHEDULE[k % len(SCHEDULE)]: interleaved so a partial run still covers all molecules
SCHEDULE = [
    "ethanol",
    "methanol",
    "water",
    "ethanol",
    "methanol",
    "ethanol",
    "water",
    "methanol",
    "ethanol",
    "ethanol",
    "methanol",
    "water",
    "ethanol",
    "methanol",
    "ethanol",
]
DFT: dict[str, Any] = dict(
    xc="PBE", basis="def2-SVP", grids_level=3, conv_tol=1e-10, max_cycle=100, density_fit=False, charge=0, spin=0
)
SETTINGS: dict[str, Any] = dict(
    dft=DFT,
    xtb=XTB_SETTINGS,
    structures_per_shard=8,
    normal_mode_fraction=0.6,
    nms_temperature_K=[300, 1500],
    md_temperature_K=[300, 1000],
    md_every_steps=40,
    md_timestep_fs=0.5,
    schedule=SCHEDULE,
    relax_fmax=0.01,
    clash_factor=0.6,
)
DEFAULT_SHARDS = len(SCHEDULE)  # 15 x 8 = 120 structures
SUBSETS = {
    "gfn2": {
        "level_of_theory": XTB_LEVEL,
        "code": "tblite",
        "family": "semiempirical",
        "head_hint": "gfn2",
        "paired_with": "pbe",
    },
    "pbe": {
        "level_of_theory": "PBE/def2-SVP (PySCF RKS, grid level 3, no RI, no dispersion)",
        "code": "pyscf",
        "family": "dft",
        "head_hint": "pbe_svp_mol",
        "paired_with": "gfn2",
    },
}


class SCFNotConverged(RuntimeError):
    pass


def pbe_label(atoms: Atoms, settings: Mapping[str, Any] = DFT) -> tuple[float, np.ndarray]:
    """PBE/def2-SVP energy (eV) and forces (eV/A) of a closed-shell neutral molecule with PySCF."""
    from ase.units import Bohr, Hartree
    from pyscf import dft, gto

    mol = gto.M(
        atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
        unit="Angstrom",
        basis=settings["basis"],
        charge=settings["charge"],
        spin=settings["spin"],
        verbose=0,
    )
    mf = dft.RKS(mol)
    mf.xc = settings["xc"]
    mf.grids.level = settings["grids_level"]
    mf.conv_tol = settings["conv_tol"]
    mf.max_cycle = settings["max_cycle"]
    if settings["density_fit"]:
        mf = mf.density_fit()
    e = mf.kernel()
    if not mf.converged:
        raise SCFNotConverged("PBE SCF did not converge")
    grad = mf.nuc_grad_method().kernel()  # Hartree/Bohr, dE/dx
    return float(e) * Hartree, -np.asarray(grad) * Hartree / Bohr


_BASE_CACHE: dict[str, tuple[Atoms, np.ndarray]] = {}


def base_geometry(name: str) -> tuple[Atoms, np.ndarray]:
    """GFN2-relaxed geometry and Hessian of a schedule molecule (deterministic; cached per process)."""
    if name not in _BASE_CACHE:
        from ase import Atoms
        from ase.collections import g2

        m = g2[MOLECULES[name]]
        atoms = Atoms(m.get_chemical_symbols(), positions=m.positions)
        calc = xtb_calc()
        eq, _ = relax(atoms, calc, fmax=SETTINGS["relax_fmax"], steps=300)
        eq.calc = None
        _BASE_CACHE[name] = (eq, hessian(eq, calc))
    eq, h = _BASE_CACHE[name]
    return eq.copy(), h


def sample_geometries(name: str, rng: np.random.Generator, n: int) -> list[Atoms]:
    eq, hess = base_geometry(name)
    s = SETTINGS
    n_nm = int(round(s["normal_mode_fraction"] * n))
    out: list[Atoms] = []
    lo, hi = s["nms_temperature_K"]
    while len(out) < n_nm:
        t = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        a = normal_mode_sample(eq, hess, t, rng)
        if not covalent_clash(a, s["clash_factor"]):
            a.info.update(config_type="normal_mode", temperature_K=round(t, 1))
            out.append(a)
    t = float(rng.uniform(*s["md_temperature_K"]))
    for a in md_snapshots(eq, xtb_calc(), t, rng, n - n_nm, s["md_every_steps"], s["md_timestep_fs"]):
        a.info.update(config_type="md", temperature_K=round(t, 1))
        out.append(a)
    return out


def make_shard(
    shard: int, rng: np.random.Generator, n: int | None = None
) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
    from pyscf import lib

    lib.num_threads(1)
    name = SCHEDULE[shard % len(SCHEDULE)]
    n = n or SETTINGS["structures_per_shard"]
    xtb = xtb_calc()
    frames: dict[str, list[Atoms]] = {"gfn2": [], "pbe": []}
    stats = {"pbe_failed": 0, "gfn2_failed": 0}
    for i, atoms in enumerate(sample_geometries(name, rng, n)):
        atoms.info.update(group=name, pair_id=f"{shard}:{i}", charge=0, multiplicity=1)
        try:
            g = label_with(atoms, xtb)
        except Exception:  # noqa: BLE001 - xTB SCF failure: drop the structure from both subsets
            stats["gfn2_failed"] += 1
            xtb = xtb_calc()  # do not restart the next SCF from a failed one
            continue
        try:
            e, f = pbe_label(atoms)
        except Exception:  # noqa: BLE001 - PBE SCF failure: drop from both subsets, count
            stats["pbe_failed"] += 1
            continue
        frames["gfn2"].append(g)
        frames["pbe"].append(attach_labels(atoms, e, f))
    return frames, stats


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], NAME, DEFAULT_SHARDS)
    args = p.parse_args(argv)
    m = run_shards(
        name=NAME,
        out=args.out,
        seed=args.seed,
        shards=range(args.shards),
        subsets=SUBSETS,
        settings=SETTINGS,
        make_shard=lambda k, rng: make_shard(k, rng),
        packages=("ase", "numpy", "tblite", "pyscf"),
        description=__doc__,
        max_minutes=args.max_minutes,
        log=log_to_stderr,
    )
    log_to_stderr(f"[{NAME}] totals {m['totals']} stats {m['stats']} elements {m['elements']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
