"""Scale-out of `gfm screen`: the same input screened by 1, 2, ... ranks (disjoint shards, rank 0 merges).

    OMP_NUM_THREADS=1 python -m benchmarks.screen_scaling --n 1024 --ranks 1 2

Each rank is a separate `python -m gfm_ase.cli screen ... --rank r --world-size W` process (what torchrun, mpiexec
or srun start; the ranks need no communication backend, see gfm_ase/screening/shards.py). Input: the screening
benchmark's rattled 8-64-atom crystals written to one extxyz file; model: the random default-size PaiNN of
benchmarks.common.default_model (saved to a temporary model folder) unless --model.
Wall time = from starting the ranks until rank 0 has written OUT; the output is checked to hold every input id once.
Speed-up = rate(W) / rate(1); efficiency = speed-up / W. On a machine with fewer cores than ranks x 2 threads
(each rank has a torch thread and a graph-building thread) the ranks compete for cores: say how many cores.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from ase.io import write

from benchmarks.common import default_model
from gfm_ase.screening.benchset import benchmark_structures


def screen(inp: Path, out: Path, world: int, args) -> float:
    cmd = [sys.executable, "-m", "gfm_ase.cli", "screen", str(inp), "-o", str(out), "--head", args.head,
           "--dtype", args.dtype, "--quiet", "--model", str(args.model)]
    cmd += ["--properties", *args.properties] if args.properties else []
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd + ["--rank", str(r), "--world-size", str(world)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in range(world)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a rank failed (rc {p.returncode}): {err[-2000:]}")
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", default=None)
    p.add_argument("--head", default=None, help="head (default: pbe for the random model)")
    p.add_argument("--dtype", default="float32", choices=["float64", "float32", "bfloat16"])
    p.add_argument("--properties", nargs="*", default=[], help="besides energy (default: energy only, like gfm screen)")
    args = p.parse_args(argv)
    structures = benchmark_structures(args.n, seed=0)
    print(f"# gfm screen scale-out: {len(structures)} structures ({sum(map(len, structures)) / len(structures):.1f} "
          f"atoms each), {args.dtype}, properties energy {' '.join(args.properties)}; {os.cpu_count()} logical CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# command: {' '.join(sys.argv)}")
    print()
    print("| ranks | wall s | structures/s | speed-up | efficiency |")
    print("|---:|---:|---:|---:|---:|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from gfm_ase.checkpoint import save_model

            args.model, args.head = save_model(default_model(), Path(tmp) / "model"), args.head or "pbe"
        inp = Path(tmp) / "structures.extxyz"
        write(inp, structures)
        for world in args.ranks:
            out = Path(tmp) / f"out-w{world}.h5"
            wall = screen(inp, out, world, args)
            with h5py.File(out, "r") as f:
                ids = np.asarray(f["id"][:])
            if len(ids) != len(structures) or len(set(ids.tolist())) != len(structures):
                raise RuntimeError(f"{world} ranks: {len(ids)} rows, {len(set(ids.tolist()))} unique ids, "
                                   f"expected {len(structures)}")
            rate = len(structures) / wall
            base = base or rate
            print(f"| {world} | {wall:.1f} | {rate:.1f} | {rate / base:.2f} | {rate / base / world:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
