"""Loader throughput: structures/s from a store into batched GraphBatch (radius graph included), one core.

    OMP_NUM_THREADS=1 python -m benchmarks.loader [--n 2000] [--cutoff 5.0] [--batch 16] [--no-model]

Builds temporary stores of rattled fcc Cu with 16 and 128 atoms per structure (energy, forces, stress labels),
then times, in one process on one thread:
  read     - Store[i] records only (h5py, gzip chunks), shuffled order
  graph    - GraphDataset[i]: read + vesin radius graph (cutoff 5 A), shuffled order
  batch    - graph + collate into a GraphBatch (what the trainer consumes), shuffled order
  batch/mem- same with Store(in_memory=True)
and, for comparison, one training step (energy + forces loss, backward through the forces, SGD update) of the
default PaiNN (128 features, 4 layers, float32) on batches of at most 512 atoms of the same structures, so the
loader rate can be read beside the model's step rate (structures/s both).
Prints a table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase.build import bulk  # noqa: E402

from gfm_ase.data import GraphDataset, Store, StoreWriter, StructureRecord  # noqa: E402
from gfm_ase.graph import collate  # noqa: E402

torch.set_num_threads(1)


def make_store(path: Path, n_atoms: int, n: int, seed: int = 0) -> None:
    reps = {16: (2, 2, 1), 128: (4, 4, 2)}[n_atoms]
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    rng = np.random.default_rng(seed)
    with StoreWriter(path, name=f"cu{n_atoms}", level_of_theory="synthetic",
                     command="python -m benchmarks.loader") as w:
        for k in range(n):
            strain = np.eye(3) + rng.normal(scale=0.01, size=(3, 3))
            cell = base.cell.array @ strain
            pos = base.positions @ strain + rng.normal(scale=0.08, size=(n_atoms, 3))
            w.append(StructureRecord(pos, base.numbers, cell, True, energy=float(rng.normal() - 3.5 * n_atoms),
                                     forces=rng.normal(size=(n_atoms, 3)), stress=rng.normal(scale=0.01, size=6),
                                     group=f"traj{k // 50}", id=str(k)))


CLOCK = time.process_time  # CPU seconds of this process: robust to other jobs sharing the core (--wall to change)


def timed(fn, n_items: int, min_time: float = 1.0) -> float:
    """items per second of CLOCK, repeating until at least min_time has elapsed."""
    fn()  # warm-up (file open, caches, allocations)
    count, t0 = 0, CLOCK()
    while True:
        fn()
        count += n_items
        dt = CLOCK() - t0
        if dt >= min_time:
            return count / dt


def bench(path: Path, cutoff: float, batch: int, n_eval: int, model, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    store = Store(path)
    n = len(store)
    order = rng.permutation(n)[:n_eval]
    ds = GraphDataset(store, cutoff=cutoff)
    ds_mem = GraphDataset(Store(path, in_memory=True), cutoff=cutoff)

    def read():
        for i in order:
            store[int(i)]

    def graph():
        for i in order:
            ds[int(i)]

    def batches(d):
        def run():
            for s in range(0, len(order), batch):
                collate([d[int(i)] for i in order[s:s + batch]], dtype=torch.float32)
        return run

    out = {"read": timed(read, len(order)), "graph": timed(graph, len(order)),
           "batch": timed(batches(ds), len(order)), "batch/mem": timed(batches(ds_mem), len(order))}
    b = collate([ds[int(i)] for i in order[:batch]], dtype=torch.float32)
    out["edges/structure"] = b.num_edges / b.num_graphs
    if b.num_atoms > 512:  # keep the (slow, CPU) model step short: its per-structure rate hardly depends on this
        b = collate([ds[int(i)] for i in order[:max(1, 512 // int(b.n_atoms[0]))]], dtype=torch.float32)
    if model is not None:
        from gfm_ase.model import predict

        opt = torch.optim.SGD(model.parameters(), lr=1e-6)

        def step():
            opt.zero_grad()
            res = predict(model, b, head="a", forces=True, create_graph=True)
            loss = ((res["energy"] - b.energy) ** 2).mean() + ((res["forces"] - b.forces) ** 2).mean()
            loss.backward()
            opt.step()

        out["train step"] = timed(step, b.num_graphs, min_time=2.0)
    return out


def _fmt(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="structures per store")
    ap.add_argument("--eval", type=int, default=512, help="structures timed per pass")
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-model", action="store_true", help="skip the model training-step comparison")
    ap.add_argument("--wall", action="store_true", help="time wall-clock instead of process CPU time")
    args = ap.parse_args(argv)
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    model = None
    if not args.no_model:
        from gfm_ase.config import HeadConfig, ModelConfig, TrunkConfig
        from gfm_ase.model import GFMModel

        torch.manual_seed(0)
        model = GFMModel(ModelConfig(name="bench", trunk=TrunkConfig(name="painn", options={"cutoff": args.cutoff}),
                                     heads=[HeadConfig(name="a")])).float()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_atoms in (16, 128):
            path = Path(tmp) / f"cu{n_atoms}.h5"
            t0 = CLOCK()
            make_store(path, n_atoms, args.n)
            write_rate = args.n / (CLOCK() - t0)
            r = bench(path, args.cutoff, args.batch, min(args.eval, args.n), model)
            r["write"] = write_rate
            rows.append((n_atoms, r))
    cols = ["write", "read", "graph", "batch", "batch/mem"] + ([] if model is None else ["train step"])
    print(f"# loader throughput, structures per {'wall' if args.wall else 'CPU'} second, 1 thread; "
          f"cutoff {args.cutoff} A, batch {args.batch}; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, python "
          f"{platform.python_version()}")
    print("| atoms/structure | edges/structure | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for n_atoms, r in rows:
        print(f"| {n_atoms} | {r['edges/structure']:.0f} | " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
