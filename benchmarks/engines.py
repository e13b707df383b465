"""Simulation engines on the same runs: torch-sim batched against an ASE loop, and LAMMPS (fix external) against
ASE, with one gfm-ase model, head and dtype (needs the engines extra).

    OMP_NUM_THREADS=1 python -m benchmarks.engines --model gfm-mini            # CPU, float64
    python -m benchmarks.engines --device cuda --dtype float32 --relax 256 --systems 128
    python -m benchmarks.engines --json engines.json                          # also write the numbers

Rows:
* ``relax``: FIRE with the Frechet cell filter (positions and cell) of ``--relax`` mixed structures
  (:func:`gfm_ase.simulation.samples.mixed_structures`) to ``--fmax``: torch-sim ``frechet_cell_fire`` on the whole
  batch (converged systems leave it) against ASE ``FIRE(FrechetCellFilter(atoms))`` one structure after the other
  with ``GFMCalculator``. Relaxed structures per second, how many converged, force evaluations (ASE: steps + 1
  per structure; torch-sim: batched steps, each evaluating the systems still in the batch).
* ``nvt``: Langevin NVT of ``--systems`` systems (8-32 atoms each), ``--steps`` steps of 1 fs at 600 K: torch-sim
  ``nvt_langevin`` on the whole batch against ASE ``Langevin`` per system. MD steps x systems per second.
* ``lammps``: NVE of one 64-atom Si/Ge cell, ``--lammps-steps`` steps: LAMMPS ``fix nve`` + gfm-ase through
  ``fix external`` against ASE ``VelocityVerlet`` with ``GFMCalculator``. MD steps per second.
Times are wall-clock of the whole run (set-up of the model excluded, neighbor lists included).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import machine


def bench_relax(model, calc, n, fmax, max_steps):
    import torch_sim as ts
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from gfm_ase.simulation.samples import mixed_structures

    structures = mixed_structures(model.evaluator.elements or ["Si", "Ge"], n, seed=0)
    n_atoms = sum(len(a) for a in structures)
    steps = [0]

    def counting(fn):
        def wrapped(state):
            steps[0] += 1
            return fn(state)
        return wrapped

    def optimizer(model, **kw):
        init_fn, update_fn = ts.frechet_cell_fire(model, **kw)
        return init_fn, counting(update_fn)

    t0 = time.perf_counter()
    final = ts.optimize(structures, model, optimizer=optimizer, max_steps=max_steps,
                        convergence_fn=ts.generate_force_convergence_fn(fmax))
    t_ts = time.perf_counter() - t0
    out = model(final)
    f_ts = [float(out["forces"][final.system_idx == b].norm(dim=1).max()) for b in range(final.n_systems)]

    t0 = time.perf_counter()
    converged, evals = 0, 0
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calc
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        converged += bool(opt.run(fmax=fmax, steps=max_steps))
        evals += opt.nsteps + 1
    t_ase = time.perf_counter() - t0
    return {"structures": n, "atoms": n_atoms, "fmax": fmax,
            "torch_sim": {"seconds": t_ts, "per_s": n / t_ts, "batched_steps": steps[0],
                          "below_fmax": int(sum(f < fmax for f in f_ts))},
            "ase": {"seconds": t_ase, "per_s": n / t_ase, "force_evaluations": evals, "converged": converged}}


def bench_nvt(model, calc, n_systems, n_steps, temperature=600.0, dt_fs=1.0):
    import torch_sim as ts
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    from gfm_ase.simulation.samples import mixed_structures

    structures = mixed_structures(model.evaluator.elements or ["Si", "Ge"], n_systems, seed=1, min_atoms=8,
                                  strain=0.0, rattle=0.0)
    n_atoms = sum(len(a) for a in structures)
    t0 = time.perf_counter()
    ts.integrate(structures, model, integrator=ts.nvt_langevin, n_steps=n_steps, temperature=temperature,
                 timestep=dt_fs * 1e-3, seed=0)
    t_ts = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, atoms in enumerate(structures):
        atoms = atoms.copy()
        atoms.calc = calc
        thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(k))
        Langevin(atoms, timestep=dt_fs * units.fs, temperature_K=temperature, friction=0.01 / units.fs,
                 rng=np.random.default_rng(k)).run(n_steps)
    t_ase = time.perf_counter() - t0
    work = n_systems * n_steps
    return {"systems": n_systems, "atoms": n_atoms, "steps": n_steps,
            "torch_sim": {"seconds": t_ts, "steps_x_systems_per_s": work / t_ts},
            "ase": {"seconds": t_ase, "steps_x_systems_per_s": work / t_ase}}


def bench_lammps(args, calc, n_steps):
    import tempfile

    from ase import units
    from ase.build import bulk
    from ase.io import write
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from gfm_ase.simulation.lammps import GFMLammps

    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    atoms.numbers[::4] = 32
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cell.data"
        write(data, atoms, format="lammps-data", specorder=["Si", "Ge"], masses=True, units="metal",
              atom_style="atomic", velocities=True)
        with GFMLammps(args.model, args.head, types=["Si", "Ge"], device=args.device, dtype=args.dtype) as sim:
            sim.commands(f"units metal\natom_style atomic\nread_data {data}\ntimestep 0.001\nfix md all nve\n"
                         "thermo 1000\nrun 0")
            e0 = sim.lmp.get_thermo("etotal")
            t0 = time.perf_counter()
            sim.command(f"run {n_steps}")
            t_lmp = time.perf_counter() - t0
            drift_lmp = sim.lmp.get_thermo("etotal") - e0
    atoms.calc = calc
    e0 = atoms.get_total_energy()
    t0 = time.perf_counter()
    VelocityVerlet(atoms, timestep=1.0 * units.fs).run(n_steps)
    t_ase = time.perf_counter() - t0
    return {"atoms": len(atoms), "steps": n_steps,
            "lammps": {"seconds": t_lmp, "steps_per_s": n_steps / t_lmp, "drift_eV": drift_lmp},
            "ase": {"seconds": t_ase, "steps_per_s": n_steps / t_ase, "drift_eV": atoms.get_total_energy() - e0}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model (default: the default built-in model)")
    p.add_argument("--head", default="omat")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--relax", type=int, default=32, help="structures to relax (0: skip)")
    p.add_argument("--fmax", type=float, default=0.05)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--systems", type=int, default=32, help="NVT systems (0: skip)")
    p.add_argument("--steps", type=int, default=50, help="NVT steps")
    p.add_argument("--lammps-steps", type=int, default=100, help="LAMMPS/ASE NVE steps (0: skip)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)

    from gfm_ase import GFMCalculator
    from gfm_ase.hub import default_model
    from gfm_ase.simulation.torchsim import GFMTorchSimModel

    args.model = args.model or default_model()
    model = GFMTorchSimModel(args.model, args.head, device=args.device, dtype=args.dtype)
    md_model = GFMTorchSimModel(evaluator=model.evaluator, compute_stress=False)
    calc = GFMCalculator(args.model, args.head, device=args.device, dtype=args.dtype)
    res = {"machine": machine(model.device), "model": str(args.model), "head": args.head, "dtype": args.dtype}
    rows = []
    if args.relax:
        r = res["relax"] = bench_relax(model, calc, args.relax, args.fmax, args.max_steps)
        rows.append((f"relax {r['structures']} structures ({r['atoms']} atoms), FIRE + Frechet cell, fmax "
                     f"{r['fmax']}", "structures/s", r["torch_sim"]["per_s"], r["ase"]["per_s"]))
    if args.systems:
        r = res["nvt"] = bench_nvt(md_model, calc, args.systems, args.steps)
        rows.append((f"NVT Langevin {r['systems']} systems ({r['atoms']} atoms), {r['steps']} steps",
                     "steps x systems/s", r["torch_sim"]["steps_x_systems_per_s"], r["ase"]["steps_x_systems_per_s"]))
    print(f"machine: {res['machine']}\nmodel {res['model']}, head {args.head}, {args.dtype}, device {model.device}\n")
    print("| run | unit | torch-sim batched | ASE loop | ratio |\n|---|---|---|---|---|")
    for name, unit, a, b in rows:
        print(f"| {name} | {unit} | {a:.2f} | {b:.2f} | {a / b:.1f}x |")
    if "relax" in res:
        r = res["relax"]
        print(f"\nrelax: torch-sim {r['torch_sim']['batched_steps']} batched steps, "
              f"{r['torch_sim']['below_fmax']}/{r['structures']} with max |F| < fmax; ASE "
              f"{r['ase']['force_evaluations']} force evaluations, {r['ase']['converged']}/{r['structures']} converged")
    if args.lammps_steps:
        r = res["lammps"] = bench_lammps(args, calc, args.lammps_steps)
        print(f"\n| NVE, {r['atoms']} atoms, {r['steps']} steps | steps/s | energy drift (eV) |\n|---|---|---|\n"
              f"| LAMMPS fix external | {r['lammps']['steps_per_s']:.2f} | {r['lammps']['drift_eV']:.2e} |\n"
              f"| ASE VelocityVerlet | {r['ase']['steps_per_s']:.2f} | {r['ase']['drift_eV']:.2e} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sys.exit(main())
