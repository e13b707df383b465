"""The ``gfm`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)`` which adds its parser and sets
``func`` on it (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
Modules are imported lazily-by-list so that a broken optional subsystem cannot break the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (module path) in the order they appear in `gfm --help`
SUBCOMMAND_MODULES = [
    "gfm_ase.cli.info",
    "gfm_ase.cli.data",
    "pretraining.cli",
    "finetune_zoo.cli",
    "validation.cli",
    "gfm_ase.cli.screen",
    "gfm_ase.cli.lammps",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gfm",
        description="gfm-ase: multi-task atomistic graph foundation models",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # only skip when the subcommand module itself is absent, never hide a broken import inside it
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    rc = args.func(args)
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
