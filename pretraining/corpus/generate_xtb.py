#!/usr/bin/env python
"""Generate the GFN2-xTB corpus (tblite): molecules across many elements and small Gamma-point crystals.

Level of theory: GFN2-xTB (Bannwarth, Ehlert, Grimme 2019) via ``tblite.ase.TBLite`` (method "GFN2-xTB", accuracy 1,
electronic temperature 300 K, at most 250 SCF iterations).  Molecules are neutral closed-shell singlets.  SCF failures
are skipped and counted in the manifest (``stats.scf_failed``).

Units (ASE): energy eV (tblite's total energy, free atoms are NOT at zero), forces eV/A, stress eV/A^3
tension-positive (checked against finite differences in tests/test_corpus_xtb.py).

Two data sets:
  xtb_molecules/  ase.collections g2 closed-shell molecules (H Li B C N O F Na Al Si P S Cl), halogenated variants
                  (one C-H -> C-F / C-Cl / C-Br), Cl -> Br analogues, and the s22 non-covalent dimers.  Per parent
                  molecule: the input geometry, the GFN2 minimum, normal-mode samples at 300-2000 K from the GFN2
                  Hessian, Gaussian rattles (0.02-0.12 A) and Langevin MD snapshots at 500-1500 K.  ``group`` is
                  the parent molecule, so splits by group keep a molecule's conformers together.
  xtb_crystals/   rocksalt, zincblende, diamond, wurtzite, CsCl, fluorite/antifluorite, cubic perovskite, rutile
                  and layered (graphite, h-BN, MoS2) cells of 4-12 atoms: an isotropic E(V) scan, then
                  strained (+-5 %, shears), volume-scaled and rattled (0.01-0.10 A) cells around the GFN2 minimum.
                  Each cell gets a fresh calculator; cells whose E/atom is > 3 eV/atom from the scan median are
                  rejected and counted (``stats.rejected_unphysical``); a prototype with fewer than 3 labelled
                  E(V) points is dropped (``stats.prototype_dropped``; this run: the titanate perovskites).
                  CAVEAT: tblite has no k-point sampling; periodic energies are Gamma-point only for the cell used
                  and are NOT converged with cell size (measured here: diamond Si -0.45 eV/atom from 8 to 64 atoms,
                  rocksalt MgO -4.4 eV/atom).  Each prototype always uses the same cell, so each prototype's energy
                  surface is self-consistent, but do not mix these labels with GFN2 molecules in one head or
                  compare cell sizes; the manifest records this (``kpoints: gamma``).

Run with no arguments: ``python pretraining/corpus/generate_xtb.py`` writes ``work_data/generated/xtb_molecules/``
then ``work_data/generated/xtb_crystals/`` and resumes finished shards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from gfm_ase.pretraining.corpus.corpus_io import (
    DEFAULT_ROOT,
    base_parser,
    label_with,
    log_to_stderr,
    run_shards,
    shard_rng,
)
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

MOL_SETTINGS: dict[str, Any] = dict(
    xtb=XTB_SETTINGS,
    molecules_per_shard=5,
    relax_fmax=0.03,
    relax_steps=200,
    hessian_delta_A=0.005,
    nms_samples=8,
    nms_temperature_K=[300, 2000],
    nms_k_min_eV_A2=1.0,
    rattles=5,
    rattle_range_A=[0.02, 0.12],
    md_snapshots=8,
    md_every_steps=20,
    md_timestep_fs=0.5,
    md_temperature_K=[500, 1500],
    clash_factor=0.55,
    pool="g2 closed-shell + halogenated g2 (seeded) + Cl->Br g2 + s22 dimers",
)
CRYSTAL_SETTINGS: dict[str, Any] = dict(
    xtb=XTB_SETTINGS,
    kpoints="gamma",
    eos_scales=[0.96, 0.98, 1.0, 1.02, 1.04],
    samples=14,
    strain_max=0.05,
    scale_range=[0.975, 1.03],
    rattle_range_A=[0.01, 0.10],
    fresh_calculator_per_structure=True,
    max_dev_eV_atom=3.0,
)
# a prototype whose isotropic E(V) scan keeps fewer labelled points than this is dropped: with tblite's Gamma-point
# SCF the 5-atom cubic titanate perovskites fail or collapse even undistorted (measured in this corpus run)
MIN_EOS_POINTS = 3
HALOGEN_BOND = {"F": 1.35, "Cl": 1.77, "Br": 1.94}


# ----------------------------------------------------------------------------------------------- molecules
def _closed_shell(atoms: Atoms) -> bool:
    return len(atoms) > 1 and not np.any(atoms.get_initial_magnetic_moments()) and int(atoms.numbers.sum()) % 2 == 0


def _clean(atoms: Atoms) -> Atoms:
    from ase import Atoms

    return Atoms(atoms.get_chemical_symbols(), positions=atoms.positions.copy())


def _halogenate(atoms: Atoms, rng: np.random.Generator) -> tuple[Atoms, str] | tuple[None, None]:
    """Replace one H bonded to C by F, Cl or Br at a typical C-X bond length; None if no C-H bond."""
    sym = atoms.get_chemical_symbols()
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    pairs = [
        (h, c) for h in range(len(sym)) if sym[h] == "H" for c in range(len(sym)) if sym[c] == "C" and d[h, c] < 1.2
    ]
    if not pairs:
        return None, None
    h, c = pairs[int(rng.integers(len(pairs)))]
    x = str(rng.choice(list(HALOGEN_BOND)))
    out = atoms.copy()
    u = out.positions[h] - out.positions[c]
    out.positions[h] = out.positions[c] + u / np.linalg.norm(u) * HALOGEN_BOND[x]
    sym[h] = x
    out.set_chemical_symbols(sym)
    return out, x


def _cl_to_br(atoms: Atoms) -> Atoms | None:
    sym = atoms.get_chemical_symbols()
    if "Cl" not in sym:
        return None
    out = atoms.copy()
    d = np.linalg.norm(out.positions[:, None] - out.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    for i, s in enumerate(sym):
        if s == "Cl":
            j = int(np.argmin(d[i]))
            u = out.positions[i] - out.positions[j]
            out.positions[i] = out.positions[j] + u / np.linalg.norm(u) * (np.linalg.norm(u) + 0.17)
            sym[i] = "Br"
    out.set_chemical_symbols(sym)
    return out


def molecule_pool(seed: int) -> list[tuple[str, Atoms]]:
    """Deterministic list of (name, Atoms) parent molecules; halogenation sites are drawn from ``seed``."""
    from ase.collections import g2, s22

    rng = np.random.default_rng([int(seed), 987654321])
    pool: list[tuple[str, Atoms]] = []
    closed = [n for n in g2.names if _closed_shell(g2[n])]
    for n in closed:
        pool.append((f"g2:{n}", _clean(g2[n])))
    for n in closed:
        variant, x = _halogenate(_clean(g2[n]), rng)
        if variant is not None:
            pool.append((f"g2:{n}:H->{x}", variant))
    for n in closed:
        br = _cl_to_br(_clean(g2[n]))
        if br is not None:
            pool.append((f"g2:{n}:Cl->Br", br))
    for n in s22.names:
        pool.append((f"s22:{n}", _clean(s22[n])))
    return pool


def _tag(atoms: Atoms, name: str, config_type: str, **extra: Any) -> Atoms:
    atoms.info.update(config_type=config_type, group=name, charge=0, multiplicity=1, **extra)
    return atoms


def molecule_frames(
    name: str,
    atoms: Atoms,
    rng: np.random.Generator,
    settings: Mapping[str, Any] = MOL_SETTINGS,
    stats: dict[str, int] | None = None,
) -> list[Atoms]:
    """All labelled frames for one parent molecule (raises on SCF failure of the parent itself)."""
    s = settings
    stats = stats if stats is not None else {}
    calc = xtb_calc()
    frames: list[Atoms] = []

    def add(a: Atoms, config_type: str, **extra: Any) -> None:
        if covalent_clash(a, s["clash_factor"]):
            stats["rejected_clash"] = stats.get("rejected_clash", 0) + 1
            return
        nonlocal calc
        try:
            frames.append(label_with(_tag(a, name, config_type, **extra), calc))
        except Exception:  # noqa: BLE001 - SCF non-convergence / library failure: skip and count
            stats["scf_failed"] = stats.get("scf_failed", 0) + 1
            calc = xtb_calc()  # do not restart the next SCF from a failed one

    add(atoms.copy(), "input")
    eq, converged = relax(atoms, calc, s["relax_fmax"], s["relax_steps"])
    if not converged:
        stats["relax_not_converged"] = stats.get("relax_not_converged", 0) + 1
    eq.calc = None
    add(eq.copy(), "minimum" if converged else "relax_end")
    hess = hessian(eq, calc, s["hessian_delta_A"])
    lo, hi = s["nms_temperature_K"]
    for _ in range(s["nms_samples"]):
        t = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        add(normal_mode_sample(eq, hess, t, rng, s["nms_k_min_eV_A2"]), "normal_mode", temperature_K=round(t, 1))
    for _ in range(s["rattles"]):
        sigma = float(rng.uniform(*s["rattle_range_A"]))
        a = eq.copy()
        a.positions += rng.normal(0.0, sigma, size=a.positions.shape)
        add(a, "rattle", rattle_A=round(sigma, 4))
    lo, hi = s["md_temperature_K"]
    t = float(rng.uniform(lo, hi))
    snaps: list[Atoms]
    try:
        snaps = md_snapshots(eq, calc, t, rng, s["md_snapshots"], s["md_every_steps"], s["md_timestep_fs"])
    except Exception:  # noqa: BLE001
        stats["md_failed"] = stats.get("md_failed", 0) + 1
        snaps = []
    for a in snaps:
        add(a, "md", temperature_K=round(t, 1))
    return frames


def make_molecule_shard(
    shard: int,
    rng: np.random.Generator,
    pool: Sequence[tuple[str, Atoms]],
    settings: Mapping[str, Any] = MOL_SETTINGS,
) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
    m = settings["molecules_per_shard"]
    frames: list[Atoms] = []
    stats = {"parents": 0, "parents_failed": 0, "scf_failed": 0}
    for name, atoms in pool[shard * m : (shard + 1) * m]:
        try:
            frames += molecule_frames(name, atoms, rng, settings, stats)
            stats["parents"] += 1
        except Exception:  # noqa: BLE001 - parent relaxation/Hessian failed (SCF): skip the molecule, count it
            stats["parents_failed"] += 1
    return {"xtb_molecules": frames}, stats


# ----------------------------------------------------------------------------------------------- crystals
def crystal_prototypes() -> list[tuple[str, Atoms]]:
    """(name, Atoms) fixed cells of 4-12 atoms at experimental lattice parameters (A), families interleaved."""
    from ase import Atoms
    from ase.build import bulk
    from ase.spacegroup import crystal

    protos: list[tuple[str, Atoms]] = []
    for f, a in [
        ("LiF", 4.03),
        ("LiCl", 5.13),
        ("NaF", 4.63),
        ("NaCl", 5.64),
        ("KCl", 6.29),
        ("MgO", 4.21),
        ("CaO", 4.81),
    ]:
        protos.append((f"rocksalt:{f}", bulk(f, "rocksalt", a=a, cubic=True)))
    for f, a in [("BN", 3.62), ("SiC", 4.36), ("AlP", 5.46), ("GaAs", 5.65), ("ZnS", 5.41), ("BP", 4.54)]:
        protos.append((f"zincblende:{f}", bulk(f, "zincblende", a=a, cubic=True)))
    for f, a in [("C", 3.567), ("Si", 5.431), ("Ge", 5.658)]:
        protos.append((f"diamond:{f}", bulk(f, "diamond", a=a, cubic=True)))
    for f, a, c in [("ZnO", 3.25, 5.21), ("GaN", 3.19, 5.19), ("AlN", 3.11, 4.98)]:
        protos.append((f"wurtzite:{f}", bulk(f, "wurtzite", a=a, c=c)))
    protos.append(("cesiumchloride:CsCl", bulk("CsCl", "cesiumchloride", a=4.12).repeat((2, 2, 1))))
    protos.append(("fluorite:CaF2", bulk("CaF2", "fluorite", a=5.46, cubic=True)))
    protos.append(("antifluorite:Li2O", bulk("OLi2", "fluorite", a=4.61, cubic=True)))
    for f, a in [("SrTiO3", 3.905), ("BaTiO3", 4.00), ("CaTiO3", 3.84), ("KNbO3", 4.02)]:
        b, m = {"SrTiO3": ("Sr", "Ti"), "BaTiO3": ("Ba", "Ti"), "CaTiO3": ("Ca", "Ti"), "KNbO3": ("K", "Nb")}[f]
        protos.append(
            (
                f"perovskite:{f}",
                Atoms(
                    f"{b}{m}O3",
                    cell=[a, a, a],
                    pbc=True,
                    scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
                ),
            )
        )
    for m, a, c, u in [("Ti", 4.594, 2.959, 0.305), ("Sn", 4.737, 3.186, 0.307)]:
        protos.append(
            (
                f"rutile:{m}O2",
                crystal([m, "O"], basis=[(0, 0, 0), (u, u, 0)], spacegroup=136, cellpar=[a, a, c, 90, 90, 90]),
            )
        )
    protos.append(
        (
            "layered:graphite",
            crystal(
                ["C", "C"],
                basis=[(0, 0, 0.25), (1 / 3, 2 / 3, 0.25)],
                spacegroup=194,
                cellpar=[2.464, 2.464, 6.711, 90, 90, 120],
            ),
        )
    )
    protos.append(
        (
            "layered:hBN",
            crystal(
                ["B", "N"],
                basis=[(1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.25)],
                spacegroup=194,
                cellpar=[2.504, 2.504, 6.66, 90, 90, 120],
            ),
        )
    )
    protos.append(
        (
            "layered:MoS2",
            crystal(
                ["Mo", "S"],
                basis=[(1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, 0.621)],
                spacegroup=194,
                cellpar=[3.16, 3.16, 12.29, 90, 90, 120],
            ),
        )
    )
    protos = [
        (n, Atoms(a.get_chemical_symbols(), cell=a.cell.array, scaled_positions=a.get_scaled_positions(), pbc=True))
        for n, a in protos
    ]
    # round-robin over structure families, so a run stopped by its time budget still covers every family
    families: dict[str, list[tuple[str, Atoms]]] = {}
    for n, atoms in protos:
        families.setdefault(n.split(":")[0], []).append((n, atoms))
    order = []
    while any(families.values()):
        for fam in list(families):
            if families[fam]:
                order.append(families[fam].pop(0))
    return order


def make_crystal_shard(
    shard: int,
    rng: np.random.Generator,
    protos: Sequence[tuple[str, Atoms]],
    settings: Mapping[str, Any] = CRYSTAL_SETTINGS,
) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
    name, base = protos[shard]
    s = settings
    frames: list[Atoms] = []
    stats = {"scf_failed": 0, "rejected_unphysical": 0}
    ref: list[float] = []  # E/atom of the E(V) scan: a sanity reference for the distorted cells

    def add(a: Atoms, config_type: str, **extra: Any) -> Atoms | None:
        a.info.update(config_type=config_type, group=name, kpoints="gamma", **extra)
        try:
            # a fresh calculator per cell: tblite restarts the SCF from the previous result, and after a failed
            # or different cell that restart can "converge" to a collapsed state (seen: -2000 eV/atom perovskites)
            fr = label_with(a, xtb_calc())
        except Exception:  # noqa: BLE001 - SCF non-convergence: skip, count
            stats["scf_failed"] += 1
            return None
        e = fr.get_potential_energy() / len(fr)
        if ref and abs(e - float(np.median(ref))) > s["max_dev_eV_atom"]:
            stats["rejected_unphysical"] += 1
            return None
        frames.append(fr)
        return fr

    energies: list[tuple[float, float]] = []
    for sc in s["eos_scales"]:
        a = base.copy()
        a.set_cell(base.cell.array * sc, scale_atoms=True)
        fr = add(a, "eos", scale=sc)
        if fr is not None:
            energies.append((sc, fr.get_potential_energy()))
            ref.append(fr.get_potential_energy() / len(fr))
    if len(energies) < MIN_EOS_POINTS:  # the undistorted cell itself is numerically unstable: drop the prototype
        stats["prototype_dropped"] = 1
        stats["dropped_frames"] = len(frames)
        return {"xtb_crystals": []}, stats
    s0 = 1.0
    if len(energies) >= 3:
        x, y = np.array(energies).T
        c2, c1, _ = np.polyfit(x, y, 2)
        if c2 > 0:
            s0 = float(np.clip(-c1 / (2 * c2), min(s["eos_scales"]), max(s["eos_scales"])))
    for _ in range(s["samples"]):
        a = base.copy()
        smax = float(rng.uniform(0.0, s["strain_max"]))
        eps = rng.uniform(-smax, smax, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        scale = s0 * float(rng.uniform(*s["scale_range"]))
        a.set_cell(base.cell.array @ ((np.eye(3) + eps) * scale), scale_atoms=True)
        sigma = float(rng.uniform(*s["rattle_range_A"]))
        a.positions += rng.normal(0.0, sigma, size=a.positions.shape)
        add(a, "strain_rattle", rattle_A=round(sigma, 4), strain_max=round(smax, 4), eos_min_scale=round(s0, 4))
    return {"xtb_crystals": frames}, stats


MOL_SUBSETS = {
    "xtb_molecules": {
        "level_of_theory": XTB_LEVEL,
        "code": "tblite",
        "family": "semiempirical",
        "head_hint": "gfn2",
        "charge": 0,
        "multiplicity": 1,
    }
}
CRYSTAL_SUBSETS = {
    "xtb_crystals": {
        "level_of_theory": "GFN2-xTB (tblite), periodic, Gamma-point only",
        "code": "tblite",
        "family": "semiempirical",
        "head_hint": "gfn2_pbc",
        "kpoints": "gamma",
        "notes": "energies not converged with cell size (no k-points in tblite); one "
        "fixed cell per prototype; keep apart from molecular GFN2 data",
    }
}


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], "xtb_molecules", 0)
    p.add_argument("--set", choices=["molecules", "crystals", "all"], default="all")
    p.add_argument("--crystal-out", type=Path, default=DEFAULT_ROOT / "xtb_crystals")
    args = p.parse_args(argv)
    pkgs = ("ase", "numpy", "tblite")
    if args.set in ("molecules", "all"):
        pool = molecule_pool(args.seed)
        m = MOL_SETTINGS["molecules_per_shard"]
        n = args.shards or -(-len(pool) // m)
        res = run_shards(
            name="xtb_molecules",
            out=args.out,
            seed=args.seed,
            shards=range(n),
            subsets=MOL_SUBSETS,
            settings=MOL_SETTINGS,
            make_shard=lambda k, rng: make_molecule_shard(k, rng, pool),
            packages=pkgs,
            description=__doc__,
            max_minutes=args.max_minutes,
            log=log_to_stderr,
        )
        log_to_stderr(f"[xtb_molecules] totals {res['totals']} stats {res['stats']} elements {res['elements']}")
    if args.set in ("crystals", "all"):
        protos = crystal_prototypes()
        n = min(args.shards or len(protos), len(protos))
        res = run_shards(
            name="xtb_crystals",
            out=args.crystal_out,
            seed=args.seed,
            shards=range(n),
            subsets=CRYSTAL_SUBSETS,
            settings=CRYSTAL_SETTINGS,
            make_shard=lambda k, rng: make_crystal_shard(k, rng, protos),
            packages=pkgs,
            description=__doc__,
            max_minutes=args.max_minutes,
            log=log_to_stderr,
        )
        log_to_stderr(f"[xtb_crystals] totals {res['totals']} stats {res['stats']} elements {res['elements']}")
    return 0


__all__ = ["molecule_pool", "crystal_prototypes", "make_molecule_shard", "make_crystal_shard", "shard_rng"]

if __name__ == "__main__":
    sys.exit(main())
