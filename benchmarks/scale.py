"""Scale table: one energy + forces + stress model call on cells of 1,000 to 100,000 atoms.

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.scale       # CPU: Si and HEA, fp32 and bf16, 1 and 2 threads
    python -m benchmarks.scale --device cuda --threads 1                      # GPU
    python -m benchmarks.scale --systems si --sizes 1000 8000 --dtype float32 --threads 1 --calls 2

Systems: ``si`` = Si diamond (a = 5.43 A, ~28 neighbors in 5 A), ``hea`` = the five-element fcc high-entropy alloy
CoCrFeMnNi (a = 3.59 A, elements in random order, ~42 neighbors). Both rattled by 0.05 A; the supercell is the
near-cubic repetition closest to the asked size (the table gives the real count). Each row runs in its own
process (``OMP_NUM_THREADS`` = its thread count), so its peak memory is its own: a radius graph (vesin), one untimed
warm-up call (``--warmup``), then ``--calls`` timed calls of ``predict`` (the ASE calculator's model call) on that
graph.

Columns: calls/s and atom-steps/s (atoms x calls / s) by wall clock, CPU-time calls/s, microseconds per atom and
call, peak memory (the process's peak RSS on a CPU, ``VmHWM``, else ``ru_maxrss``; peak CUDA allocation on a GPU) and
its increase over the memory in use before the graph was built, per atom. Rows run from small to large; a row
whose memory, projected linearly from the row below it, would pass ``--max-mem-gb`` is skipped and says so (this
machine is shared). The last lines compare time and memory per atom of the largest size with those of 8,000 atoms.
Without ``--model`` the model is the randomly initialised default-size PaiNN (gfm-base's architecture).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HEA = ("Co", "Cr", "Fe", "Mn", "Ni")


def _near_cubic_reps(n_atoms: int, per_cell: int) -> tuple[int, int, int]:
    k = max(1, int(round((n_atoms / per_cell) ** (1 / 3))))
    options = [(a, b, c) for a in (k - 1, k, k + 1) for b in (a, a + 1) for c in (b, b + 1) if a >= 1]
    return min(options, key=lambda r: (abs(r[0] * r[1] * r[2] * per_cell - n_atoms), r))


def _si(n_atoms: int, rng):
    from ase.build import bulk

    unit = bulk("Si", "diamond", a=5.43, cubic=True)
    return unit.repeat(_near_cubic_reps(n_atoms, len(unit)))


def _hea(n_atoms: int, rng):
    from ase.build import bulk

    unit = bulk("Ni", "fcc", a=3.59, cubic=True)
    atoms = unit.repeat(_near_cubic_reps(n_atoms, len(unit)))
    symbols = np.resize(np.array(HEA), len(atoms))  # equiatomic
    atoms.set_chemical_symbols(rng.permutation(symbols).tolist())
    return atoms


SYSTEMS = {"si": _si, "hea": _hea}


def build_cell(system: str, n_atoms: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    atoms = SYSTEMS[system](n_atoms, rng)
    atoms.rattle(0.05, seed=seed)
    return atoms


# --- one row, in a child process ------------------------------------------------------------------------------------

def run_row(system: str, n_atoms: int, dtype: str, device_name: str, calls: int, warmup: int,
            model_name: str | None, order: str = "spatial") -> dict:
    import torch

    from benchmarks.common import current_mib, default_model, peak_mib, sync
    from gfm_ase.runtime import InferenceRuntime, load
    from gfm_ase.screening.allocator import tune_cpu_allocator

    device = torch.device(device_name)
    if device.type == "cpu":
        tune_cpu_allocator()
    model = load(model_name).model if model_name else default_model()
    # the runtime: device, precision table (bf16: float32 weights, bf16 autocast), inference mode
    # order "file": the atoms as built (slab by slab); "spatial": the runtime's default Morton order above its
    # threshold (gfm_ase.graph.locality)
    runtime = InferenceRuntime(model, model.head_names[0], device=device, dtype=dtype,
                               **({"reorder_min_atoms": None} if order == "file" else {}))
    atoms = build_cell(system, n_atoms)
    base = current_mib(device)
    t = time.perf_counter()
    batch = runtime.batch_from_atoms([atoms])
    sync(device)
    graph_s = time.perf_counter() - t
    for _ in range(warmup):
        runtime.evaluate(batch, forces=True, stress=True)
    sync(device)
    w, c = time.perf_counter(), time.process_time()
    for _ in range(calls):
        out = runtime.evaluate(batch, forces=True, stress=True)
    sync(device)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    assert bool(torch.isfinite(out["forces"]).all()) and bool(torch.isfinite(out["stress"]).all())
    peak = peak_mib(device)
    return dict(system=system, atoms=len(atoms), edges=int(batch.num_edges), dtype=dtype, device=device_name,
                threads=torch.get_num_threads(), calls=calls, wall_s=wall, cpu_s=cpu, graph_s=graph_s,
                warmup=warmup, peak_mib=peak, base_mib=base, order=order)


# --- the table ------------------------------------------------------------------------------------------------------

def _child(args, system, n, dtype, threads) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "benchmarks.scale", "--row", system, str(n), dtype, "--device", args.device,
           "--calls", str(args.calls), "--warmup", str(args.warmup), "--order", args.order]
    cmd += ["--model", args.model] if args.model else []
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.row_timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"rc={proc.returncode}: {tail}"}


def _fmt(r: dict) -> str:
    per_atom_us = r["wall_s"] / r["calls"] / r["atoms"] * 1e6
    kib_atom = (r["peak_mib"] - r["base_mib"]) * 1024 / r["atoms"]
    return (f"| {r['system']} | {r['atoms']:,} | {r['edges']:,} | {r['dtype']} | {r['threads']} | "
            f"{r['calls'] / r['wall_s']:.3f} | {r['atoms'] * r['calls'] / r['wall_s']:,.0f} | "
            f"{r['calls'] / r['cpu_s']:.3f} | {per_atom_us:,.0f} | {r['peak_mib']:,.0f} | {kib_atom:.1f} | "
            f"{r['graph_s']:.1f} |")


def _projected_mib(prev: dict, atoms_next: int) -> float:
    return prev["base_mib"] + (prev["peak_mib"] - prev["base_mib"]) * atoms_next / prev["atoms"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000, 27000, 64000, 100000])
    p.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"], choices=["float64", "float32", "bfloat16"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="OMP threads per row (CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--calls", type=int, default=1, help="timed calls per row")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed calls before them (0: the first call is timed, page faults of its memory included)")
    p.add_argument("--model", default=None, help="model name or folder (default: random default-size PaiNN)")
    p.add_argument("--max-mem-gb", type=float, default=10.0,
                   help="skip a row whose linearly projected peak memory passes this (GB)")
    p.add_argument("--row-timeout", type=float, default=1800, help="seconds before a row's process is stopped")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--order", default="spatial", choices=["spatial", "file"],
                   help="atom order in the model call: the runtime's spatial order for large cells, or as built")
    p.add_argument("--row", nargs=3, metavar=("SYSTEM", "ATOMS", "DTYPE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.row:
        system, n, dtype = args.row
        if system not in SYSTEMS:
            p.error(f"unknown system {system!r}; available: {sorted(SYSTEMS)}")
        print("ROW " + json.dumps(run_row(system, int(n), dtype, args.device, args.calls, args.warmup,
                                                args.model, args.order)), flush=True)
        return 0

    import torch

    from benchmarks.common import machine

    print(f"# scale benchmark: E+F+S model calls, {args.calls} timed per row after {args.warmup} warm-up call(s); "
          f"atom order {args.order}; machine: {machine(torch.device(args.device))}; load average at start "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"# command: {' '.join(sys.argv)}")
    print()
    print("| system | atoms | edges | dtype | threads | calls/s | atom-steps/s | CPU-time calls/s | us/atom/call | "
          "peak MiB | KiB/atom | graph s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows, notes = [], []
    for system in args.systems:
        for dtype in args.dtype:
            for threads in args.threads:
                prev = None
                for n in sorted(args.sizes):
                    atoms = len(build_cell(system, n))
                    if prev is not None and _projected_mib(prev, atoms) > args.max_mem_gb * 1024:
                        msg = (f"| {system} | {atoms:,} | | {dtype} | {threads} | skipped: projected peak "
                               f"{_projected_mib(prev, atoms) / 1024:.1f} GB > --max-mem-gb {args.max_mem_gb} | "
                               "| | | | | |")
                        print(msg, flush=True)
                        rows.append({"system": system, "atoms": atoms, "dtype": dtype, "threads": threads,
                                     "skipped": msg})
                        continue
                    r = _child(args, system, n, dtype, threads)
                    if "error" in r:
                        print(f"| {system} | {atoms:,} | | {dtype} | {threads} | failed: {r['error']} | | | | | | |",
                              flush=True)
                        rows.append({"system": system, "atoms": atoms, "dtype": dtype, "threads": threads, **r})
                        continue
                    print(_fmt(r), flush=True)
                    rows.append(r)
                    prev = r
    print()
    for system in args.systems:
        for dtype in args.dtype:
            for threads in args.threads:
                done = sorted((r for r in rows if r.get("system") == system and r.get("dtype") == dtype
                               and r.get("threads") == threads and "wall_s" in r), key=lambda r: r["atoms"])
                ref = [r for r in done if r["atoms"] >= 8000]
                if len(ref) < 2:
                    continue
                a, b = ref[0], ref[-1]

                def per_atom(r, key):
                    return (r["peak_mib"] - r["base_mib"] if key == "mem" else r[key]) / r["atoms"]

                ratio = {k: per_atom(b, k) / per_atom(a, k) for k in ("wall_s", "cpu_s", "mem")}
                notes.append(f"{system} {dtype} {threads} thread(s): {b['atoms']:,} vs {a['atoms']:,} atoms: per atom, "
                             f"wall time x{ratio['wall_s']:.2f}, CPU time x{ratio['cpu_s']:.2f}, "
                             f"memory x{ratio['mem']:.2f}")
    print("\n".join(notes))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
