"""ASE MD steps per second of gfm-ase and the peers (CHGNet 0.3.0, SevenNet-0) on the same Si cells, same run.

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.scale_md                    # 1,000 and 8,000 atoms
    python -m benchmarks.scale_md --sizes 1000 8000 64000 --device cuda --compile

Each row is its own process (peak memory of its own; the peers through ``--peer-python``, default
``.venv-teachers/bin/python``, which holds them: ``make teachers``), capped at ``--max-mem-gb`` of address space,
so a model that would need more fails cleanly and the row says so. A row: Si diamond (rattled 0.05 A, the
scale benchmark's cell), Maxwell-Boltzmann velocities at 300 K, one untimed VelocityVerlet step of 1 fs, then
``--steps`` timed steps; every calculator computes energy, forces and stress per step. gfm-ase: the randomly
initialised default-size PaiNN (gfm-base's architecture; speed does not depend on the weights) through
``GFMCalculator`` with a Verlet neighbor list (``--skin``), float32 and bf16; ``--compile`` adds compiled rows.
The peers: :mod:`gfm_ase.validation.peers` (float32 models; float64 results).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PEERS = {"chgnet": "CHGNet 0.3.0", "sevennet0": "SevenNet-0"}


def _gfm_calculator(dtype: str, device: str, skin: float, compile_: bool):
    from benchmarks.common import default_model
    from gfm_ase.calculator import GFMCalculator

    model = default_model()
    return GFMCalculator(model, head=model.head_names[0], device=device, dtype=dtype, skin=skin, compile=compile_)


def _peer_calculator(name: str, device: str):
    import warnings

    warnings.filterwarnings("ignore")
    from gfm_ase.validation import peers

    return getattr(peers, name)(device=device)


def run_row(kind: str, n_atoms: int, device: str, steps: int, skin: float) -> dict:
    """kind: "gfm:<dtype>[:compile]" or "peer:<name>"."""
    import numpy as np
    import torch
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from benchmarks.scale import build_cell
    from benchmarks.common import peak_mib, sync

    parts = kind.split(":")
    if parts[0] == "gfm":
        calc = _gfm_calculator(parts[1], device, skin, len(parts) > 2 and parts[2] == "compile")
    else:
        calc = _peer_calculator(parts[1], device)
    atoms = build_cell("si", n_atoms)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    t = time.perf_counter()
    dyn.run(1)  # warm-up: first force call (and the compile, with --compile)
    first = time.perf_counter() - t
    dev = torch.device(device)
    sync(dev)
    w, c = time.perf_counter(), time.process_time()
    dyn.run(steps)
    sync(dev)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    assert np.isfinite(atoms.get_forces()).all()
    return dict(kind=kind, atoms=len(atoms), steps=steps, wall_s=wall, cpu_s=cpu, first_s=first,
                peak_mib=peak_mib(dev), threads=torch.get_num_threads())


def _limit_memory(gb: float):
    def cap():
        limit = int(gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return cap


def _child(args, kind: str, n: int) -> dict:
    python = args.peer_python if kind.startswith("peer:") else sys.executable
    cmd = [python, "-m", "benchmarks.scale_md", "--row", kind, str(n), "--device", args.device,
           "--steps", str(args.steps), "--skin", str(args.skin)]
    cap = _limit_memory(args.max_mem_gb) if args.device == "cpu" else None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.row_timeout, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after --row-timeout {args.row_timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    tail = lines[-1] if lines else "no output"
    if "memory" in tail.lower() or "alloc" in tail.lower():
        tail = f"did not fit in --max-mem-gb {args.max_mem_gb} of address space ({tail[:120]})"
    return {"error": f"rc={proc.returncode}: {tail[:200]}"}


def _label(kind: str, skin: float) -> str:
    parts = kind.split(":")
    if parts[0] == "peer":
        return PEERS[parts[1]]
    return f"gfm-ase {parts[1]}, skin {skin} A" + (", compiled" if len(parts) > 2 else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000])
    p.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    p.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--peer-sizes", type=int, nargs="+", default=None, help="sizes for the peers (default: --sizes)")
    p.add_argument("--compile", action="store_true", help="also gfm-ase with a torch.compile'd trunk")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3, help="timed MD steps per row (after one untimed)")
    p.add_argument("--skin", type=float, default=0.5, help="gfm-ase Verlet skin (A)")
    p.add_argument("--peer-python", default=str(ROOT / ".venv-teachers" / "bin" / "python"))
    p.add_argument("--max-mem-gb", type=float, default=11.0, help="address-space cap of each row's process (CPU)")
    p.add_argument("--row-timeout", type=float, default=1800)
    p.add_argument("--json", default=None)
    p.add_argument("--row", nargs=2, metavar=("KIND", "ATOMS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.row:
        print("ROW " + json.dumps(run_row(args.row[0], int(args.row[1]), args.device, args.steps, args.skin)),
              flush=True)
        return 0
    if args.peers and not Path(args.peer_python).exists():
        p.error(f"--peer-python {args.peer_python} does not exist (make teachers builds .venv-teachers)")

    import torch

    from benchmarks.common import machine

    print(f"# MD vs peers: Si diamond, VelocityVerlet 1 fs, {args.steps} timed steps per row after 1 untimed; "
          f"machine: {machine(torch.device(args.device))}; load average at start "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"# command: {' '.join(sys.argv)}")
    print()
    print("| atoms | calculator | MD steps/s | atom-steps/s | CPU-time steps/s | first step s | peak MiB | "
          "x faster peer (wall / CPU time) |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    rows = []
    peer_sizes = args.peer_sizes or args.sizes
    for n in args.sizes:
        kinds = [f"gfm:{dt}" for dt in args.dtype] + [f"gfm:{dt}:compile" for dt in args.dtype if args.compile]
        kinds += [f"peer:{name}" for name in args.peers if n in peer_sizes]
        done = []
        for kind in kinds:
            r = _child(args, kind, n)
            r.update(kind=kind, size=n)
            done.append(r)
            rows.append(r)
            if "error" in r:
                print(f"| {n:,} | {_label(kind, args.skin)} | failed: {r['error']} | | | | | |", flush=True)
                continue
            print(f"| {r['atoms']:,} | {_label(kind, args.skin)} | {r['steps'] / r['wall_s']:.3f} | "
                  f"{r['atoms'] * r['steps'] / r['wall_s']:,.0f} | {r['steps'] / r['cpu_s']:.3f} | "
                  f"{r['first_s']:.1f} | {r['peak_mib']:,.0f} | |", flush=True)
        ok = [r for r in done if "error" not in r]
        peers = [r for r in ok if r["kind"].startswith("peer:")]
        if peers:
            best_wall = max(r["steps"] / r["wall_s"] for r in peers)
            best_cpu = max(r["steps"] / r["cpu_s"] for r in peers)
            for r in ok:
                if r["kind"].startswith("gfm:"):
                    print(f"| {r['atoms']:,} | {_label(r['kind'], args.skin)} vs the faster peer | | | | | | "
                          f"{r['steps'] / r['wall_s'] / best_wall:.1f}x / {r['steps'] / r['cpu_s'] / best_cpu:.1f}x |",
                          flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
