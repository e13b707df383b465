"""Side-by-side tables of several calculators' validation results (the output folders of ``gfm validate``).

    python -m gfm_ase.validation.compare OUT/gfm-base OUT/chgnet OUT/sevennet0 [--names gfm-base CHGNet SevenNet-0]

Each folder holds one subfolder per suite run by ``validation/card_runs.sh`` (``eos``, ``phonons``, ``errors``,
``errors-aligned``); missing suites are skipped. Prints Markdown: Delta per element and the mean over the elements
*every* calculator evaluated (so no model is flattered by leaving hard elements out), phonon band/mesh MAE per
reference, and energy/force errors per element of the mlearn test sets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _load(folder: Path, suite: str) -> dict | None:
    p = folder / suite / "summary.json"
    return json.loads(p.read_text()) if p.is_file() else None


def comparisons() -> list:
    """The :class:`~gfm_ase.validation.suites.registry.Comparison` tables of every registered suite, by ``rank``."""
    from gfm_ase.validation.suites import SUITES

    return sorted((c for suite in SUITES.values() for c in suite.compare), key=lambda c: c.rank)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--names", nargs="*", default=None)
    args = ap.parse_args(argv)
    names = args.names or [f.name for f in args.folders]
    if len(names) != len(args.folders):
        print("error: --names needs one name per folder", file=sys.stderr)
        return 2
    for comparison in comparisons():  # each suite's tables (validation/suites/<suite>.py)
        runs = {n: _load(f, comparison.folder) for n, f in zip(names, args.folders)}
        runs = {n: r for n, r in runs.items() if r is not None}
        if not runs:
            continue
        print(f"\n### {comparison.title}\n")
        print("\n".join(comparison.table(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
