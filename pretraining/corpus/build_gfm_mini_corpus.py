"""Build every store that pretraining/configs/gfm-mini.yaml reads (work_data/stores/, never committed).

    python pretraining/corpus/build_gfm_mini_corpus.py [--skip-generate]

1. real DFT from ../shared/data: pretraining/corpus/ingest_shared.py (mlearn_train and fitsnap_Ta are used; the
   other stores are held out as fine-tuning tasks and validation references);
2. generated lower-fidelity data (seeded, resumable; skipped shards are reused): generate_emt.py and
   generate_xtb.py --set molecules (and --set crystals, for the next model);
3. conversion of the generated extended-XYZ shards into stores with `gfm data convert`.
Each step is a subprocess, so the exact commands are printed and can be rerun by hand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GEN = REPO / "work_data" / "generated"
STORES = REPO / "work_data" / "stores"

CONVERT = [  # (generated folder, store name, level of theory)
    ("emt", "emt", "EMT (ASE)"),
    ("xtb_molecules", "xtb_molecules", "GFN2-xTB (tblite)"),
    ("xtb_crystals", "xtb_crystals", "GFN2-xTB (tblite, Gamma point only)"),
]


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-generate", action="store_true", help="only convert what work_data/generated holds")
    args = ap.parse_args(argv)
    py = sys.executable
    run([py, "pretraining/corpus/ingest_shared.py", "--out", str(STORES)])
    if not args.skip_generate:
        run([py, "pretraining/corpus/generate_emt.py"])
        run([py, "pretraining/corpus/generate_xtb.py", "--set", "molecules"])
        run([py, "pretraining/corpus/generate_xtb.py", "--set", "crystals"])
    for folder, name, lot in CONVERT:
        src = GEN / folder
        if not src.is_dir():
            print(f"skipping {name}: {src} not generated", flush=True)
            continue
        run(
            [
                py,
                "-m",
                "gfm_ase.cli",
                "data",
                "convert",
                str(src),
                "-o",
                str(STORES / f"{name}.h5"),
                "--name",
                name,
                "--level-of-theory",
                lot,
            ]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
