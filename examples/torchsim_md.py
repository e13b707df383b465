"""Batched NVT molecular dynamics with torch-sim: 32 systems (Langevin thermostat, BAOAB) advanced together, with a
gfm-ase model (needs the engines extra: pip install -e '.[engines]').

    python examples/torchsim_md.py                          # default model, head omat, 32 systems, 600 K
    python examples/torchsim_md.py --model gfm-mini --steps 500 --device cuda --dtype float32
"""
from __future__ import annotations

import argparse
import time

import torch
import torch_sim as ts

from gfm_ase.hub import default_model
from gfm_ase.simulation.samples import mixed_structures
from gfm_ase.simulation.torchsim import GFMTorchSimModel


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model (default: the default built-in model)")
    p.add_argument("--head", default="omat")
    p.add_argument("--systems", type=int, default=32)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--temperature", type=float, default=600.0, help="K")
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", choices=["float64", "float32"])
    args = p.parse_args(argv)

    model = GFMTorchSimModel(args.model or default_model(), args.head, device=args.device, dtype=args.dtype,
                             compute_stress=False)
    structures = mixed_structures(model.evaluator.elements or ["Si", "Ge"], args.systems, seed=1, min_atoms=8,
                                  strain=0.0, rattle=0.0)
    n_atoms = sum(len(a) for a in structures)
    print(f"{len(structures)} systems, {n_atoms} atoms, NVT {args.temperature:g} K, {args.steps} steps of "
          f"{args.timestep:g} fs, device {model.device}")
    reporter = None
    t0 = time.perf_counter()
    final = ts.integrate(structures, model, integrator=ts.nvt_langevin, n_steps=args.steps,
                         temperature=args.temperature, timestep=args.timestep * 1e-3, trajectory_reporter=reporter,
                         seed=0)
    seconds = time.perf_counter() - t0
    kT = ts.calc_kT(masses=final.masses, momenta=final.momenta, system_idx=final.system_idx)
    temps = (kT / ts.units.MetalUnits.temperature).cpu()
    print(f"{args.steps * len(structures) / seconds:.1f} MD steps x systems per second "
          f"({n_atoms * args.steps / seconds:.0f} atom-steps/s); final temperatures: mean {float(temps.mean()):.0f} K, "
          f"range {float(temps.min()):.0f}-{float(temps.max()):.0f} K (small cells fluctuate strongly)")
    assert torch.isfinite(final.positions).all()


if __name__ == "__main__":
    main()
