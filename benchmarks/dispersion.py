"""Cost of the DFT-D3 term (gfm_ase.dispersion) beside the model call, per energy + forces + stress call.

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.dispersion [--atm] [--calls 3]

Systems: graphite (AB, a = 2.46 A, c = 6.7 A) repeated 4x4x2 (128 atoms) and the CO2 molecular crystal (Pa-3,
a = 5.624 A) repeated 3x3x3 (324 atoms). Columns: CPU milliseconds per call (process time, one untimed warm-up
call each) of ``D3Dispersion("d3bj", "pbe").compute(..., stress=True)`` and of ``GFMCalculator(head="omat")``
(float32, default model) on the same cell; ``--atm`` adds the three-body variant (slow: tens of seconds).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from ase.lattice.hexagonal import Graphite
from ase.spacegroup import crystal


def systems():
    graphite = Graphite(symbol="C", latticeconstant={"a": 2.46, "c": 6.7}, size=(1, 1, 1)).repeat((4, 4, 2))
    co2 = crystal(["C", "O"], basis=[(0, 0, 0), (0.1185, 0.1185, 0.1185)], spacegroup=205,
                  cellpar=[5.624] * 3 + [90] * 3).repeat((3, 3, 3))
    for atoms in (graphite, co2):
        atoms.rattle(0.02, seed=0)
    return {"graphite 4x4x2": graphite, "CO2 crystal 3x3x3": co2}


def cpu_ms(fn, calls: int) -> float:
    fn()
    t = time.process_time()
    for _ in range(calls):
        fn()
    return 1e3 * (time.process_time() - t) / calls


def main(argv=None) -> int:
    from gfm_ase import GFMCalculator
    from gfm_ase.dispersion import D3Dispersion

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--atm", action="store_true", help="also time d3bj-atm (one call)")
    args = ap.parse_args(argv)
    calc = GFMCalculator(head="omat", dtype="float32", device="cpu")
    print("| system | atoms | D3(BJ) ms | " + ("D3(BJ)+ATM ms | " if args.atm else "") + "model ms |")
    print("|---|---|---|" + ("---|" if args.atm else "") + "---|")
    for name, atoms in systems().items():
        variants = ["d3bj"] + (["d3bj-atm"] if args.atm else [])
        row = []
        for v in variants:
            d = D3Dispersion(v, "pbe")
            row.append(cpu_ms(lambda: d.compute(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc,
                                                stress=True), args.calls if v == "d3bj" else 1))
        row.append(cpu_ms(lambda: calc.calculate(atoms, ["energy", "forces", "stress"]), args.calls))
        print(f"| {name} | {len(atoms)} | " + " | ".join(f"{x:.0f}" for x in row) + " |")
    return 0 if np.isfinite(row).all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
