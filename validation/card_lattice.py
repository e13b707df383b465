"""The model card's compound lattice-constant check: ten cubic binary and ternary crystals, E(a) for a calculator.

    python -m gfm_ase.validation.card_lattice MODEL_OR_peer:NAME OUT.json

For each crystal, E(a) at 11 lattice constants over +-10 % of a guess and a parabola through the lowest point and
its neighbours; the equilibrium lattice constant (A) goes to OUT.json. A quick check of what the Delta test (only
elements) does not see: compounds' volumes. Compare calculators with the same command (peers from
``.venv-teachers``); no DFT reference here, the teachers are the reference of a surrogate-trained head.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk


def perovskite(a: float, A: str = "Sr", B: str = "Ti", X: str = "O") -> Atoms:
    """Cubic ABX3 with lattice constant ``a``."""
    pos = [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]
    return Atoms(A + B + X * 3, scaled_positions=pos, cell=[a, a, a], pbc=True)


# name -> (builder of the cell with lattice constant a, guess of a in A)
CRYSTALS: dict[str, tuple[Callable[[float], Atoms], float]] = {
    "MgO rocksalt": (lambda a: bulk("MgO", "rocksalt", a=a), 4.25),
    "NaCl rocksalt": (lambda a: bulk("NaCl", "rocksalt", a=a), 5.65),
    "LiF rocksalt": (lambda a: bulk("LiF", "rocksalt", a=a), 4.07),
    "KCl rocksalt": (lambda a: bulk("KCl", "rocksalt", a=a), 6.35),
    "TiC rocksalt": (lambda a: bulk("TiC", "rocksalt", a=a), 4.33),
    "GaAs zincblende": (lambda a: bulk("GaAs", "zincblende", a=a), 5.75),
    "CaF2 fluorite": (lambda a: bulk("CaF2", "fluorite", a=a), 5.5),
    "ZrO2 fluorite": (lambda a: bulk("ZrO2", "fluorite", a=a), 5.12),
    "NiAl B2": (lambda a: bulk("NiAl", "cesiumchloride", a=a), 2.90),
    "SrTiO3 perovskite": (perovskite, 3.94),
}


def lattice_constants(calc: object) -> dict[str, float | None]:
    """Equilibrium lattice constant (A) of every crystal of :data:`CRYSTALS` for the ASE calculator ``calc``; None
    (and a line on stderr) where the lowest energy lies at an end of the +-10 % scan, i.e. no minimum inside it (a
    parabola there would extrapolate)."""
    out: dict[str, float | None] = {}
    for name, (make, guess) in CRYSTALS.items():
        a = guess * np.linspace(0.9, 1.1, 11)
        e = []
        for x in a:
            atoms = make(float(x))
            atoms.calc = calc
            e.append(atoms.get_potential_energy() / len(atoms))
        i = int(np.argmin(e))
        if i in (0, len(a) - 1):
            print(f"{name}: no E(a) minimum within {a[0]:.3f}-{a[-1]:.3f} A (lowest at {a[i]:.3f} A)", file=sys.stderr)
            out[name] = None
            continue
        c = np.polyfit(a[i - 1 : i + 2], e[i - 1 : i + 2], 2)
        out[name] = float(-c[1] / (2 * c[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m gfm_ase.validation.card_lattice MODEL|peer:NAME OUT.json", file=sys.stderr)
        return 2
    who, path = args
    from gfm_ase.validation.calculators import make_calculator

    if who.startswith("peer:"):
        calc = make_calculator(f"gfm_ase.validation.peers:{who[5:]}")
    else:
        calc = make_calculator(model=who, head="omat", dtype="float64")
    result = lattice_constants(calc)
    for name, a in result.items():
        print(f"{name:20s} {'no minimum' if a is None else f'{a:.3f}'}")
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
