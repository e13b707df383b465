"""``gfm data convert|formats|info|check|split|export``: build and inspect structure stores.

Bad input (an unreadable or corrupt file, an unknown converter option, a store that is not one) is reported as one
line ``error: <file>: <what>`` with exit status 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import traceback
import warnings
from typing import Any
from pathlib import Path

FORMAT_CHOICES = ["auto", "ase", "mlearn-json", "fitsnap-json", "deepmd", "phonopy", "mptrj", "aselmdb", "ani-h5"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="convert datasets into stores; inspect, check and split stores")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="print the traceback of an error")

    c = dsub.add_parser(
        "convert",
        parents=[common],
        help="convert DFT data files/folders into one store (atomic write)",
        epilog="converter options of each format: gfm data formats",
    )
    c.add_argument("sources", nargs="+", metavar="SRC", help="files or folders (folders are walked)")
    c.add_argument("-o", "--output", required=True, metavar="OUT.h5")
    c.add_argument("--format", default="auto", choices=FORMAT_CHOICES)
    c.add_argument("--name", default=None, help="dataset name (default: output file stem)")
    c.add_argument("--level-of-theory", default="", help='e.g. "PBE", "wB97X/6-31G(d)"')
    c.add_argument("--code", default="", help="DFT code, e.g. VASP")
    c.add_argument("--source", default="", help="where the data comes from (URL, DOI)")
    c.add_argument("--license", default="", help="license of the source data")
    c.add_argument(
        "--surrogate",
        default="",
        help="the model that made the labels when they are not from the level of theory itself (e.g. "
        "'CHGNet 0.3.0'): recorded in the store and in the head metadata of models trained on it",
    )
    c.add_argument(
        "--skip-bad", action="store_true", help="skip bad records (each one is reported) instead of stopping"
    )
    c.add_argument("--append", action="store_true", help="append to an existing store")
    c.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="converter option, e.g. stress_unit=bar, stress_sign=compression, energy_key=energy_U0, "
        "energy_unit=Hartree, preset=spice, supercell=2,2,2 (repeatable; unknown names and values "
        "are an error; gfm data formats lists them)",
    )
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=run_convert)

    fm = dsub.add_parser("formats", help="the input formats and the --option each one accepts")
    fm.add_argument("format", nargs="*", metavar="FORMAT", help=f"only these formats ({', '.join(FORMAT_CHOICES[1:])})")
    fm.set_defaults(func=run_formats)

    i = dsub.add_parser("info", parents=[common], help="counts, elements, label coverage and statistics of a store")
    i.add_argument("store", metavar="OUT.h5")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=run_info)

    k = dsub.add_parser("check", parents=[common], help="validate every record of a store (exit 1 on problems)")
    k.add_argument("store", metavar="OUT.h5")
    k.add_argument("--min-distance", type=float, default=0.5, help="flag atoms closer than this (A)")
    k.add_argument(
        "--min-distance-factor",
        type=float,
        default=None,
        metavar="F",
        help="also flag what the calculator and screening refuse: atoms closer than F x the sum of their "
        "covalent radii, cells too small for their atoms (default 0.4; 0: off; docs/bad-input.md)",
    )
    k.add_argument("--max-force", type=float, default=50.0, help="flag forces larger than this (eV/A)")
    k.add_argument("--strict", action="store_true", help="warnings also give exit status 1")
    k.add_argument("--no-progress", action="store_true")
    k.set_defaults(func=run_check)

    s = dsub.add_parser(
        "split", parents=[common], help="deterministic train/val/test split written as JSON index lists"
    )
    s.add_argument("store", metavar="OUT.h5")
    s.add_argument("-o", "--output", required=True, metavar="SPLITS.json")
    s.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--by", choices=["structure", "group"], default="structure")
    s.set_defaults(func=run_split)

    x = dsub.add_parser(
        "export",
        parents=[common],
        help="write a store to extxyz or an ASE database (every label, ASE units; atomic write)",
        description="Write every structure and label of a store (energy, forces, stress, magmoms, "
        "charge, spin, group, id) to OUT in ASE units. The format comes from the suffix: "
        ".extxyz/.xyz (labels as the plain keys ASE reads back as the frame's "
        "calculator) or .db (labels as the rows' calculator columns). gfm data convert "
        "reads OUT back into the same store. With --split and --part, only that part of a split written by "
        "gfm data split (e.g. the test structures a training run never saw).",
    )
    x.add_argument("store", metavar="STORE", help="a gfm-ase store (.h5 or folder of shards)")
    x.add_argument("-o", "--output", required=True, metavar="OUT.extxyz|OUT.db")
    x.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    x.add_argument("--split", metavar="SPLITS.json", help="a split file of `gfm data split` made for STORE")
    x.add_argument("--part", choices=["train", "val", "test"], help="with --split: the part to write")
    x.set_defaults(func=run_export)


def _error(args: argparse.Namespace, path: object, exc: BaseException, note: str = "") -> int:
    """One line ``error: <file>: <what>`` on stderr (the traceback too with --debug); exit status 2."""
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, (OSError, KeyError)) and not isinstance(exc, FileNotFoundError):
        msg = f"cannot read ({type(exc).__name__}: {msg})"
    if path is not None and not msg.startswith(str(path)):
        msg = f"{path}: {msg}"
    print(f"error: {' '.join(msg.split())}{note}", file=sys.stderr)
    if getattr(args, "debug", False):
        traceback.print_exception(exc)
    return 2


def run_formats(args: argparse.Namespace) -> int:
    from gfm_ase.data.converters.options import describe_formats

    unknown = [f for f in args.format if f not in FORMAT_CHOICES[1:]]
    if unknown:
        print(f"error: unknown format {unknown[0]!r}; known: {', '.join(FORMAT_CHOICES[1:])}", file=sys.stderr)
        return 2
    print("\n".join(describe_formats(args.format or None)))
    return 0


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise SystemExit(f"error: --option expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    if "," in value:
        try:
            return key, [int(v) for v in value.split(",")]
        except ValueError:
            return key, value.split(",")
    for conv in (int, float):
        try:
            return key, conv(value)
        except ValueError:
            pass
    return key, value


def run_convert(args: argparse.Namespace) -> int:
    from gfm_ase.data.converters import ConversionError, convert
    from gfm_ase.data.store import StoreError

    options = dict(_parse_option(o) for o in args.option)
    try:
        with warnings.catch_warnings():  # unconverted labels are reported in the summary line below
            warnings.filterwarnings("ignore", message="labels present in the source files were not converted")
            n, report = convert(
                args.sources,
                args.output,
                args.format,
                name=args.name,
                level_of_theory=args.level_of_theory,
                code=args.code,
                source=args.source,
                license=args.license,
                skip_bad=args.skip_bad,
                mode="a" if args.append else "w",
                options=options,
                progress=not args.no_progress,
                **({"surrogate": args.surrogate} if args.surrogate else {}),
                command=shlex.join(["gfm", "data", *sys.argv[2:]]) if sys.argv[1:2] == ["data"] else None,
            )
    except (ConversionError, StoreError, ValueError, OSError) as exc:
        return _error(args, None, exc, f" (nothing was written to {args.output})")
    for line in report.lines():
        print(f"skipped: {line}", file=sys.stderr)
    if report.unconverted:
        print(
            "warning: labels present in the source files were not converted: "
            + ", ".join(f"{k} in {v} structures" for k, v in sorted(report.unconverted.items())),
            file=sys.stderr,
        )
    print(
        f"wrote {n} structures to {args.output}: {report.label_summary()} (formats: "
        f"{', '.join(sorted(report.formats))}{f'; {len(report)} bad records skipped' if len(report) else ''})"
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from gfm_ase.data.stats import store_info
    from gfm_ase.data.store import Store, StoreError

    try:
        info = store_info(Store(args.store))
    except (StoreError, OSError, KeyError, ValueError) as exc:
        return _error(args, args.store, exc)
    if args.json:
        print(json.dumps(info))
        return 0
    print(
        f"{info['path']}: {info['name']!r}  level of theory: {info['level_of_theory'] or '?'}  "
        f"code: {info['code'] or '?'}"
    )
    aps = info["atoms_per_structure"] or {}
    print(
        f"  {info['n_structures']} structures, {info['n_atoms']} atoms "
        f"({aps.get('min')}-{aps.get('max')} per structure, mean {aps.get('mean', 0):.1f}); "
        f"{info['periodic']} fully periodic"
    )
    print(f"  elements ({len(info['elements'])}): {' '.join(info['elements'])}")
    print("  labels: " + ", ".join(f"{k} {v}/{info['n_structures']}" for k, v in info["has"].items() if v))
    if "energy_per_atom" in info:
        e = info["energy_per_atom"]
        print(f"  energy/atom (eV): mean {e['mean']:.4f} std {e['std']:.4f} min {e['min']:.4f} max {e['max']:.4f}")
    if "forces" in info:
        f = info["forces"]
        print(
            f"  forces (eV/A): rms component {f['rms_component']:.4f}, mean |F| {f['mean_norm']:.4f}, "
            f"max |F| {f['max_norm']:.3f}"
        )
    if "stress" in info:
        s = info["stress"]
        print(f"  stress (eV/A^3): rms component {s['rms_component']:.5f}, max |s| {s['max_abs']:.5f}")
    groups = info["groups"]
    print(
        f"  {info['n_groups']} groups: "
        + ", ".join(f"{g or '(none)'} {n}" for g, n in list(groups.items())[:12])
        + (" ..." if info["n_groups"] > 12 else "")
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    from gfm_ase.data.stats import check_store
    from gfm_ase.data.store import Store, StoreError

    try:
        store = Store(args.store)
        problems = check_store(
            store,
            min_distance=args.min_distance,
            max_force=args.max_force,
            min_distance_factor=args.min_distance_factor,
            progress=not args.no_progress,
        )
    except (StoreError, OSError, KeyError, ValueError) as exc:
        return _error(args, args.store, exc)
    for level, msg in problems:
        print(f"{args.store}: {level}: {msg}")
    n_err = sum(level == "error" for level, _ in problems)
    n_warn = len(problems) - n_err
    print(f"{len(store)} structures checked: {n_err} error(s), {n_warn} warning(s)")
    return 1 if n_err or (args.strict and n_warn) else 0


def run_split(args: argparse.Namespace) -> int:
    from gfm_ase.fileio import atomic_write_bytes
    from gfm_ase.data.splits import split_indices
    from gfm_ase.data.store import Store, StoreError

    try:
        store = Store(args.store)
        splits = split_indices(store, tuple(args.fractions), seed=args.seed, by=args.by)
    except (StoreError, OSError, KeyError, ValueError) as exc:
        return _error(args, args.store, exc)
    doc = {
        "store": str(Path(args.store)),
        "name": store.attrs.get("name"),
        "n_structures": len(store),
        "seed": args.seed,
        "by": args.by,
        "fractions": list(args.fractions),
        **{k: v.tolist() for k, v in splits.items()},
    }
    atomic_write_bytes(Path(args.output), json.dumps(doc).encode())
    print(f"{args.output}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from gfm_ase.data.export import ExportError, check_target, export_store, read_split_part
    from gfm_ase.data.store import Store, StoreError

    if (args.split is None) != (args.part is None):
        return _error(args, None, ExportError("--split and --part go together (a split file and the part to write)"))
    try:
        check_target(args.output, args.overwrite)  # before the store is opened
        store = Store(args.store)
        indices = None if args.split is None else read_split_part(args.split, args.part, len(store))
        n = export_store(store, args.output, overwrite=args.overwrite, indices=indices)
    except ExportError as exc:
        return _error(args, None, exc)
    except (StoreError, OSError, KeyError, ValueError) as exc:
        return _error(args, args.store, exc, f" (nothing was written to {args.output})")
    print(f"wrote {n} structures to {args.output}")
    return 0
