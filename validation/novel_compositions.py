"""Five starting structures of compositions a universal model's training data should not contain, for MD stability.

    python -m gfm_ase.validation.novel_compositions -o DIR [--check STORE.h5 ...]

Writes ``DIR/<name>.extxyz`` (64-96 atoms each, seeded) and, with ``--check``, refuses (exit 1) when any store holds
a structure with exactly the same set of elements, so "none of the data contains them" is checked, not assumed:

  heo_rocksalt   (Mg Co Ni Cu Zn)O high-entropy rocksalt oxide, 64 atoms
  hea_bcc        Ti Zr Nb Hf Ta refractory high-entropy alloy, bcc, 54 atoms
  li_garnet_like Li-La-Zr-O: cubic perovskite-derived La(Zr,Li)O3 supercell with Li on A sites, 80 atoms
  heusler_quat   Co Fe Mn Si quaternary Heusler (Y-type), 64 atoms
  chalcohalide   Sb S I: SbSI-like rocksalt-derived cell with mixed S/I anions, 64 atoms
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms

SEED = 11
NAMES = ("heo_rocksalt", "hea_bcc", "li_garnet_like", "heusler_quat", "chalcohalide")  # the order of build_all


def _decorate(atoms: Atoms, sites: str, species: list[str], rng: np.random.Generator) -> Atoms:
    sym = atoms.get_chemical_symbols()
    idx = [i for i, s in enumerate(sym) if s == sites]
    choice = rng.permutation(np.resize(species, len(idx)))
    for i, s in zip(idx, choice):
        sym[i] = str(s)
    atoms.set_chemical_symbols(sym)
    return atoms


def build_all(seed: int = SEED) -> dict[str, Atoms]:
    from ase import Atoms
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = {}
    heo = bulk("MgO", "rocksalt", a=4.23, cubic=True).repeat((2, 2, 2))
    out["heo_rocksalt"] = _decorate(heo, "Mg", ["Mg", "Co", "Ni", "Cu", "Zn"], rng)
    hea = bulk("Nb", "bcc", a=3.36, cubic=True).repeat((3, 3, 3))
    out["hea_bcc"] = _decorate(hea, "Nb", ["Ti", "Zr", "Nb", "Hf", "Ta"], rng)
    a = 4.15
    pv = Atoms(
        ["La", "Zr", "O", "O", "O"],
        scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
        cell=np.eye(3) * a,
        pbc=True,
    ).repeat((2, 2, 4))
    out["li_garnet_like"] = _decorate(pv, "La", ["La", "La", "La", "Li"], rng)
    hz = bulk("Fe", "bcc", a=2.84, cubic=True).repeat((4, 4, 2))  # 64 sites, Y-type ordering by sublattice
    sym = []
    for p in hz.get_scaled_positions() * np.array([4, 4, 2]) * 2:
        k = (int(round(p[0])) + int(round(p[1])) + int(round(p[2]))) % 4
        sym.append(["Co", "Fe", "Mn", "Si"][k])
    hz.set_chemical_symbols(sym)
    out["heusler_quat"] = hz
    rs = bulk("PbS", "rocksalt", a=6.0, cubic=True).repeat((2, 2, 2))
    rs = _decorate(rs, "Pb", ["Sb"], rng)
    out["chalcohalide"] = _decorate(rs, "S", ["S", "I"], rng)
    for name, at in out.items():
        at.info["name"] = name
    assert tuple(out) == NAMES
    return out


def element_sets(store_path: str | os.PathLike) -> set[frozenset[int]]:
    from gfm_ase.data import Store

    st = Store(store_path)
    zs, counts = st.composition()
    return {frozenset(int(z) for z in zs[row > 0]) for row in counts}


def main(argv: Sequence[str] | None = None) -> int:
    import ase.io

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--outdir", type=Path, required=True)
    ap.add_argument("--check", nargs="*", type=Path, default=[], help="stores that must not contain these")
    args = ap.parse_args(argv)
    built = build_all()
    seen = set()
    for p in args.check:
        seen |= element_sets(p)
    bad = [n for n, at in built.items() if frozenset(set(at.numbers.tolist())) in seen]
    if bad:
        print(f"error: compositions {bad} occur in the checked stores", file=sys.stderr)
        return 1
    args.outdir.mkdir(parents=True, exist_ok=True)
    for name, at in built.items():
        ase.io.write(args.outdir / f"{name}.extxyz", at)
        print(f"{name}: {at.get_chemical_formula()} ({len(at)} atoms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
