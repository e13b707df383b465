#!/usr/bin/env python
"""Build every store that pretraining/configs/gfm-base.yaml reads (work_data/stores/, never committed).

    python pretraining/corpus/build_gfm_base_corpus.py [--skip-generate] [--teacher-shards N] [--max-minutes M]

Without --teacher-shards it regenerates exactly the teacher shards gfm-base was trained on (TEACHER_SHARDS).

1. real DFT from ../shared/data: pretraining/corpus/ingest_shared.py (mlearn_train and the FitSNAP Ta/InP/Fe sets
   train the `omat` head; mlearn_test, the phonopy sets, DeePMD water and QM9 stay held out);
2. the SURROGATE corpora: generate_teacher.py --teacher sevennet0 (the `omat` head) and --teacher chgnet (the
   `mp2020` head) in the teachers' venv (`make teachers`), seeded and resumable (gfm-base used the shards that were
   finished when training started; the model card says how many); for v2 also generate_contacts.py (anion-anion
   contacts in ionic crystals), for v3 generate_elemental.py (elemental crystals over a wide volume range), for
   v5 generate_ground_states.py (the elements' other ground-state structure types, teacher-relaxed), and for the
   v6/v7 candidates generate_open_lattices.py (the elemental lattices generate_elemental.py leaves out), and for the
   v8 candidate generate_phonon_frames.py (random-displacement supercells of bulk prototypes), each with both
   teachers;
3. the lower-fidelity corpora of gfm-mini: generate_emt.py, generate_xtb.py --set molecules;
4. conversion of the generated shards into stores with `gfm data convert` (the teacher's store records
   `surrogate`);
5. align_references.py: per-element energy offsets of the DFT sets against the `omat` teacher (SevenNet-0), on
   their own structures (the numbers in the config's `energy_offsets`; printed, and written to
   work_data/align_sevennet0.json).
Each step is a subprocess, so the exact commands are printed and can be rerun by hand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "work_data"
GEN = WORK / "generated"
STORES = WORK / "stores"
TEACHER_PY = REPO / ".venv-teachers" / "bin" / "python"
DFT_FOR_OMAT = ["mlearn_train", "fitsnap_Ta", "fitsnap_InP", "fitsnap_Fe"]
# the shards (first, count) of seed 0 that the shipped gfm-base was trained on: SevenNet-0 ran as two processes
# (shards 0-9 and 30-36) for the last 30 minutes before training, CHGNet as one (0-21)
TEACHER_SHARDS = {"sevennet0": [(0, 10), (30, 7)], "chgnet": [(0, 22)]}
# v2's anion-anion contact sets (generate_contacts.py, its default 12 shards of seed 0), one per teacher
CONTACT_TEACHERS = ["sevennet0", "chgnet"]
# v3's elemental wide-volume sets (generate_elemental.py, its default 8 shards of seed 0), one per teacher
ELEMENTAL_TEACHERS = ["sevennet0", "chgnet"]
# gfm-base v5's ground-state structure types (generate_ground_states.py, its default 3 shards of seed 0)
GROUNDSTATE_TEACHERS = ["sevennet0", "chgnet"]
# the open elemental lattices (generate_open_lattices.py, its default 4 shards of seed 0; the v6 and v7 candidates,
# not in any shipped model yet)
OPENLATTICE_TEACHERS = ["sevennet0", "chgnet"]
# random-displacement supercells (generate_phonon_frames.py, its default 8 shards of seed 0; the v8 candidate)
PHONON_TEACHERS = ["sevennet0", "chgnet"]
# the per-teacher generators after the teacher corpus: (script, generated folder kind, teachers), in this order
PER_TEACHER = [
    ("generate_contacts.py", "contacts", CONTACT_TEACHERS),  # v2 (pretraining/configs/gfm-base-v2.yaml)
    ("generate_elemental.py", "elemental", ELEMENTAL_TEACHERS),  # v3
    ("generate_ground_states.py", "groundstate", GROUNDSTATE_TEACHERS),  # v5
    ("generate_open_lattices.py", "openlattice", OPENLATTICE_TEACHERS),  # v6/v7 candidates
    ("generate_phonon_frames.py", "phonon", PHONON_TEACHERS),  # v8 candidate
]

# level of theory and surrogate strings of the teachers' stores (teacher_*, v2's contacts_*, v3's elemental_*,
# v5's groundstate_*, openlattice_*, phonon_*)
STORE_LABELS = {
    "sevennet0": (
        "PBE/PBE+U (Materials Project / MPtrj settings, VASP), uncorrected energies",
        "SevenNet-0 (11Jul2024)",
    ),
    "chgnet": ("PBE/PBE+U (Materials Project / MPtrj settings, VASP), MP2020-corrected energies", "CHGNet 0.3.0"),
}
TEACHER_KINDS = ("teacher", "contacts", "elemental", "groundstate", "openlattice", "phonon")  # folders <kind>_<teacher>
CONVERT = [  # (generated folder, store name, level of theory, surrogate)
    *((f"{kind}_{t}", f"{kind}_{t}", *STORE_LABELS[t]) for kind in TEACHER_KINDS for t in STORE_LABELS),
    ("emt", "emt", "EMT (ASE)", ""),
    ("xtb_molecules", "xtb_molecules", "GFN2-xTB (tblite)", ""),
]


def run(cmd: Sequence[object]) -> None:
    """Run ``cmd`` (paths and numbers are passed as their ``str``) from the repository root; fail on error."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-generate", action="store_true", help="only convert what work_data/generated holds")
    ap.add_argument(
        "--teacher-shards",
        type=int,
        default=None,
        help="shards 0..N-1 of each teacher instead of the ones gfm-base used (TEACHER_SHARDS)",
    )
    ap.add_argument("--max-minutes", type=float, default=None, help="time budget of the teacher labelling")
    args = ap.parse_args(argv)
    py = sys.executable
    if not TEACHER_PY.exists():
        print(f"{TEACHER_PY} is missing: run `make teachers` first", file=sys.stderr)
        return 2
    run([py, "pretraining/corpus/ingest_shared.py", "--out", STORES])
    if not args.skip_generate:
        for teacher, ranges in TEACHER_SHARDS.items():
            if args.teacher_shards is not None:
                ranges = [(0, args.teacher_shards)]
            for first, count in ranges:
                run(
                    [
                        TEACHER_PY,
                        "pretraining/corpus/generate_teacher.py",
                        "--teacher",
                        teacher,
                        "--first-shard",
                        first,
                        "--shards",
                        count,
                        "--out",
                        GEN / f"teacher_{teacher}",
                    ]
                    + (["--max-minutes", args.max_minutes] if args.max_minutes else [])
                )
        for script, kind, teachers in PER_TEACHER:
            for teacher in teachers:
                run(
                    [TEACHER_PY, f"pretraining/corpus/{script}", "--teacher", teacher]
                    + ["--out", GEN / f"{kind}_{teacher}"]
                    + (["--max-minutes", args.max_minutes] if args.max_minutes else [])
                )
        run([py, "pretraining/corpus/generate_emt.py", "--out", GEN / "emt"])
        run([py, "pretraining/corpus/generate_xtb.py", "--set", "molecules", "--out", GEN / "xtb_molecules"])
    for folder, name, lot, surrogate in CONVERT:
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
                src,
                "-o",
                STORES / f"{name}.h5",
                "--name",
                name,
                "--level-of-theory",
                lot,
                "--source",
                f"pretraining/corpus ({folder}, seed 0)",
                "--no-progress",
            ]
            + (["--surrogate", surrogate] if surrogate else [])
        )
    run(
        [
            TEACHER_PY,
            "pretraining/corpus/align_references.py",
            "--teacher",
            "sevennet0",
            "--max-structures",
            "60",
            *[STORES / f"{n}.h5" for n in DFT_FOR_OMAT],
            "--json",
            WORK / "align_sevennet0.json",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
