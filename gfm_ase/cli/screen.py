"""`gfm screen INPUT... -o OUT`: batched, resumable screening with one head of a model."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gfm_ase.screening.config import ScreenConfig


def register(sub: argparse._SubParsersAction) -> None:
    from gfm_ase.cli.options import positive
    from gfm_ase.cli.options import add_dispersion_option
    from gfm_ase.hub import default_model_help

    p = sub.add_parser(
        "screen",
        help="evaluate many structures with one head (batched, resumable, sharded)",
        description="Screen structures with one head of a gfm-ase model. INPUTs: extxyz/xyz files, ASE databases "
        "(.db), gfm-ase HDF5 stores (.h5), CIF/POSCAR files or folders of them. OUT (.h5 or .parquet) "
        "gets one row per input structure (id = file name + ':' + index within the file). Rerunning "
        "the same command after an interruption completes OUT without duplicates. Under torchrun, "
        "mpirun or srun every rank screens its own shard and rank 0 writes OUT.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="structure files or folders")
    p.add_argument("-o", "--out", required=True, help="output file (.h5/.hdf5 or .parquet)")
    p.add_argument(
        "--model",
        default=None,
        help=f"built-in name, model directory, training output dir or URL {default_model_help()}",
    )
    p.add_argument("--head", default=None, help="head (level of theory); optional for single-head models")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float64", "float32", "bfloat16"],
        help="precision (bfloat16: bf16 per-edge work; node layers, heads and sums in float32)",
    )
    p.add_argument(
        "--properties",
        nargs="+",
        default=["energy"],
        choices=["energy", "forces", "stress", "energies"],
        help="what to store besides energy and energy per atom",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    p.add_argument(
        "--max-atoms", type=positive(int), default=None, help="atoms per batch (default: from model and device)"
    )
    p.add_argument(
        "--max-edges", type=positive(int), default=None, help="edges per batch (default: from model and device)"
    )
    p.add_argument(
        "--max-memory",
        type=positive(float),
        default=None,
        help="GiB one batch may use (default: a fraction of free device memory / available RAM)",
    )
    p.add_argument(
        "--oversize",
        default="alone",
        choices=["alone", "refuse"],
        help="structures above the batch budget: run alone or refuse (above the memory limit: refused)",
    )
    p.add_argument(
        "--allow-unknown-elements",
        action="store_true",
        help="evaluate elements outside the head's training data instead of refusing them",
    )
    p.add_argument(
        "--min-distance-factor",
        type=_factor,
        default=None,
        metavar="F",
        help="refuse structures with two atoms (periodic images included) closer than F x the sum of "
        "their covalent radii, or a cell too small for its atoms (error rows); 0 disables "
        "(default: 0.4, see docs/bad-input.md)",
    )
    p.add_argument(
        "--workers",
        type=positive(int),
        default=None,
        help="graph-building threads (default: 1 on CPU, up to 8 with a GPU)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the trunk (pays off for long screens)")
    add_dispersion_option(p)
    p.add_argument("--no-uncertainty", action="store_true", help="skip the head-family spread")
    p.add_argument(
        "--hull-references",
        nargs="+",
        default=None,
        metavar="REF",
        help="competing phases (any INPUT format) for formation energies and energy above the hull",
    )
    p.add_argument(
        "--hull-energies",
        default="model",
        choices=["model", "stored"],
        help="energies of the hull references: evaluated with this model/head, or stored in the files",
    )
    p.add_argument(
        "--shortlist",
        type=positive(int, zero=True),
        default=0,
        metavar="K",
        help="write the K best structures to OUT.shortlist.csv",
    )
    p.add_argument(
        "--shortlist-by",
        default=None,
        help="column to rank by (default: e_above_hull, else formation energy, else energy per atom)",
    )
    p.add_argument("--chunk-rows", type=positive(int), default=4096, help="commit results every this many structures")
    p.add_argument("--chunk-seconds", type=positive(float), default=60.0, help="... or after this many seconds")
    p.add_argument("--rank", type=int, default=None, help="this process's rank (default: from the launcher)")
    p.add_argument("--world-size", type=int, default=None, help="number of ranks (default: from the launcher)")
    p.add_argument(
        "--wait-timeout",
        type=positive(float),
        default=None,
        help="seconds rank 0 waits for the other ranks before giving up (default: no limit)",
    )
    p.add_argument("--overwrite", action="store_true", help="discard an existing OUT or partial results")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


def _factor(text: str) -> float:
    from gfm_ase.graph.sanity import check_factor

    try:
        return check_factor(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# parsed options that are not screening options (the rest map one to one onto ScreenConfig.option_names())
NOT_OPTIONS = ("inputs", "out", "model", "head", "quiet", "no_uncertainty", "func", "debug", "command")


def config_from_args(args: argparse.Namespace) -> ScreenConfig:
    """The run's :class:`~gfm_ase.screening.config.ScreenConfig` from the parsed options, validated once."""
    from gfm_ase.screening.config import ScreenConfig

    names = set(ScreenConfig.option_names())
    options = {k: v for k, v in vars(args).items() if k in names}
    if options.get("min_distance_factor") is None:  # not given: the check's default
        options.pop("min_distance_factor", None)
    options["uncertainty"] = not args.no_uncertainty
    return ScreenConfig.from_options(**options)


def run(args: argparse.Namespace) -> int:
    from gfm_ase.cli.errors import report
    from gfm_ase.screening.output import OutputError
    from gfm_ase.screening.readers import InputError
    from gfm_ase.screening.screen import _log_default, screen

    try:
        config = config_from_args(args)
        summary = screen(
            args.inputs,
            args.out,
            model=args.model,
            head=args.head,
            config=config,
            log=None if args.quiet else _log_default,
        )
    except (InputError, OutputError, ValueError, OSError) as exc:
        return report("gfm screen", exc, getattr(args, "debug", False))
    if summary.get("complete") and summary.get("errors"):
        print(f"gfm screen: {summary['errors']} structures could not be evaluated (see the 'error' column)")
    return 0
