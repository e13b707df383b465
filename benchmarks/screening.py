"""Screening throughput: batched gfm-ase vs a one-by-one ASE loop (and CHGNet / SevenNet when installed).

Structure set (the peers' set): rattled, strained Si diamond, Cu fcc, NaCl, MgO rocksalt and corundum Al2O3
supercells of 8-64 atoms (``gfm_ase.screening.benchset``). Energy + forces + stress, like the peers' numbers
(``--energy-only`` adds energy-only rows, the default of ``gfm screen``).

    OMP_NUM_THREADS=1 python -m benchmarks.screening --n 256                      # CPU
    python -m benchmarks.screening --device cuda --n 2048 --dtype float32 bfloat16 --max-atoms 4096
    python -m benchmarks.screening --n 256 --peers chgnet sevenn --peer-n 64      # + peer models, same structures

Rows: ``end-to-end`` = from ase.Atoms to numpy results through :class:`gfm_ase.screening.Screener` (graph building
in the background thread, batching, transfer, model, results); ``model-only`` = ``predict`` on pre-built batches;
``graphs`` = radius graphs alone (one thread); ``ASE loop`` = ``GFMCalculator`` on one structure at a time.
Throughputs are best-of-``--repeat`` wall-clock (CPU time in brackets: on a shared machine it is the steadier
number). Peak memory: the peak RSS of the process during the row, each row group in a fresh process (CPU), or
the peak CUDA allocation (GPU); in brackets the increase over what was in use when the row started.
Without ``--model`` the model is a randomly initialised default-size PaiNN (128 features, 4 layers, 5 A cutoff,
~0.81M parameters): speed does not depend on training.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import current_mib, default_model, machine, peak_mib, reset_peak, sync
from gfm_ase.screening.allocator import tune_cpu_allocator
from gfm_ase.screening.benchset import benchmark_structures

# published H100 numbers from the issue (fp32, energy+forces+stress, same structure set, batches of 4096 atoms)
PEERS_H100 = {"MatGL TensorNet": 545, "SevenNet-0": 308, "MACE-MP-0 medium": 202, "ORB-v3": 88, "CHGNet": 30}


# --- timing ---------------------------------------------------------------------------------------------------------

def timed(fn, device, repeat: int):
    """Best-of-``repeat`` (wall, cpu) seconds of ``fn()`` and the peak memory over all repeats (MiB, with the
    increase over the memory in use before as a string)."""
    reset_peak(device)
    base = current_mib(device)
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        sync(device)
        w, c = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    peak = peak_mib(device)
    return best_wall, best_cpu, f"{peak:,.0f} (+{max(0.0, peak - base):,.0f})"


# --- the model ------------------------------------------------------------------------------------------------------

def load(args):
    if args.model is None:
        return default_model()
    from gfm_ase.runtime import load

    return load(args.model).model


# --- rows -------------------------------------------------------------------------------------------------------------

def bench_gfm(model, structures, args, device, dtype, compile_: bool, energy_only: bool = False):
    from gfm_ase.graph import graph_from_atoms
    from gfm_ase.screening import Screener
    from gfm_ase.screening.planner import BatchPlanner, PlannedBatch

    props = [] if energy_only else ["forces", "stress"]
    head = args.head or model.head_names[0]
    sc = Screener(model, head, device=device, dtype=dtype, properties=props, max_atoms=args.max_atoms,
                  max_edges=args.max_edges, uncertainty=False, compile=compile_)
    rows = []
    n_atoms = sum(len(a) for a in structures)
    if compile_:  # compile (and warm up) outside the timing
        t = time.perf_counter()
        sc.evaluate(structures[: min(64, len(structures))])
        print(f"  torch.compile warm-up: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    else:
        sc.evaluate(structures[:8])
    tag = f"{dtype}{' +compile' if compile_ else ''}{' energy only' if energy_only else ''}"

    w, c, mem = timed(lambda: sc.evaluate(structures), device, args.repeat)
    rows.append(dict(mode="end-to-end", dtype=tag, wall=w, cpu=c, mem=mem, n=len(structures), atoms=n_atoms))

    # model-only: the same batches, built beforehand and already on the device
    graphs = [graph_from_atoms(a, model.cutoff) for a in structures]
    planner = BatchPlanner(sc.budget)
    batches: list[PlannedBatch] = []
    for k, g in enumerate(graphs):
        batches += planner.add(g, k)
    batches += planner.flush()
    tensors = [sc.runtime.collate(b.graphs).to(sc.device) for b in batches]

    def model_only():
        for b in tensors:
            sc.runtime.evaluate(b, forces=not energy_only, stress=not energy_only)

    w, c, mem = timed(model_only, device, args.repeat)
    rows.append(dict(mode="model-only", dtype=tag, wall=w, cpu=c, mem=mem, n=len(structures), atoms=n_atoms,
                     batches=len(tensors)))
    return rows, sc.budget.describe()


def bench_graphs(model, structures, args, device):
    from gfm_ase.graph import graph_from_atoms

    w, c, mem = timed(lambda: [graph_from_atoms(a, model.cutoff) for a in structures], torch.device("cpu"), 1)
    return dict(mode="graphs only", dtype="-", wall=w, cpu=c, mem=mem, n=len(structures),
                atoms=sum(len(a) for a in structures))


def bench_ase_loop(model, structures, args, device, dtype):
    from gfm_ase.calculator import GFMCalculator

    calc = GFMCalculator(model, head=args.head or model.head_names[0], device=str(device), dtype=dtype)

    def loop():
        for a in structures:
            a = a.copy()
            a.calc = calc
            a.get_potential_energy()
            a.get_forces()
            a.get_stress()

    loop_structures = structures
    w, c, mem = timed(loop, device, 1)
    return dict(mode="ASE loop (1 by 1)", dtype=dtype, wall=w, cpu=c, mem=mem, n=len(loop_structures),
                atoms=sum(len(a) for a in loop_structures))


def bench_peer(name, structures, device):
    """A peer model through its ASE calculator, one structure at a time (energy, forces, stress)."""
    import warnings

    warnings.filterwarnings("ignore")
    dev = "cuda" if device.type == "cuda" else "cpu"
    if name == "chgnet":  # the peers as the validation suites load them (validation/peers.py)
        from gfm_ase.validation.peers import chgnet

        calc = chgnet(device=dev)
        label = "CHGNet 0.3.0 (ASE loop)"
    elif name == "sevenn":
        from gfm_ase.validation.peers import sevennet0

        calc = sevennet0(device=dev)
        label = "SevenNet-0 (ASE loop)"
    elif name == "tensornet":
        calc = tensornet_calculator()
        label = "MatGL TensorNet, MatPES-PBE architecture, random weights (ASE loop)"
    else:
        raise ValueError(name)

    def loop():
        for a in structures:
            a = a.copy()
            a.calc = calc
            a.get_potential_energy()
            a.get_forces()
            a.get_stress()

    a = structures[0].copy()
    a.calc = calc
    a.get_potential_energy()  # warm-up
    w, c, mem = timed(loop, device, 1)
    rows = [dict(mode=label, dtype="float32", wall=w, cpu=c, mem=mem, n=len(structures),
                 atoms=sum(len(a) for a in structures))]
    if name == "chgnet":  # CHGNet also has a batched API
        from pymatgen.io.ase import AseAtomsAdaptor

        model = calc.inner.model
        structs = [AseAtomsAdaptor.get_structure(a) for a in structures]
        w, c, mem = timed(lambda: model.predict_structure(structs, task="efs", batch_size=16), device, 1)
        rows.append(dict(mode="CHGNet 0.3.0 (batched, 16)", dtype="float32", wall=w, cpu=c, mem=mem,
                         n=len(structures), atoms=sum(len(a) for a in structures)))
    if name == "tensornet":  # model-only on pre-built batches of 16 structures (matgl's own graphs and collation)
        from torch_geometric.data import Batch

        conv, potential = calc._atoms2graph, calc.potential
        built = [conv.get_graph(a) for a in structures]
        batches = []
        for k in range(0, len(built), 16):
            chunk = built[k:k + 16]
            batches.append((Batch.from_data_list([g for g, _, _ in chunk]),
                            torch.cat([torch.as_tensor(lat).reshape(-1, 3, 3) for _, lat, _ in chunk]),
                            torch.stack([torch.as_tensor(st) for _, _, st in chunk])))
        potential(*batches[0])  # warm-up
        w, c, mem = timed(lambda: [potential(*b) for b in batches], device, 1)
        rows.append(dict(mode="MatGL TensorNet, random weights (model-only, batches of 16)", dtype="float32",
                         wall=w, cpu=c, mem=mem, n=len(structures), atoms=sum(len(a) for a in structures)))
    return rows


# TensorNet-MatPES-PBE-v2025.1-PES, the fastest peer: its hyperparameters as published in matgl's
# pretrained_models/TensorNet-MatPES-PBE-v2025.1-PES/model.json (units 128, 2 blocks, 32 spherical-Bessel radial
# functions, max_n = max_l = 3, 5 A cutoff, smooth cutoff, swish). The weights cannot be downloaded on the machines
# without internet access, so the same architecture is built with random weights: its speed does not depend on them.
TENSORNET_MATPES_PBE = dict(max_n=3, max_l=3, rbf_type="SphericalBessel", use_smooth=True, activation_type="swish",
                            units=128, nblocks=2, num_rbf=32, cutoff=5.0, is_intensive=False, ntargets=1)


def tensornet_calculator():
    os.environ.setdefault("MATGL_BACKEND", "PYG")
    from ase.data import chemical_symbols
    from matgl.apps.pes import Potential
    from matgl.ext.ase import PESCalculator
    from matgl.models import TensorNet

    torch.manual_seed(0)
    model = TensorNet(element_types=tuple(chemical_symbols[1:95]), **TENSORNET_MATPES_PBE)
    return PESCalculator(Potential(model=model, calc_forces=True, calc_stresses=True), stress_unit="eV/A3")


def precision_table(model, paths, args, device):
    """Speed and the change of energies/forces against float64 on real structures (e.g. mlearn stores)."""
    from gfm_ase.screening import Screener
    from gfm_ase.screening.readers import iter_units, open_sources

    items = [it for u in iter_units(open_sources(paths)) for it in u.load()]
    n_atoms = sum(len(it.numbers) for it in items)
    head = args.head or model.head_names[0]
    res, rates = {}, {}
    for dt in ("float64", "float32", "bfloat16"):
        sc = Screener(model, head, device=device, dtype=dt, properties=["forces", "energies"], uncertainty=False,
                      max_atoms=args.max_atoms, max_edges=args.max_edges)
        sc.evaluate(items[:2])
        w, c, _ = timed(lambda: res.__setitem__(dt, sc.evaluate(items, ids=[it.id for it in items])), device,
                        args.repeat)
        rates[dt] = (w, c)
    ref = res["float64"]
    rms_f = np.sqrt((ref["forces"] ** 2).mean())
    rms_ea = np.sqrt((ref["energies"] ** 2).mean())
    lines = [f"precision on {len(items)} structures / {n_atoms} atoms from {', '.join(Path(p).name for p in paths)} "
             f"(RMS force {rms_f:.3g} eV/A, RMS atomic energy {rms_ea:.3g} eV in float64)", "",
             "| dtype | structures/s | (CPU-time) | max abs dE/atom (meV) | MAE dE/atom (meV) | RMS dF (meV/A) | "
             "max abs dF (meV/A) | RMS dF / RMS F |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for dt in ("float64", "float32", "bfloat16"):
        r = res[dt]
        de = np.abs(r["energy_per_atom"] - ref["energy_per_atom"]) * 1e3
        df = (r["forces"] - ref["forces"]) * 1e3
        w, c = rates[dt]
        lines.append(f"| {dt} | {len(items) / w:,.1f} | ({len(items) / c:,.1f}) | {de.max():.3g} | {de.mean():.3g} | "
                     f"{np.sqrt((df ** 2).mean()):.3g} | {np.abs(df).max():.3g} | "
                     f"{np.sqrt((df ** 2).mean()) / 1e3 / rms_f:.2%} |")
    return "\n".join(lines)


def run_job(job: str, model, structures, args, device) -> dict:
    kind, _, rest = job.partition(":")
    if kind == "gfm":
        dtype, _, flag = rest.partition(":")
        rows, budget = bench_gfm(model, structures, args, device, dtype, flag == "compile", flag == "energy")
        return {"rows": rows, "budget": budget}
    if kind == "graphs":
        return {"rows": [bench_graphs(model, structures, args, device)]}
    if kind == "loop":
        return {"rows": [bench_ase_loop(model, structures[: args.loop_n or args.n], args, device, "float32")]}
    if kind == "peer":
        try:
            return {"rows": bench_peer(rest, structures[: args.peer_n], device)}
        except ImportError as exc:
            return {"skipped": f"not installed ({exc})"}
    raise ValueError(job)


# --- report ---------------------------------------------------------------------------------------------------------

def table(rows, ref=None, ref_name=""):
    lines = ["| mode | dtype | structures | structures/s | atoms/s | CPU-time structures/s | peak MiB (+ during row) |"
             + (f" x {ref_name} (wall) | x {ref_name} (CPU time) |" if ref else ""),
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if ref else "")]
    for r in rows:
        rate, cpu_rate = r["n"] / r["wall"], r["n"] / r["cpu"]
        line = (f"| {r['mode']} | {r['dtype']} | {r['n']} | {rate:,.1f} | {r['atoms'] / r['wall']:,.0f} | "
                f"{cpu_rate:,.1f} | {r['mem']} |")
        if ref:
            line += f" {rate / (ref['n'] / ref['wall']):.2f} | {cpu_rate / (ref['n'] / ref['cpu']):.2f} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2048, help="structures (the peers used 2048)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", nargs="+", default=["float32"], choices=["float64", "float32", "bfloat16"])
    p.add_argument("--model", default=None, help="model to time (default: random default-size PaiNN)")
    p.add_argument("--head", default=None)
    p.add_argument("--max-atoms", type=int, default=None, help="batch budget (default: the engine's for the device)")
    p.add_argument("--max-edges", type=int, default=None)
    p.add_argument("--compile", action="store_true",
                   help="also time with torch.compile, in each float32/bfloat16 dtype of --dtype")
    p.add_argument("--no-eager", action="store_true",
                   help="skip the eager gfm-ase rows (with --compile: compiled only)")
    p.add_argument("--energy-only", action="store_true",
                   help="also time energy-only screening (float32; what `gfm screen` does by default)")
    p.add_argument("--loop-n", type=int, default=None,
                   help="structures for the one-by-one ASE loop (default: --n; 0: no loop)")
    p.add_argument("--peers", nargs="*", default=[], choices=["chgnet", "sevenn", "tensornet"])
    p.add_argument("--peer-python", default=None,
                   help="interpreter for the peer rows (a venv holding the peers and gfm-ase, when their "
                        "dependencies cannot share the main one: matgl pulls torch-geometric and lightning)")
    p.add_argument("--peer-n", type=int, default=64, help="structures for each peer model")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or torch's)")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    p.add_argument("--in-process", action="store_true",
                   help="run all rows in this process (default: a fresh process per row group, for clean peaks)")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    p.add_argument("--job-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--precision-inputs", nargs="+", default=None, metavar="FILE",
                   help="real structures (any screening input) for the float64/float32/bfloat16 accuracy table; "
                        "with this option only that table is made")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    model = load(args)
    header = f"model {model.config.name} ({model.num_parameters():,} parameters, cutoff {model.cutoff} A)"
    if args.precision_inputs:
        print(f"# precision benchmark, {header}")
        print(f"# machine: {machine(device)}")
        print(f"# command: {' '.join(sys.argv)}")
        print()
        print(precision_table(model, args.precision_inputs, args, device))
        return 0
    structures = benchmark_structures(args.n, seed=args.seed)
    n_atoms = sum(len(a) for a in structures)
    jobs = [] if args.no_eager else [f"gfm:{dt}" for dt in args.dtype]
    jobs += [f"gfm:{dt}:compile" for dt in args.dtype if args.compile and dt in ("float32", "bfloat16")]
    jobs += ["gfm:float32:energy"] if args.energy_only else []
    jobs += ["graphs"] + (["loop"] if args.loop_n != 0 else []) + [f"peer:{name}" for name in args.peers]
    if args.job:  # one row group in this (child) process
        Path(args.job_out).write_text(json.dumps(run_job(args.job, model, structures, args, device)))
        return 0
    print(f"# screening benchmark: {args.n} structures, {n_atoms} atoms ({n_atoms / args.n:.1f}/structure), {header}")
    print(f"# machine: {machine(device)}")
    print(f"# command: {' '.join(sys.argv)}")
    rows, peer_rows, budgets = [], [], []
    for job in jobs:
        if args.in_process:
            res = run_job(job, model, structures, args, device)
        else:  # a fresh process per row group: clean peak memory, no allocator state carried over
            import subprocess
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "job.json"
                python = args.peer_python if job.startswith("peer:") and args.peer_python else sys.executable
                cmd = [python, "-m", "benchmarks.screening", *(argv if argv is not None else sys.argv[1:]),
                       "--job", job, "--job-out", str(out)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"# {job} failed:\n{done.stderr[-2000:]}")
                    continue
                res = json.loads(out.read_text())
        if res.get("skipped"):
            print(f"# {job}: {res['skipped']}")
            continue
        (peer_rows if job.startswith("peer:") else rows).extend(res["rows"])
        if res.get("budget"):
            budgets.append(f"{job}: {res['budget']}")
    for b in budgets:
        print(f"# batch budget {b}")
    loop = [r for r in rows if r["mode"].startswith("ASE loop")]
    print()
    if loop:
        print(table(rows + peer_rows, loop[0], "ASE loop"))
    else:
        print(table(rows + peer_rows))
    # like for like with the peers (energy + forces + stress): energy-only rows are left out of the ratios
    e2e = [r for r in rows if r["mode"] == "end-to-end" and "energy only" not in r["dtype"]]
    if peer_rows:
        print()
        print("| gfm-ase end-to-end | peer (same structures, same machine) | ratio (wall) | ratio (CPU time) |")
        print("|---|---|---:|---:|")
        for r in e2e:
            for pr in peer_rows:
                print(f"| {r['dtype']} ({r['n'] / r['wall']:,.1f}/s) | {pr['mode']} ({pr['n'] / pr['wall']:,.2f}/s) | "
                      f"{(r['n'] / r['wall']) / (pr['n'] / pr['wall']):,.1f} | "
                      f"{(r['n'] / r['cpu']) / (pr['n'] / pr['cpu']):,.1f} |")
    if device.type == "cuda":
        print()
        print("| gfm-ase end-to-end | published peer on H100 | ratio |")
        print("|---|---|---:|")
        for r in e2e:
            rate = r["n"] / r["wall"]
            for name, pr in PEERS_H100.items():
                print(f"| {r['dtype']} ({rate:,.0f}/s) | {name} ({pr}/s) | {rate / pr:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows + peer_rows, "machine": machine(device),
                                               "argv": sys.argv}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
