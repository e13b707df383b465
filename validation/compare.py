"""Side-by-side tables of several calculators' validation results (the output folders of ``gfm validate``).

    python -m validation.compare OUT/gfm-base OUT/chgnet OUT/sevennet0 [--names gfm-base CHGNet SevenNet-0]

Each folder holds one subfolder per suite run by ``validation/card_runs.sh`` (``eos``, ``phonons``, ``errors``,
``errors-aligned``); missing suites are skipped. Prints Markdown: Delta per element and the mean over the elements
*every* calculator evaluated (so no model is flattered by leaving hard elements out), phonon band/mesh MAE per
reference, and energy/force errors per element of the mlearn test sets.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _load(folder: Path, suite: str) -> dict | None:
    p = folder / suite / "summary.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _fmt(x, nd=1) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def eos_table(runs: dict[str, dict]) -> list[str]:
    per = {n: r["details"]["elements"] for n, r in runs.items()}
    common = sorted(set.intersection(*(set(e) for e in per.values())), key=_z)
    allel = sorted(set.union(*(set(e) for e in per.values())), key=_z)
    names = list(runs)
    lines = ["| element | " + " | ".join(f"{n} Delta (meV/atom)" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for el in allel:
        lines.append(f"| {el} | " + " | ".join(_fmt(per[n].get(el, {}).get("delta_meV")) for n in names) + " |")
    means = [np.mean([per[n][el]["delta_meV"] for el in common]) for n in names]
    meds = [np.median([per[n][el]["delta_meV"] for el in common]) for n in names]
    lines.append(f"| **mean over the {len(common)} common elements** | "
                 + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    lines.append("| median over the common elements | " + " | ".join(f"{m:.2f}" for m in meds) + " |")
    lines.append("| elements evaluated / failed | " + " | ".join(
        f"{len(per[n])} / {len(runs[n]['details'].get('failed', {}))}" for n in names) + " |")
    return lines


def phonon_table(runs: dict[str, dict]) -> list[str]:
    per = {n: r["details"]["phonons"] for n, r in runs.items()}
    systems = sorted(set.union(*(set(p) for p in per.values())))
    names = list(runs)
    lines = ["| reference | " + " | ".join(f"{n} band / mesh MAE (THz)" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    wins = {n: 0 for n in names}
    for s in systems:
        vals = {n: per[n].get(s, {}).get("band_mae_THz") for n in names}
        ok = {n: v for n, v in vals.items() if v is not None}
        if len(ok) == len(names):
            wins[min(ok, key=ok.get)] += 1
        lines.append(f"| {s} | " + " | ".join(
            f"{_fmt(per[n].get(s, {}).get('band_mae_THz'), 2)} / {_fmt(per[n].get(s, {}).get('mesh_mae_THz'), 2)}"
            for n in names) + " |")
    lines.append("| references where this calculator is best (band MAE) | "
                 + " | ".join(str(wins[n]) for n in names) + " |")
    return lines


def errors_table(runs: dict[str, dict]) -> list[str]:
    names = list(runs)
    per = {n: r["details"].get("per_element", {}) for n, r in runs.items()}
    els = sorted(set.union(*(set(p) for p in per.values())), key=_z)
    lines = ["| element | " + " | ".join(f"{n} E MAE (meV/atom) / F MAE (meV/A)" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for el in els:
        cells = []
        for n in names:
            d = per[n].get(el, {})
            e = d.get("energy_meV_atom", {}).get("mae")
            f = d.get("forces_meV_A", {}).get("mae")
            cells.append(f"{_fmt(e)} / {_fmt(f)}")
        lines.append(f"| {el} | " + " | ".join(cells) + " |")
    lines.append("| all | " + " | ".join(
        f"{_fmt(runs[n]['summary'].get('energy_mae_meV_atom'))} / {_fmt(runs[n]['summary'].get('forces_mae_meV_A'))}"
        for n in names) + " |")
    return lines


def _z(sym: str) -> int:
    from ase.data import atomic_numbers

    return atomic_numbers.get(sym, 999)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--names", nargs="*", default=None)
    args = ap.parse_args(argv)
    names = args.names or [f.name for f in args.folders]
    if len(names) != len(args.folders):
        print("error: --names needs one name per folder", file=sys.stderr)
        return 2
    for suite, fn, title in (("eos", eos_table, "Equation of state: Delta against WIEN2k"),
                             ("phonons", phonon_table, "Phonons against the DFT force sets"),
                             ("errors", errors_table, "mlearn test sets, raw energies"),
                             ("errors-aligned", errors_table, "mlearn test sets, per-element energy offsets fitted")):
        runs = {n: _load(f, suite) for n, f in zip(names, args.folders)}
        runs = {n: r for n, r in runs.items() if r is not None}
        if not runs:
            continue
        print(f"\n### {title}\n")
        print("\n".join(fn(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
