"""Batched relaxation with torch-sim: FIRE with the Frechet cell filter (positions and cell) of 120 mixed
structures in one batch, with a gfm-ase model (needs the engines extra: pip install -e '.[engines]').

    python examples/torchsim_relax.py                       # default model, head omat
    python examples/torchsim_relax.py --model gfm-mini --n 120 --device cuda --dtype float32

Converged systems leave the batch (torch-sim's in-flight batching) so the others keep going; with --autobatch the
batch size comes from torch-sim's memory estimate (CUDA) through the model's memory metric.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch_sim as ts

from gfm_ase.hub import default_model
from gfm_ase.simulation.samples import mixed_structures
from gfm_ase.simulation.torchsim import GFMTorchSimModel


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model (default: the default built-in model)")
    p.add_argument("--head", default="omat")
    p.add_argument("--n", type=int, default=120, help="number of structures")
    p.add_argument("--fmax", type=float, default=0.05, help="force (and cell force) tolerance, eV/A")
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--autobatch", action="store_true", help="torch-sim's in-flight autobatcher (GPU)")
    args = p.parse_args(argv)

    model = GFMTorchSimModel(args.model or default_model(), args.head, device=args.device, dtype=args.dtype)
    structures = mixed_structures(model.evaluator.elements or ["Si", "Ge"], args.n, seed=0)
    print(f"{len(structures)} structures, {sum(len(a) for a in structures)} atoms, elements "
          f"{sorted({s for a in structures for s in a.get_chemical_symbols()})}, device {model.device}")
    state = ts.io.atoms_to_state(structures, model.device, model.dtype)
    e0 = model(state)["energy"].cpu()
    t0 = time.perf_counter()
    final = ts.optimize(state, model, optimizer=ts.frechet_cell_fire, max_steps=args.max_steps,
                        convergence_fn=ts.generate_force_convergence_fn(args.fmax), autobatcher=args.autobatch)
    seconds = time.perf_counter() - t0
    out = model(final)
    fmax = torch.stack([out["forces"][final.system_idx == b].norm(dim=1).max() for b in range(final.n_systems)])
    de = (out["energy"].cpu() - e0).numpy()
    print(f"relaxed in {seconds:.1f} s ({len(structures) / seconds:.2f} structures/s); energy change per "
          f"structure: median {np.median(de):.3f} eV; max |F| after: {float(fmax.max()):.3f} eV/A; "
          f"{int((fmax < args.fmax).sum())}/{len(structures)} below fmax")
    for atoms in final.to_atoms()[:3]:
        print(f"  {atoms.get_chemical_formula():12s} V = {atoms.get_volume():8.2f} A^3")


if __name__ == "__main__":
    main()
