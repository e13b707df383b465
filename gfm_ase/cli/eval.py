"""`gfm eval INPUT... -o OUT.extxyz|OUT.db`: predictions beside the labels, per-element error tables."""

from __future__ import annotations

import argparse

import sys


def register(sub: argparse._SubParsersAction) -> None:
    from gfm_ase.cli.data import FORMAT_CHOICES
    from gfm_ase.cli.options import positive
    from gfm_ase.cli.options import add_dispersion_option
    from gfm_ase.hub import default_model_help

    p = sub.add_parser(
        "eval",
        help="predict energy, forces and stress beside the labels (extxyz / ASE db) with error tables",
        description="Evaluate every structure of the INPUTs with one head and write OUT (.extxyz/.xyz or .db, from "
        "the suffix) holding the structures, their labels under the standard names (energy, forces, "
        "stress, magmoms; extxyz: plain keys, db: the rows' calculator), the other keys of frames ASE "
        "reads (config_type, REF_energy, ...; db: data) and the predictions under "
        "PREFIX + energy/forces/stress (ASE units; stress Voigt xx yy zz yz xz xy, tension positive, "
        "only for periodic cells). INPUTs: gfm-ase stores and anything `gfm data convert` reads. Where "
        "labels exist, per-element MAE/RMSE tables (energy per atom, force components, stress) are "
        "printed and, if asked, written as JSON/Markdown. An existing OUT is an error unless "
        "--overwrite; OUT appears only when complete.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="structure files, stores or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file (.extxyz, .xyz or .db)")
    p.add_argument("--prefix", default="gfm_", help="prefix of the prediction keys (default: gfm_)")
    p.add_argument(
        "--model",
        default=None,
        help=f"built-in name, model directory, training output dir or URL {default_model_help()}",
    )
    p.add_argument("--head", default=None, help="head (level of theory); optional for single-head models")
    p.add_argument(
        "--dtype", default="float32", choices=["float64", "float32", "bfloat16"], help="precision (default: float32)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    p.add_argument(
        "--format", default="auto", choices=FORMAT_CHOICES, help="input format (default: auto; stores are detected)"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="converter option of the input format (as in gfm data convert; gfm data formats lists them)",
    )
    p.add_argument(
        "--max-atoms", type=positive(int), default=None, help="atoms per batch (default: from model and device)"
    )
    p.add_argument(
        "--allow-unknown-elements",
        action="store_true",
        help="evaluate elements outside the head's training data instead of refusing them",
    )
    add_dispersion_option(p)
    p.add_argument("--errors-json", default=None, metavar="FILE.json", help="write the error tables as JSON")
    p.add_argument("--errors-md", default=None, metavar="FILE.md", help="write the error tables as Markdown")
    p.add_argument("--overwrite", action="store_true", help="replace existing OUT and error table files")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gfm_ase.cli.data import _parse_option
    from gfm_ase.evaluation.run import evaluate_files

    bad = [o for o in args.option if "=" not in o]
    if bad:
        raise ValueError(f"--option expects KEY=VALUE, got {bad[0]!r}")

    def log(msg: str) -> None:
        print(f"gfm eval: {msg}", file=sys.stderr)

    summary = evaluate_files(
        args.inputs,
        args.output,
        model=args.model,
        head=args.head,
        prefix=args.prefix,
        overwrite=args.overwrite,
        fmt=args.format,
        options=dict(_parse_option(o) for o in args.option),
        errors_json=args.errors_json,
        errors_markdown=args.errors_md,
        log=None if args.quiet else log,
        device=args.device,
        dtype=args.dtype,
        max_atoms=args.max_atoms,
        allow_unknown_elements=args.allow_unknown_elements,
        dispersion=args.dispersion,
    )
    if summary["unconverted"]:
        log(
            "labels the readers do not convert (copied into OUT as they are from files ASE reads, left out of the "
            "error tables): " + ", ".join(f"{k} in {v} structures" for k, v in sorted(summary["unconverted"].items()))
        )
    print(
        f"wrote {summary['n_structures']} structures with {args.prefix}energy/{args.prefix}forces/"
        f"{args.prefix}stress of head {summary['head']!r} to {args.output}"
    )
    if summary["markdown"] is not None:
        print(summary["markdown"])
    elif args.errors_json or args.errors_md:
        log("the inputs hold no labels: no error tables written")
    return 0
