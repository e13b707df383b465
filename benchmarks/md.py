"""MD throughput: model calls per second on 1,000- and 8,000-atom Si diamond cells.

    OMP_NUM_THREADS=1 python -m benchmarks.md                       # CPU, float32
    python -m benchmarks.md --device cuda --dtype float32 bfloat16 --steps 50
    python -m benchmarks.md --peers chgnet                          # + CHGNet's ASE calculator on the same cells

Rows: ``model-only`` = ``predict`` (energy + forces, and a row with stress) on a fixed graph, i.e. what one MD step
costs the model; ``MD step`` = an ASE VelocityVerlet step with ``GFMCalculator`` (new neighbor list every step,
energy, forces and stress, Python overhead included), and the same with a Verlet skin (``--skin``, the list reused
until an atom moved skin/2); ``neighbor list`` = the graph alone per call, fresh (vesin + transfer) vs Verlet,
over 50 steps of 0.01 A random moves per atom (about one fs of 300 K Si). Throughput = calls/s and atom-steps/s
(atoms x calls / s).
Peak memory: peak CUDA allocation (GPU) or the process's peak RSS so far (CPU; rows run small to large).
Without ``--model`` the model is a randomly initialised default-size PaiNN (~0.81M parameters).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from benchmarks.common import default_model, machine, peak_mib, reset_peak, sync
from gfm_ase.screening.allocator import tune_cpu_allocator

CHGNET_H100_8K = 18.8  # calls/s, model only, 8,000-atom Si, from the issue


def si_cell(n_atoms: int, seed: int = 0):
    from ase.build import bulk

    reps = round((n_atoms / 8) ** (1 / 3))
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((reps, reps, reps))
    atoms.rattle(0.05, seed=seed)
    return atoms


def bench_model_only(model, atoms, device, dtype, steps, stress, compile_=False):
    from gfm_ase.runtime import InferenceRuntime

    rt = InferenceRuntime(model, model.head_names[0], device=device, dtype=dtype, compile=compile_)
    batch = rt.batch_from_atoms([atoms])
    rt.evaluate(batch, forces=True, stress=stress)  # warm-up
    reset_peak(device)
    sync(device)
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        rt.evaluate(batch, forces=True, stress=stress)
    sync(device)
    return time.perf_counter() - w, time.process_time() - c, f"{peak_mib(device):,.0f}", batch.num_edges


def bench_md(calc, atoms, device, steps):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    a = atoms.copy()
    try:
        from ase.md.velocitydistribution import thermalize_momenta

        thermalize_momenta(a, temperature_K=300, rng=np.random.default_rng(0))
    except ImportError:  # older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(a, temperature_K=300, rng=np.random.default_rng(0))
    a.calc = calc
    dyn = VelocityVerlet(a, timestep=1.0 * units.fs)
    dyn.run(1)  # warm-up (first force call)
    reset_peak(device)
    sync(device)
    w, c = time.perf_counter(), time.process_time()
    dyn.run(steps)
    sync(device)
    return time.perf_counter() - w, time.process_time() - c, f"{peak_mib(device):,.0f}"


def bench_neighbors(atoms, cutoff, device, skin, steps=50):
    """Seconds per call for the graph alone: fresh build + transfer vs the Verlet list, same moves."""
    from gfm_ase.graph import VerletGraph, collate, graph_from_atoms

    rng = np.random.default_rng(0)
    moves = [rng.normal(0, 0.01 / np.sqrt(3), atoms.positions.shape) for _ in range(steps)]

    def run(make):
        a = atoms.copy()
        sync(device)
        w = time.perf_counter()
        for d in moves:
            a.positions += d
            b = make(a)
        sync(device)
        return (time.perf_counter() - w) / steps, b

    t_fresh, _ = run(lambda a: collate([graph_from_atoms(a, cutoff)], dtype=torch.float32).to(device))
    vg = VerletGraph(cutoff, skin, device=device, dtype=torch.float32)
    t_verlet, _ = run(vg.batch)
    return t_fresh, t_verlet, vg.builds


def row(n_atoms: int, edges, mode: str, dtype: str, steps: int, wall: float, cpu: float, mem: str) -> str:
    """One table row: calls/s, atom-steps/s, (CPU-time calls/s), peak memory."""
    return (f"| Si{n_atoms} | {edges} | {mode} | {dtype} | {steps / wall:,.2f} | {n_atoms * steps / wall:,.0f} | "
            f"({steps / cpu:,.2f}) | {mem} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", nargs="+", default=["float32"], choices=["float64", "float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=3, help="calls / MD steps timed per row")
    p.add_argument("--model", default=None)
    p.add_argument("--compile", action="store_true", help="also time the model with a torch.compile'd trunk")
    p.add_argument("--skin", type=float, default=0.5, help="Verlet skin (A) of the extra MD-step row; 0: no row")
    p.add_argument("--peers", nargs="*", default=[], choices=["chgnet"])
    p.add_argument("--peer-sizes", type=int, nargs="+", default=[1000])
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    if args.model:
        from gfm_ase.runtime import load

        model = load(args.model).model
    else:
        model = default_model()
    print(f"# MD benchmark: Si diamond cells {args.sizes}, {args.steps} calls per row, model {model.config.name} "
          f"({model.num_parameters():,} parameters, cutoff {model.cutoff} A)")
    print(f"# machine: {machine(device)}")
    print(f"# command: {' '.join(sys.argv)}")
    print()
    print("| cell | edges | mode | dtype | calls/s | atom-steps/s | (CPU-time calls/s) | peak MiB |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    rates = {}
    for n in args.sizes:
        atoms = si_cell(n)
        for dt in args.dtype:
            for stress in (False, True):
                w, c, mem, edges = bench_model_only(model, atoms, device, dt, args.steps, stress)
                mode = "model-only E+F" + ("+S" if stress else "")
                rates[(len(atoms), dt, stress)] = args.steps / w
                print(row(len(atoms), f"{edges:,}", mode, dt, args.steps, w, c, mem), flush=True)
            if args.compile and dt == "float32":
                bench_model_only(model, atoms, device, dt, 1, True, compile_=True)  # compile outside the timing
                w, c, mem, edges = bench_model_only(model, atoms, device, dt, args.steps, True, compile_=True)
                print(row(len(atoms), f"{edges:,}", "model-only E+F+S, compiled", dt, args.steps, w, c, mem),
                      flush=True)
            from gfm_ase.calculator import GFMCalculator

            calc = GFMCalculator(model, head=model.head_names[0], device=str(device), dtype=dt)
            w, c, mem = bench_md(calc, atoms, device, args.steps)
            rates[(len(atoms), dt, "md")] = args.steps / w
            print(row(len(atoms), f"{edges:,}", "MD step (ASE, E+F+S)", dt, args.steps, w, c, mem), flush=True)
            if args.skin > 0:
                calc = GFMCalculator(model, head=model.head_names[0], device=str(device), dtype=dt, skin=args.skin)
                w, c, mem = bench_md(calc, atoms, device, args.steps)
                mode = (f"MD step (ASE, E+F+S, skin {args.skin} A, {calc.verlet.builds} builds / "
                        f"{calc.verlet.calls} calls)")
                print(row(len(atoms), f"{edges:,}", mode, dt, args.steps, w, c, mem), flush=True)
            if args.compile and dt == "float32":  # the production MD setting: compiled trunk (+ Verlet list)
                calc = GFMCalculator(model, head=model.head_names[0], device=str(device), dtype=dt, skin=args.skin,
                                     compile=True)
                w, c, mem = bench_md(calc, atoms, device, args.steps)  # its warm-up step compiles
                mode = "MD step (ASE, E+F+S, compile=True" + (f", skin {args.skin} A)" if args.skin > 0 else ")")
                print(row(len(atoms), f"{edges:,}", mode, dt, args.steps, w, c, mem), flush=True)
        if args.skin > 0:
            fresh, verlet, builds = bench_neighbors(atoms, model.cutoff, device, args.skin)
            print(f"| Si{len(atoms)} | {edges:,} | neighbor list per call: fresh {fresh * 1e3:.1f} ms, Verlet "
                  f"{verlet * 1e3:.2f} ms ({builds} builds / 50 calls) | float32 | | | | |", flush=True)
        for name in args.peers:
            if len(atoms) not in args.peer_sizes:
                continue
            import warnings

            warnings.filterwarnings("ignore")
            from chgnet.model import CHGNet, CHGNetCalculator

            calc = CHGNetCalculator(model=CHGNet.load(verbose=False), use_device="cuda" if device.type == "cuda"
                                    else "cpu")
            w, c, mem = bench_md(calc, atoms, device, args.steps)
            rate = args.steps / w
            ours = rates.get((len(atoms), "float32", "md"))
            print(row(len(atoms), "-", "CHGNet 0.3.0 MD step (ASE)", "float32", args.steps, w, c, mem)
                  + (f" gfm-ase MD step (float32) is {ours / rate:.1f}x" if ours else ""), flush=True)
    if device.type == "cuda" and (8000, "float32", False) in rates:
        print(f"\n8,000-atom Si, model only, float32: {rates[(8000, 'float32', False)]:.1f} calls/s = "
              f"{rates[(8000, 'float32', False)] / CHGNET_H100_8K:.1f}x CHGNet's published {CHGNET_H100_8K} calls/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
