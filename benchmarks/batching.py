"""How much can batching gain over a one-by-one loop on this machine? An upper bound, measured.

    OMP_NUM_THREADS=1 python -m benchmarks.batching [--n 128] [--dtype float32] [--sizes 1 64 128 256 512 1024 2048]

For the screening benchmark's structures (8-64-atom crystals, energy + forces + stress) it prints:

1. the one-by-one ASE loop (``GFMCalculator``) per structure, the model alone on the same single-structure graphs,
   and their difference ``o``: the per-call overhead (graph, tensors, Python, ASE) that batching can remove;
2. the matrix-product FLOPs of one structure (``torch.utils.flop_counter``) and this machine's measured GEMM rate,
   hence a lower bound ``c_min`` on the model time per structure for *any* implementation of the model;
3. the bound ``batched / loop <= (o + c_min) / c_min`` (batching shares nothing between structures but the overhead);
4. model-only throughput against the batch size (atoms per batch), to show whether larger batches run faster.

Default model: the random default-size PaiNN of :func:`benchmarks.common.default_model` (0.81M parameters).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import default_model, machine
from gfm_ase.calculator import GFMCalculator
from gfm_ase.graph import collate, graph_from_atoms
from gfm_ase.runtime import InferenceRuntime
from gfm_ase.screening.allocator import tune_cpu_allocator
from gfm_ase.screening.benchset import benchmark_structures
from gfm_ase.screening.budget import Budget, MemoryModel
from gfm_ase.screening.planner import BatchPlanner


def best_ms_per_item(fn, n_items: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n_items * 1e3


def gemm_rate(dtype: torch.dtype, n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of a large matrix product on this machine (what the model's products can reach at best)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return repeat * 2 * n**3 / (time.perf_counter() - t)


def planned_batches(graphs, max_atoms: int) -> list:
    """The screening engine's planner with an atom budget only (a structure above it runs alone)."""
    budget = Budget(max_atoms=max_atoms, max_edges=2**62, memory_limit=float("inf"), memory=MemoryModel(0, 0, 0))
    planner = BatchPlanner(budget)
    planned = [b for k, g in enumerate(graphs) for b in planner.add(g, k)] + planner.flush()
    return [collate(b.graphs, dtype=torch.float32) for b in planned]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=128, help="structures")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--sizes", type=int, nargs="*", default=[1, 64, 128, 256, 512, 1024, 2048],
                   help="batch budgets (atoms) for the sweep; 1 = one structure per batch")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    tune_cpu_allocator()
    model = default_model()
    structures = benchmark_structures(args.n, seed=0)
    graphs = [graph_from_atoms(a, model.cutoff) for a in structures]
    n = len(structures)

    runtime = InferenceRuntime(model, "pbe", device="cpu", dtype=args.dtype)

    def run(batches):
        for b in batches:
            runtime.evaluate(b, forces=True, stress=True)

    calc = GFMCalculator(model=model, head="pbe", dtype=args.dtype, device="cpu")

    def loop():
        for a in structures:
            a = a.copy()
            a.calc = calc
            a.get_potential_energy(), a.get_forces(), a.get_stress()

    singles = planned_batches(graphs, 1)  # one structure per batch, as the loop sees them
    counter = FlopCounterMode(display=False)
    with counter:
        run(singles)
    flops = counter.get_total_flops() / n
    loop(), run(singles)  # warm up
    t_loop = best_ms_per_item(loop, n, args.repeat)
    t_model = best_ms_per_item(lambda: run(singles), n, args.repeat)
    rate = gemm_rate(getattr(torch, args.dtype))
    overhead = max(t_loop - t_model, 0.0)
    c_min = flops / rate * 1e3
    print(f"# batching bound, {args.dtype}, {n} structures ({sum(len(a) for a in structures) / n:.1f} atoms, "
          f"{sum(g.edge_index.shape[1] for g in graphs) / n:.0f} edges each), energy + forces + stress")
    print(f"# machine: {machine(torch.device('cpu'))}")
    print(f"# command: {' '.join(sys.argv)}")
    print()
    print("| quantity | value |")
    print("|---|---:|")
    print(f"| ASE loop, per structure | {t_loop:.1f} ms |")
    print(f"| model alone on the same single-structure graphs | {t_model:.1f} ms |")
    print(f"| per-call overhead o (what batching can remove) | {overhead:.1f} ms |")
    print(f"| matrix-product work per structure | {flops / 1e6:.0f} MFLOP |")
    print(f"| {args.dtype} GEMM rate of this machine (2048^3) | {rate / 1e9:.0f} GFLOP/s |")
    print(f"| lower bound on model time c_min (all FLOPs at the GEMM rate) | {c_min:.1f} ms |")
    print(f"| upper bound on batched / loop, (o + c_min) / c_min | {(overhead + c_min) / c_min:.2f}x |")
    print(f"| batched / loop if batching made the model free of overhead only, t_loop / t_model | "
          f"{t_loop / t_model:.2f}x |")
    if args.sizes:
        print()
        print("| batch budget (atoms) | batches | edges per batch | model-only structures/s |")
        print("|---:|---:|---:|---:|")
        for size in args.sizes:
            batches = planned_batches(graphs, size)
            run(batches)
            ms = best_ms_per_item(lambda: run(batches), n, args.repeat)
            edges = sum(b.edge_index.shape[1] for b in batches) / len(batches)
            print(f"| {size} | {len(batches)} | {edges:,.0f} | {1e3 / ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
