"""gfm-ase demo (`make demo`): the default built-in model (gfm_ase.hub.default_model) on silicon, compared with the
WIEN2k PBE reference.

1. relax bulk Si (positions and cell; BFGS + FrechetCellFilter) and compare the lattice constant with WIEN2k
   (ase.collections.dcdft);
2. E(V) over 0.94-1.06 V0, Birch-Murnaghan fit, V0 / B0 / B' and the Delta value against WIEN2k, plotted;
3. the phonon band structure with phonopy (finite displacements), written as a PNG;
4. a short NVE molecular-dynamics run, with its energy drift;
and prints a summary. Outputs go to ./demo_output/ (override with --out).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import units  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.filters import FrechetCellFilter  # noqa: E402
try:  # ASE >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
from ase.md.verlet import VelocityVerlet  # noqa: E402
from ase.optimize import BFGS  # noqa: E402

from gfm_ase import GFMCalculator  # noqa: E402
from gfm_ase.hub import default_model, default_model_help  # noqa: E402
from gfm_ase.validation.eos import eos_for_element, reference_params  # noqa: E402
from gfm_ase.validation.eos_fit import EOSParams  # noqa: E402


def relax_si(calc):
    ref = reference_params("Si")
    a_ref = (8 * ref.v0) ** (1 / 3)  # 8-atom conventional diamond cell
    atoms = bulk("Si", "diamond", a=a_ref * 1.02, cubic=True)
    atoms.rattle(0.02, seed=0)
    atoms.calc = calc
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    converged = opt.run(fmax=1e-3, steps=300)
    a = (atoms.get_volume()) ** (1 / 3)
    return atoms, {"a_relaxed_A": a, "a_wien2k_A": a_ref, "a_error_pct": 100 * (a - a_ref) / a_ref,
                   "relax_steps": opt.nsteps, "converged": bool(converged)}


def _label(calc) -> str:
    return f"{calc.model.config.name} ({calc.head})"


def eos(calc, out: Path):
    r = eos_for_element(calc, "Si")
    ref = EOSParams(r["ref_v0"], r["ref_b0"], r["ref_b1"], r["e0"])
    v = np.linspace(r["volumes"].min(), r["volumes"].max(), 200)
    fit = EOSParams(r["v0"], r["b0"], r["b1"], r["e0"])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(r["volumes"], 1000 * (r["energies"] - r["e0"]), "o", label=_label(calc))
    ax.plot(v, 1000 * (fit.energy(v) - r["e0"]), "-", label="Birch-Murnaghan fit")
    ax.plot(v, 1000 * (ref.energy(v) - r["e0"]), "--", label="WIEN2k PBE (dcdft)")
    ax.set_xlabel("volume (A^3/atom)")
    ax.set_ylabel("E - E0 (meV/atom)")
    ax.set_title(f"Si: Delta = {r['delta_meV']:.2f} meV/atom")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "si_eos.png", dpi=120)
    plt.close(fig)
    return {k: float(r[k]) for k in ("v0", "b0", "b1", "ref_v0", "ref_b0", "ref_b1", "delta_meV")}


def phonons(calc, a: float, out: Path):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    prim = bulk("Si", "diamond", a=a)
    unit = PhonopyAtoms(symbols=prim.get_chemical_symbols(), cell=prim.cell.array,
                        scaled_positions=prim.get_scaled_positions())
    ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * 3, primitive_matrix=np.eye(3))
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        from ase import Atoms

        s = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        s.calc = calc
        f = s.get_forces()
        forces.append(f - f.mean(axis=0))  # remove the numerical drift, as phonopy does
    ph.forces = forces
    ph.produce_force_constants()
    from phonopy.phonon.band_structure import get_band_qpoints_and_path_connections

    # fcc path in the primitive reciprocal basis: Gamma-X-W-K-Gamma-L
    path = [[[0, 0, 0], [0.5, 0, 0.5], [0.5, 0.25, 0.75], [0.375, 0.375, 0.75], [0, 0, 0], [0.5, 0.5, 0.5]]]
    qpoints, connections = get_band_qpoints_and_path_connections(path, npoints=51)
    ph.run_band_structure(qpoints, path_connections=connections,
                          labels=["$\\Gamma$", "X", "W", "K", "$\\Gamma$", "L"])
    freqs = np.concatenate([np.ravel(f) for f in ph.band_structure.frequencies])
    fig = ph.plot_band_structure()
    fig = plt.gcf()
    for ax in fig.axes:
        ax.set_ylabel("Frequency (THz)")
    fig.suptitle(f"Si phonons, {calc.model.config.name} ({calc.head} head)")
    fig.savefig(out / "si_phonon_bands.png", dpi=120)
    plt.close("all")
    ph.run_mesh([12, 12, 12], is_gamma_center=True)
    mesh_freqs = ph.mesh.frequencies
    return {"n_displacements": len(forces), "max_frequency_THz": float(freqs.max()),
            "min_frequency_THz": float(mesh_freqs.min()), "supercell_atoms": len(ph.supercell)}


def md(calc, a: float, steps: int = 500):
    atoms = bulk("Si", "diamond", a=a, cubic=True) * (2, 2, 2)
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    e, temps = [], []
    for _ in range(steps // 10):
        dyn.run(10)
        e.append(atoms.get_total_energy() / len(atoms))
        temps.append(atoms.get_temperature())
    e = np.array(e)
    t_ps = np.arange(len(e)) * 10 * 1e-3
    drift = float(np.polyfit(t_ps, e, 1)[0] * 1000)
    return {"atoms": len(atoms), "steps": steps, "timestep_fs": 1.0, "drift_meV_per_atom_per_ps": drift,
            "etot_std_meV_per_atom": float(e.std() * 1000), "mean_T_K": float(np.mean(temps))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help=f"model {default_model_help()}")
    ap.add_argument("--head", default="omat")
    ap.add_argument("--out", default="demo_output")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = args.model if args.model is not None else default_model()
    calc = GFMCalculator(model=model, head=args.head, device="auto", dtype="float32")
    calc64 = GFMCalculator(model=model, head=args.head, device="auto", dtype="float64")
    print(f"model {calc.model.config.name}, head {calc.head}: {calc.head_config.level_of_theory}; "
          f"{calc.model.num_parameters():,} parameters")
    summary = {"model": calc.model.config.name, "head": calc.head}
    atoms, summary["relax"] = relax_si(calc64)
    r = summary["relax"]
    print(f"[relax]   a = {r['a_relaxed_A']:.4f} A  (WIEN2k {r['a_wien2k_A']:.4f} A, {r['a_error_pct']:+.2f} %), "
          f"{r['relax_steps']} BFGS steps")
    summary["eos"] = eos(calc64, out)
    e = summary["eos"]
    print(f"[eos]     V0 = {e['v0']:.3f} A^3/atom (WIEN2k {e['ref_v0']:.3f}), B0 = {e['b0']:.1f} GPa "
          f"(WIEN2k {e['ref_b0']:.1f}), B' = {e['b1']:.2f} (WIEN2k {e['ref_b1']:.2f}), "
          f"Delta = {e['delta_meV']:.2f} meV/atom  -> {out / 'si_eos.png'}")
    summary["phonons"] = phonons(calc64, r["a_relaxed_A"], out)
    p = summary["phonons"]
    print(f"[phonons] max frequency {p['max_frequency_THz']:.2f} THz (PBE/experiment: ~15.5 THz at Gamma), "
          f"lowest mesh frequency {p['min_frequency_THz']:.3f} THz  -> {out / 'si_phonon_bands.png'}")
    summary["md"] = md(calc, r["a_relaxed_A"])
    m = summary["md"]
    print(f"[md]      {m['atoms']} atoms, {m['steps']} x 1 fs NVE (float32): drift "
          f"{m['drift_meV_per_atom_per_ps']:+.3f} meV/atom/ps, <T> = {m['mean_T_K']:.0f} K")
    summary["wall_s"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"done in {summary['wall_s']:.0f} s; summary in {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
