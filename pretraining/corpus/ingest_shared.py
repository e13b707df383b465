"""Convert every dataset in ../shared/data into gfm-ase stores and check the counts against each PROVENANCE.md.

    python pretraining/corpus/ingest_shared.py [--shared ../shared/data] [--out work_data/stores] [--json T.json]

Writes one store per dataset and level of theory (mlearn train and test splits as separate stores: the pretraining
corpus uses mlearn_train only; mlearn_test is held out), keeps the source's groups (FitSNAP training groups,
mlearn "<element>/<config type>", DeePMD systems, phonopy examples) and prints a table of structures and atoms
found vs. expected. Archives (.tar.xz, .tar.lzma) are extracted into a temporary folder outside the repository.
Exit status 1 if any count disagrees with its PROVENANCE.md. The shared data is never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from gfm_ase.data import Store, StoreWriter
from gfm_ase.data.converters import SkipReport, iter_records

REPO = Path(__file__).resolve().parents[2]


def _int(text: str) -> int:
    return int(text.replace(",", ""))


# ------------------------------------------------------------------------------------------ expected counts (parsed)
def expect_mlearn(prov: str) -> dict[str, tuple[int, int]]:
    """{"Mo/training.json": (structures, atoms), ...} from the PROVENANCE table."""
    rows = re.findall(r"^\|\s*(\w+/\w+\.json)\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|", prov, flags=re.M)
    return {f: (_int(n), _int(a)) for f, n, a in rows}


def expect_configs(prov: str) -> tuple[int, int]:
    m = re.search(r"([\d,]+) configurations, ([\d,]+) atoms", prov)
    if m is None:
        raise ValueError("PROVENANCE.md has no '<N> configurations, <M> atoms' line")
    return _int(m.group(1)), _int(m.group(2))


def expect_groups(prov: str) -> dict[str, int]:
    """'Groups: A 9, B 100' or '8 groups (A 1358, B 479)' -> {name: count}."""
    m = re.search(r"Groups:\s*(.+?)\.(?:\s|$)", prov, flags=re.S) or re.search(r"\d+ groups \(([^)]*)\)", prov)
    if not m:
        return {}
    out: dict[str, int] = {}
    for part in m.group(1).replace("\n", " ").split(","):
        mm = re.match(r"\s*(.+?)\s+(\d+)\s*$", part)
        if mm:
            out[mm.group(1)] = int(mm.group(2))
    return out


def match_group(name: str, found: Iterable[str]) -> str | None:
    """The folder a PROVENANCE group name refers to: exact, else unique prefix, else the unique folder containing
    all its alphanumeric tokens (PROVENANCE abbreviates: 'EOS_001' = EOS_001_Jun2020, 'MD-bcc 300 K' =
    MD-bcc_Te300K)."""
    candidates = list(found)
    if name in candidates:
        return name
    pre = [k for k in candidates if k.startswith(name)]
    if len(pre) == 1:
        return pre[0]
    tokens = [t.lower() for t in re.findall(r"[A-Za-z]+|\d+", name)]
    hits = [k for k in candidates if all(t in k.lower() for t in tokens)]
    return hits[0] if len(hits) == 1 else None


def expect_n_groups(prov: str) -> int | None:
    m = re.search(r"(\d+) groups", prov)
    return int(m.group(1)) if m else None


def expect_deepmd(prov: str) -> dict[str, tuple[int, int]]:
    rows = re.findall(r"^\|\s*([\w/]+)\s*\|\s*(\d+)[^|]*\|\s*(\d+)", prov, flags=re.M)
    return {s: (int(n), int(a)) for s, n, a in rows}


def expect_phonopy(prov: str) -> dict[str, str]:
    """example -> the 'supercell atoms x displacements' cell (or the 'DFT data present' cell when that is '-')."""
    out: dict[str, str] = {}
    for line in prov.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] and not cells[0].startswith(("example", "---")):
            out[cells[0]] = cells[3] if cells[3] not in ("–", "-") else cells[2]
    return out


def parse_n_by_m(text: str) -> tuple[int, int] | None:
    m = re.search(r"(\d+)\s*×\s*(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def expect_phonopy_counts(example: str, text: str) -> tuple[int | None, int | None]:
    """(structures, atoms) that one phonopy example should give, from its PROVENANCE cell (``expect_phonopy``);
    None where the cell states no count. The QHA examples must state theirs: ValueError if the text does not."""
    nm = parse_n_by_m(text)
    if example == "NaCl-gruneisen" and nm:
        return 3 * nm[1], 3 * nm[0] * nm[1]
    if example == "Si-QHA":
        m = re.search(r"(\d+) volumes × (\d+) disp \((\d+) atoms\)", text)
        if m is None:
            raise ValueError(f"phonopy PROVENANCE.md, Si-QHA: no '<V> volumes × <D> disp (<N> atoms)' in {text!r}")
        return int(m.group(1)) * int(m.group(2)), int(m.group(1)) * int(m.group(2)) * int(m.group(3))
    if example == "Cu-QHA":
        m = re.search(r"(\d+) unit-cell", text)
        if m is None:
            raise ValueError(f"phonopy PROVENANCE.md, Cu-QHA: no '<N> unit-cell' in {text!r}")
        return int(m.group(1)), None
    if nm:
        return nm[1], nm[0] * nm[1]
    return None, None


# ------------------------------------------------------------------------------------------------------- writing
def write_store(out: Path, parts: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[int, SkipReport]:
    """parts: [{"sources": [...], "format": ..., "options": {...}}] -> one store (atomic)."""
    report = SkipReport()
    n = 0
    with StoreWriter(out, command=" ".join(sys.argv), **meta) as w:
        for part in parts:
            for rec in iter_records(
                part["sources"], part.get("format", "auto"), report=report, options=part.get("options")
            ):
                w.append(rec)
                n += 1
        w.extra_attrs(source_formats=sorted(report.formats))
    return n, report


def extract(archive: Path, into: Path) -> Path:
    dest = into / archive.parent.name
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as t:  # .tar.xz and legacy .tar.lzma (lzma auto-detects both)
        t.extractall(dest, filter="data")
    return dest


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.ok = True

    def add(
        self,
        dataset: str,
        store: str,
        n: int,
        atoms: int,
        exp_n: int | None,
        exp_atoms: int | None,
        note: str = "",
    ) -> None:
        good = (exp_n is None or n == exp_n) and (exp_atoms is None or atoms == exp_atoms)
        self.ok &= good
        self.rows.append(
            dict(
                dataset=dataset,
                store=store,
                structures=n,
                atoms=atoms,
                expected_structures=exp_n,
                expected_atoms=exp_atoms,
                ok=good,
                note=note,
            )
        )

    def print(self) -> None:
        head = f"{'dataset':34s} {'store':22s} {'structs':>8s} {'atoms':>8s} {'expected':>17s}  ok   note"
        print(head)
        print("-" * len(head))
        for r in self.rows:
            exp = (
                f"{r['expected_structures'] if r['expected_structures'] is not None else '-'}/"
                f"{r['expected_atoms'] if r['expected_atoms'] is not None else '-'}"
            )
            print(
                f"{r['dataset']:34s} {r['store']:22s} {r['structures']:8d} {r['atoms']:8d} {exp:>17s}  "
                f"{'yes' if r['ok'] else 'NO ':3s}  {r['note']}"
            )


# ------------------------------------------------------------------------------------------------------ datasets
def ingest_mlearn(shared: Path, out: Path, table: Table) -> None:
    d = shared / "mlearn"
    prov = (d / "PROVENANCE.md").read_text()
    exp = expect_mlearn(prov)
    meta = dict(
        level_of_theory="PBE",
        code="VASP",
        license="BSD-3-Clause",
        source="https://github.com/materialsvirtuallab/mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020))",
    )
    for split, fname in (("train", "training.json"), ("test", "test.json")):
        files = sorted(d.glob(f"*/{fname}"))
        store_name = f"mlearn_{split}"
        write_store(
            out / f"{store_name}.h5",
            [{"sources": files, "format": "mlearn-json"}],
            dict(name=store_name, split=split, **meta),
        )
        store = Store(out / f"{store_name}.h5")
        el_of = [g.split("/")[0] for g in store.groups]
        for f in files:
            el = f.parent.name
            sel = [i for i, e in enumerate(el_of) if e == el]
            e_n, e_a = exp.get(f"{el}/{fname}", (None, None))
            table.add(f"mlearn {el}/{fname}", store_name, len(sel), int(store.n_atoms[sel].sum()), e_n, e_a)


def ingest_fitsnap(shared: Path, out: Path, tmp: Path, table: Table) -> None:
    specs = [
        ("fitsnap_Ta_JCP2014", "PBE", "VASP (PAW); raw DFT totals (the upstream fit subtracts ZBL at fit time)"),
        ("fitsnap_InP_JPCA2020", "DFT (VASP), functional not stated in the files", ""),
        ("fitsnap_Fe_Linear_NPJ2021", "spin-polarised DFT (VASP), functional not stated in the files", ""),
    ]
    for name, lot, note in specs:
        d = shared / name
        prov = (d / "PROVENANCE.md").read_text()
        src = d / "JSON" if (d / "JSON").is_dir() else extract(d / "JSON.tar.xz", tmp) / "JSON"
        store_name = name.split("_")[0] + "_" + name.split("_")[1]
        write_store(
            out / f"{store_name}.h5",
            [{"sources": [src], "format": "fitsnap-json"}],
            dict(
                name=store_name,
                level_of_theory=lot,
                code="VASP",
                license="GPL-2.0",
                source=f"https://github.com/FitSNAP/FitSNAP examples ({name})",
                note=note,
            ),
        )
        store = Store(out / f"{store_name}.h5")
        e_n, e_a = expect_configs(prov)
        table.add(name, store_name, len(store), int(store.n_atoms.sum()), e_n, e_a)
        got = Counter(store.groups.tolist())
        exp_groups = expect_groups(prov)
        for g, cnt in exp_groups.items():
            match = match_group(g, got)
            n_got = got[match] if match else 0
            table.add(
                f"  group {g}",
                store_name,
                n_got,
                int(store.n_atoms[store.groups == match].sum()) if match else 0,
                cnt,
                None,
                note="" if match in (None, g) else f"folder {match}",
            )
        n_groups = expect_n_groups(prov)
        if n_groups is not None:
            table.add(
                f"  ({n_groups} groups expected)",
                store_name,
                len(got),
                int(store.n_atoms.sum()),
                n_groups,
                None,
                note="count = number of groups",
            )


def ingest_deepmd(shared: Path, out: Path, table: Table) -> None:
    d = shared / "deepmd_water"
    exp = expect_deepmd((d / "PROVENANCE.md").read_text())
    meta = dict(
        code="unknown (DeePMD-kit example data)",
        license="LGPL-3.0",
        source="https://github.com/deepmodeling/deepmd-kit examples/water",
    )
    write_store(
        out / "deepmd_water.h5",
        [{"sources": [d / "se_e2_a_data"], "format": "deepmd"}],
        dict(name="deepmd_water", level_of_theory="DFT, functional unknown (not documented upstream)", **meta),
    )
    store = Store(out / "deepmd_water.h5")
    for k in range(4):
        sel = store.groups == f"data_{k}"
        row = exp.get(f"se_e2_a_data/data_{k}")  # (frames, atoms per frame)
        table.add(
            f"deepmd_water data_{k}",
            "deepmd_water",
            int(sel.sum()),
            int(store.n_atoms[sel].sum()),
            None if row is None else row[0],
            None if row is None else row[0] * row[1],
        )
    write_store(
        out / "deepmd_water_dplr.h5",
        [{"sources": [d / "dplr" / "data"], "format": "deepmd", "options": {"group": "dplr"}}],
        dict(
            name="deepmd_water_dplr",
            level_of_theory="DFT, functional unknown; energies shifted/"
            "reference-subtracted in an undocumented way (not comparable to deepmd_water)",
            **meta,
        ),
    )
    store = Store(out / "deepmd_water_dplr.h5")
    row = exp.get("dplr/data")
    table.add(
        "deepmd_water dplr (caveat energies)",
        "deepmd_water_dplr",
        len(store),
        int(store.n_atoms.sum()),
        None if row is None else row[0],
        None if row is None else row[0] * row[1],
    )


PHONOPY_STORES = {  # store -> (level of theory, code, [(example, how)])
    "phonopy_vasp_pbe": (
        "PBE",
        "VASP",
        [
            ("NaCl", "force_sets"),
            ("ZnO", "force_sets"),
            ("NaCl-gruneisen", "gruneisen"),
            ("Si", "vasprun"),
            ("Si-QHA", "vasprun_tar"),
        ],
    ),
    "phonopy_vasp_pbesol": (
        "PBEsol",
        "VASP",
        [("SnO2", "force_sets"), ("Cr", "force_sets"), ("Cu-QHA", "vasprun_tar")],
    ),
    "phonopy_qe_pbe": ("PBE (PAW pslibrary)", "Quantum ESPRESSO pw.x", [("NaCl-QE", "qe"), ("Si-QE", "qe")]),
}


def ingest_phonopy(shared: Path, out: Path, tmp: Path, table: Table) -> None:
    d = shared / "phonopy_examples"
    exp = expect_phonopy((d / "PROVENANCE.md").read_text())
    for store_name, (lot, code, examples) in PHONOPY_STORES.items():
        parts: list[dict[str, Any]] = []
        expected: dict[str, str] = {}
        for ex, how in examples:
            e = d / ex
            if not e.is_dir():
                continue
            if how == "force_sets":
                parts.append({"sources": [e], "format": "phonopy", "options": {"group": ex}})
            elif how == "gruneisen":  # FORCE_SETS + POSCAR-unitcell per volume; --dim="2 2 2" (README)
                for v in sorted(p for p in e.iterdir() if p.is_dir()):
                    parts.append(
                        {
                            "sources": [v],
                            "format": "phonopy",
                            "options": {"group": f"{ex}/{v.name}", "supercell": [2, 2, 2]},
                        }
                    )
            elif how == "vasprun":
                parts.append(
                    {
                        "sources": sorted(e.glob("vasprun.xml*")),
                        "format": "ase",
                        "options": {"group": ex, "format": "vasp-xml", "index": "-1"},
                    }
                )
            elif how == "vasprun_tar":
                x = extract(next(e.glob("*.tar.lzma")), tmp / "phonopy")
                parts.append(
                    {
                        "sources": sorted(p for p in x.rglob("vasprun.xml*") if p.is_file()),
                        "format": "ase",
                        "options": {"group": ex, "format": "vasp-xml", "index": "-1"},
                    }
                )
            elif how == "qe":
                parts.append(
                    {
                        "sources": sorted(p for p in e.glob("*.out") if ".ph." not in p.name),
                        "format": "ase",
                        "options": {"group": ex, "format": "espresso-out", "index": "-1"},
                    }
                )
            expected[ex] = exp.get(ex, "")
        write_store(
            out / f"{store_name}.h5",
            parts,
            dict(
                name=store_name,
                level_of_theory=lot,
                code=code,
                license="BSD-3-Clause",
                source="https://github.com/phonopy/phonopy example/ (FORCE_SETS: forces only; "
                "vasprun.xml / pw.x outputs: energy, forces, stress)",
            ),
        )
        store = Store(out / f"{store_name}.h5")
        groups = store.groups
        for ex, text in expected.items():
            sel = np.array([g == ex or g.startswith(ex + "/") for g in groups])
            e_n, e_a = expect_phonopy_counts(ex, text)
            table.add(
                f"phonopy {ex}",
                store_name,
                int(sel.sum()),
                int(store.n_atoms[sel].sum()),
                e_n,
                e_a,
                note="forces only" if not np.isfinite(store.energies[sel]).any() else "",
            )
    table.add(
        "phonopy Al-QHA",
        "-",
        0,
        0,
        None,
        None,
        note="not ingested: e-v.dat energies only (no forces), not tied to a calculation output",
    )


def ingest_qm9(shared: Path, out: Path, table: Table) -> None:
    d = shared / "schnetpack_qm9_sample"
    prov = (d / "PROVENANCE.md").read_text()
    write_store(
        out / "qm9_sample.h5",
        [
            {
                "sources": [d / "test_qm9.db"],
                "format": "ase",
                "options": {"energy_key": "energy_U0", "energy_unit": "Hartree", "group": "qm9"},
            }
        ],
        dict(
            name="qm9_sample",
            level_of_theory="B3LYP/6-31G(2df,p)",
            code="Gaussian 09",
            license="MIT",
            source="https://github.com/atomistic-machine-learning/schnetpack tests/testdata/test_qm9.db",
            energy_definition="QM9 U0: internal energy at 0 K (includes zero-point energy)",
        ),
    )
    store = Store(out / "qm9_sample.h5")
    m = re.search(r"(\d+) molecules \(.*?; ([\d,]+) atoms\)", prov)
    table.add(
        "schnetpack_qm9_sample",
        "qm9_sample",
        len(store),
        int(store.n_atoms.sum()),
        int(m.group(1)) if m else None,
        _int(m.group(2)) if m else None,
        note="energy = U0, no forces",
    )


import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("GFM_SHARED", REPO.parent / "shared")) / "data",
        help="the shared data folder (default: $GFM_SHARED/data or ../shared/data)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "work_data" / "stores")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    if not args.shared.is_dir():
        print(f"error: {args.shared} not found (pass --shared)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    table = Table()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="gfm-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        ingest_mlearn(args.shared, args.out, table)
        ingest_fitsnap(args.shared, args.out, tmp, table)
        ingest_deepmd(args.shared, args.out, table)
        ingest_phonopy(args.shared, args.out, tmp, table)
        ingest_qm9(args.shared, args.out, table)
    table.print()
    print(
        f"\nstores in {args.out} ({time.time() - t0:.0f} s); all counts match PROVENANCE.md: "
        f"{'yes' if table.ok else 'NO'}"
    )
    if args.json:
        args.json.write_text(json.dumps(table.rows, indent=1))
    return 0 if table.ok else 1


if __name__ == "__main__":
    sys.exit(main())
