"""Training throughput of the pretraining loop: structures/s and atoms/s, 1 vs 2 processes, per precision.

    python -m benchmarks.training                       # CPU, gloo, float32/bfloat16/float64, 1 and 2 processes
    python -m benchmarks.training --device cuda --nprocs 1 --precisions float32 bfloat16

Each configuration runs the real Trainer (example-tiny model: PaiNN 32 features, 2 layers, cutoff 4 A; energy +
forces + stress loss, i.e. double backward) on the tiny EMT corpus (generated into a temporary folder), under
torchrun for more than one process. Warm-up steps are not timed. Strong scaling: the global batch is the same for
1 and 2 processes (each of 2 ranks does half); efficiency = throughput(2) / (2 * throughput(1)). The load average
is printed with the table: on a shared machine, other processes take cores and depress the multi-process numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "pretraining" / "configs" / "example-tiny.yaml"
DATASETS = ("cu_bulk", "au_bulk", "cuau_alloy", "cu_lj")


def worker(args) -> None:
    import collections

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from gfm_ase.pretraining.config import load_config
    from gfm_ase.pretraining.trainer import Trainer

    overrides = {f"datasets.{i}.path": str(Path(args.data) / f"{n}.h5") for i, n in enumerate(DATASETS)}
    overrides.update({"precision": args.precision, "device": args.device, "sampling.batch_size": args.batch_size,
                      "sampling.steps_per_epoch": args.warmup + args.steps, "sampling.epochs": 1,
                      "logging.progress": False, "optim.warmup_steps": 0})
    if args.model_size == "default":  # the default-size trunk (PaiNN 128 x 4, 32 radial functions, 5 A cutoff)
        overrides.update({"model.trunk.options.num_features": 128, "model.trunk.options.num_layers": 4,
                          "model.trunk.options.num_rbf": 32, "model.trunk.options.cutoff": 5.0})
    tr = Trainer(load_config(EXAMPLE, overrides), Path(args.out))
    states = collections.deque()
    n_struct = n_atoms = 0
    t0 = None
    for k, batch in enumerate(tr._loader(args.warmup + args.steps, states)):
        if k == args.warmup:
            tr.env.barrier()
            if tr.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            c0 = time.process_time()
        row = tr.train_step(batch)
        if k >= args.warmup:
            n_struct += row["structures"]
            n_atoms += row["atoms"]
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    cpu = torch.tensor([time.process_time() - c0], dtype=torch.float64)
    tr.env.barrier()
    dt = time.perf_counter() - t0
    cpu = float(tr._allreduce(cpu)[0])  # CPU seconds of all ranks together
    if tr.env.is_main:
        Path(args.result).write_text(json.dumps({
            "world_size": tr.env.world_size, "precision": args.precision, "device": str(tr.device),
            "structures_per_s": n_struct / dt, "atoms_per_s": n_atoms / dt, "seconds": dt, "cpu_seconds": cpu,
            "structures_per_cpu_s": n_struct / cpu, "steps": args.steps,
            "structures": n_struct, "atoms": n_atoms}))
    tr.env.shutdown()


def run_one(data: Path, nproc: int, precision: str, args, tmp: Path) -> dict:
    out = tmp / f"out-{nproc}-{precision}"
    result = tmp / f"result-{nproc}-{precision}.json"
    wargs = ["-m", "benchmarks.training", "--worker", "--data", str(data), "--out", str(out), "--result",
             str(result), "--precision", precision, "--device", args.device, "--steps", str(args.steps),
             "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
             "--model-size", args.model_size]
    if nproc == 1:
        cmd = [sys.executable, *wargs]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *wargs]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)  # the worker: -m benchmarks.training
    if res.returncode != 0:
        raise RuntimeError(f"benchmark run failed ({' '.join(cmd)}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return json.loads(result.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--nprocs", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    p.add_argument("--precisions", nargs="+", default=["float32", "bfloat16", "float64"])
    p.add_argument("--steps", type=int, default=40, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=16, help="global structures per step")
    p.add_argument("--model-size", choices=["tiny", "default"], default="tiny",
                   help="tiny: the example config's PaiNN (32 x 2); default: PaiNN 128 x 4, 5 A cutoff")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    from gfm_ase.pretraining.corpus.make_tiny import make_tiny

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        make_tiny(tmp / "data", seed=0)
        results = []
        for precision in args.precisions:
            for n in args.nprocs:
                r = run_one(tmp / "data", n, precision, args, tmp)
                results.append(r)
                print(f"  done: {n} process(es), {precision}: {r['structures_per_s']:.1f} structures/s", flush=True)
    base = {r["precision"]: r for r in results if r["world_size"] == min(args.nprocs)}
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}; "
          f"device {args.device}; model {args.model_size}; global batch {args.batch_size}; {args.steps} timed steps")
    print(f"{'precision':10s} {'procs':>5s} {'structures/s':>13s} {'atoms/s':>10s} {'speed-up':>9s} "
          f"{'efficiency':>10s} {'structures/CPU-s':>17s}")
    for r in results:
        b = base[r["precision"]]
        speed = r["structures_per_s"] / b["structures_per_s"]
        eff = speed / (r["world_size"] / b["world_size"])
        print(f"{r['precision']:10s} {r['world_size']:5d} {r['structures_per_s']:13.1f} {r['atoms_per_s']:10.0f} "
              f"{speed:9.2f} {eff:10.2f} {r['structures_per_cpu_s']:17.1f}")
    print("(structures/CPU-s: structures per CPU-second summed over ranks; less sensitive than wall-clock rates to "
          "other load on a shared machine)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
