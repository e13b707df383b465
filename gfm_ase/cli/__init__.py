"""The ``gfm`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)`` which adds its parser and sets
``func`` on it (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
Modules are imported lazily-by-list so that a broken optional subsystem cannot break the others.
Every expected failure ends as one line ``gfm <command>: error: ...`` with exit status 2 (``--debug``: traceback),
see :mod:`gfm_ase.cli.errors`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from gfm_ase.cli.errors import add_debug_everywhere, is_expected, program_name, report

# (module path) in the order they appear in `gfm --help`
SUBCOMMAND_MODULES = [
    "gfm_ase.cli.info",
    "gfm_ase.cli.models",
    "gfm_ase.cli.data",
    "pretraining.cli",
    "pretraining.committee",
    "pretraining.router",
    "finetune_zoo.cli",
    "validation.cli",
    "gfm_ase.cli.screen",
    "gfm_ase.cli.eval",
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
    add_debug_everywhere(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except Exception as exc:  # the one error path: expected failures are one line and exit status 2
        if not is_expected(exc):
            raise
        return report(program_name(args), exc, debug=getattr(args, "debug", False))
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
