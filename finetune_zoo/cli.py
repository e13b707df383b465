"""``gfm finetune`` (one fine-tuning run) and ``gfm finetune-zoo`` (the task zoo, see finetune_zoo/run.py)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gfm_ase.finetune_zoo.config import FinetuneConfig

DEFAULT_DATA_DIR = "work_data/stores"  # where --data-dir looks when none is given (the corpus scripts' --out)


def register(sub: argparse._SubParsersAction) -> None:
    from gfm_ase.cli.errors import expect
    from gfm_ase.hub import default_model_help

    expect("gfm_ase.finetune_zoo.finetuning.FinetuneError")

    p = sub.add_parser(
        "finetune",
        help="fine-tune a pretrained model on a new dataset (new head, frozen/full/continue/replay)",
        description="Fine-tune MODEL on TRAIN (a gfm-ase store, see `gfm data convert`). Writes OUTDIR/final (the "
        "model with every head; GFMCalculator(model=OUTDIR, head=NAME)), OUTDIR/metrics.json "
        "(validation/test errors, the from-scratch baseline, the forgetting report) and logs.",
    )
    p.add_argument(
        "--from",
        dest="model",
        required=False,
        metavar="MODEL",
        help="pretrained model: built-in name, model directory, training OUTDIR or URL " + default_model_help(),
    )
    p.add_argument("--train", metavar="TRAIN.h5", help="training store")
    p.add_argument(
        "--val", metavar="VAL.h5", help="validation store (default: split off val_fraction = 10 %% of TRAIN, seeded)"
    )
    p.add_argument("--test", metavar="TEST.h5", help="test store (optional; reported beside validation)")
    p.add_argument("--head", help="head to train: a new name, or an existing head with --strategy continue/replay")
    p.add_argument(
        "--strategy",
        choices=["frozen", "full", "continue", "replay"],
        help="frozen: new head on the frozen trunk; full: new head + trunk at a lower LR; continue: an "
        "existing head + trunk; replay: full with a share of pretraining data in every batch "
        "(default: full)",
    )
    p.add_argument("--steps", type=int, help="optimizer steps (default 300)")
    p.add_argument("--batch-size", type=int, help="structures per step (default 8)")
    p.add_argument(
        "--lr",
        type=float,
        help="peak learning rate of new weights: a new head, embeddings of new elements (default 2e-3)",
    )
    p.add_argument(
        "--trunk-lr-factor",
        type=float,
        help="LR of pretrained weights (trunk, continued or replayed heads) = lr * this (default 0.1)",
    )
    p.add_argument(
        "--baseline",
        choices=["none", "scratch"],
        help="scratch: also train the same architecture from scratch with the same budget",
    )
    p.add_argument("--n-train", type=int, help="use a seeded subset of this many training structures")
    p.add_argument("--level-of-theory", help="metadata of the new head, e.g. 'PBE/def2-SVP (PySCF)'")
    p.add_argument("--code", help="program that produced the labels (new head metadata)")
    p.add_argument(
        "--replay-config",
        metavar="PRETRAIN.yaml",
        help="pretraining config naming the stores and splits of the model's heads (default: the config "
        "recorded in the model, then each head's metadata)",
    )
    p.add_argument("--replay-fraction", type=float, help="replay: share of every batch from pretraining data")
    p.add_argument(
        "--data-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="folder to look for pretraining stores by file name when their recorded path is missing "
        f"(repeatable; default: {DEFAULT_DATA_DIR}, relative to the current directory)",
    )
    p.add_argument(
        "--config",
        metavar="FINETUNE.yaml",
        help="YAML with fine-tuning options (see --show-options); command-line flags override it",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any option, e.g. --set loss.stress_weight=1 (YAML value syntax; repeatable)",
    )
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument("--show-options", action="store_true", help="list every fine-tuning option and exit")
    p.add_argument("-o", "--outdir", help="output directory (must not hold a run)")
    p.set_defaults(func=run_finetune)


def register_zoo(sub: argparse._SubParsersAction) -> None:
    z = sub.add_parser(
        "finetune-zoo",
        help="run the fine-tuning zoo (tasks in finetune_zoo/tasks) and write its results table",
        description="Run fine-tuning tasks (fine-tuned vs from-scratch, learning curves, forgetting) "
        "and write a Markdown results table and learning-curve PNGs.",
    )
    from gfm_ase.finetune_zoo.run import add_arguments

    add_arguments(z)
    z.set_defaults(func=run_zoo)


# flag -> option (dotted: the head, optimizer, EMA and loss are pretraining's pieces, finetune_zoo/config.py)
FLAG_OPTIONS = {
    "head": "head.name",
    "strategy": "strategy",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "optim.lr",
    "trunk_lr_factor": "optim.trunk_lr_factor",
    "baseline": "baseline",
    "level_of_theory": "head.level_of_theory",
    "code": "head.code",
    "replay_fraction": "replay_fraction",
    "device": "device",
}


def build_config(args: argparse.Namespace) -> FinetuneConfig:
    """FinetuneConfig from --config YAML, then flags, then --set overrides."""
    import yaml

    from gfm_ase.finetune_zoo.config import FinetuneConfig
    from gfm_ase.pretraining.config import _set_dotted

    doc: dict[str, Any] = {}
    if args.config:
        with open(args.config) as f:
            doc = yaml.safe_load(f) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{args.config} must hold a mapping of options")
    if isinstance(doc.get("head"), str):  # `head: NAME` is short for `head: {name: NAME}`
        doc["head"] = {"name": doc["head"]}
    for flag, key in FLAG_OPTIONS.items():
        v = getattr(args, flag, None)
        if v is not None:
            _set_dotted(doc, key, v)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        _set_dotted(doc, key.strip(), yaml.safe_load(value))
    return FinetuneConfig(**doc)


def command_line(args: argparse.Namespace) -> str:
    """The ``gfm finetune`` command equivalent to the parsed ``args`` (recorded in metrics.json)."""
    flags = {
        "model": "--from",
        "train": "--train",
        "val": "--val",
        "test": "--test",
        "head": "--head",
        "strategy": "--strategy",
        "steps": "--steps",
        "batch_size": "--batch-size",
        "lr": "--lr",
        "trunk_lr_factor": "--trunk-lr-factor",
        "baseline": "--baseline",
        "n_train": "--n-train",
        "level_of_theory": "--level-of-theory",
        "code": "--code",
        "replay_config": "--replay-config",
        "replay_fraction": "--replay-fraction",
        "config": "--config",
        "device": "--device",
        "outdir": "-o",
    }
    parts = ["gfm", "finetune"]
    for key, flag in flags.items():
        v = getattr(args, key, None)
        if v is not None:
            parts += [flag, str(v)]
    for d in args.data_dir:
        parts += ["--data-dir", str(d)]
    for item in args.set:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in parts)


def run_finetune(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gfm_ase.finetune_zoo.config import describe_options
    from gfm_ase.cli.errors import report

    if args.show_options:
        print("\n".join(describe_options()))
        return 0
    missing = [f for f, v in (("--train", args.train), ("-o OUTDIR", args.outdir)) if not v]
    if missing:
        print(f"gfm finetune: error: {', '.join(missing)} required", file=sys.stderr)
        return 2
    try:
        cfg = build_config(args)
    except (ValidationError, ValueError, OSError) as exc:
        return report("gfm finetune", exc, getattr(args, "debug", False))
    from gfm_ase.finetune_zoo.finetuning import FinetuneError, finetune
    from gfm_ase.checkpoint import CheckpointError
    from gfm_ase.hub import default_model
    from gfm_ase.pretraining.trainer import TrainingError

    if args.model is None:
        args.model = default_model()  # recorded in the command line of metrics.json as --from NAME
    try:
        finetune(
            args.model,
            args.train,
            outdir=args.outdir,
            config=cfg,
            val=args.val,
            test=args.test,
            n_train=args.n_train,
            replay_config=args.replay_config,
            data_dirs=args.data_dir or [DEFAULT_DATA_DIR],
            command=command_line(args),
        )
    except (FinetuneError, TrainingError, CheckpointError, OSError, IndexError, ValueError) as exc:
        return report("gfm finetune", exc, getattr(args, "debug", False))
    return 0


def run_zoo(args: argparse.Namespace) -> int:
    from gfm_ase.finetune_zoo.run import main_from_args

    return main_from_args(args)
