"""Single-structure latency of GFMCalculator (energy + forces + stress), the cost of one MD or relaxation step.

    OMP_NUM_THREADS=1 python -m benchmarks.latency [--atoms 64] [--dtype float32] [--device cpu]

Uses a default-size PaiNN (128 features, 4 layers, 32 radial functions, 5 A cutoff; untrained weights: speed does not
depend on the values) on a rattled Si diamond supercell; graph building is included, as in real use.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from ase.build import bulk

from gfm_ase.calculator import GFMCalculator
from gfm_ase.config import HeadConfig, ModelConfig
from gfm_ase.model import GFMModel


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--atoms", type=int, nargs="+", default=[8, 64, 216, 512])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = GFMModel(ModelConfig(name="default-size", heads=[HeadConfig(name="omat")]))
    calc = GFMCalculator(model=model, head="omat", device=args.device, dtype=args.dtype)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, {model.num_parameters():,} parameters, {args.dtype}, {args.device}")
    print(f"{'atoms':>6} {'edges':>8} {'latency ms':>11} {'+-':>6} {'atom-steps/s':>13}")
    for n in args.atoms:
        reps = max(1, round((n / 8) ** (1 / 3)))
        atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (reps, reps, reps)
        atoms.rattle(0.05, seed=0)
        atoms.calc = calc
        atoms.get_forces()  # warm-up
        times = []
        for k in range(args.repeats):
            atoms.positions[0, 0] += 1e-4  # invalidate ASE's cache
            t = time.perf_counter()
            atoms.get_potential_energy()
            atoms.get_forces()
            atoms.get_stress()
            times.append(time.perf_counter() - t)
        t = np.array(times[2:]) * 1000
        from gfm_ase.graph import graph_from_atoms

        ne = graph_from_atoms(atoms, model.cutoff).edge_index.shape[1]
        print(f"{len(atoms):6d} {ne:8d} {np.median(t):11.1f} {t.std():6.1f} {len(atoms) / np.median(t) * 1000:13.0f}")


if __name__ == "__main__":
    main()
