"""`gfm pretrain CONFIG -o OUTDIR [--resume]`: run a pretraining config (single process, torchrun or MPI)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    from gfm_ase.cli.errors import expect

    # the pretraining errors whose message is the whole story (also raised by `gfm committee`/`pretrain-router`)
    expect(
        "gfm_ase.pretraining.config.ConfigError",
        "gfm_ase.pretraining.errors.TrainingError",
        "gfm_ase.pretraining.distributed.DistributedError",
    )
    p = sub.add_parser(
        "pretrain",
        help="pretrain a multi-head model on several datasets (single/multi-process)",
        description="Train the model described by CONFIG (YAML). Launch with torchrun or mpiexec "
        "for several processes (see pretraining/launch/README.md).",
    )
    p.add_argument("config", nargs="?", help="pretraining YAML config")
    p.add_argument("-o", "--outdir", help="output directory (checkpoints, logs, final model)")
    p.add_argument("--resume", action="store_true", help="continue from OUTDIR's latest checkpoint")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config option, e.g. --set sampling.epochs=2 (YAML value syntax; repeatable)",
    )
    p.add_argument("--show-options", action="store_true", help="list every config option with its meaning and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from gfm_ase.cli.errors import report
    from gfm_ase.pretraining.config import ConfigError, describe_options, load_config

    if args.show_options:
        print("\n".join(describe_options()))
        return 0
    if not args.config or not args.outdir:
        print("gfm pretrain: error: CONFIG and -o OUTDIR are required", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {}  # YAML values
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"gfm pretrain: error: --set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[key.strip()] = yaml.safe_load(value)
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        return report("gfm pretrain", exc, getattr(args, "debug", False))
    from gfm_ase.checkpoint import CheckpointError
    from gfm_ase.data import StoreError
    from gfm_ase.pretraining.distributed import DistributedError
    from gfm_ase.pretraining.trainer import Trainer, TrainingError

    trainer = None
    try:
        trainer = Trainer(cfg, args.outdir, resume=args.resume)
        trainer.fit()
    except (TrainingError, CheckpointError, DistributedError, StoreError, OSError, ValueError) as exc:
        return report("gfm pretrain", exc, getattr(args, "debug", False))
    finally:
        if trainer is not None:
            trainer.env.shutdown()
    return 0
