"""The ``gfm`` command line: one entry point, one module per subcommand.

The subcommands are a registry: the entry points of the group ``gfm_ase.commands`` (:mod:`gfm_ase.cli.commands`),
declared in ``pyproject.toml``. Each names a function ``register(subparsers)`` which adds its command's parser and
sets ``func`` on it (a callable taking the parsed ``argparse.Namespace`` and returning an exit code). The packages
built on gfm_ase (``pretraining``, ``finetune_zoo``, ``validation``) register theirs the same way, so this package
never imports them; a command that fails to load is listed as unavailable and reports why when run.
Every expected failure ends as one line ``gfm <command>: error: ...`` with exit status 2 (``--debug``: traceback),
see :mod:`gfm_ase.cli.errors`.
"""

from __future__ import annotations

import argparse
import sys

from gfm_ase.cli.commands import GROUP, Unavailable, register_all
from gfm_ase.cli.errors import add_debug_everywhere, is_expected, program_name, report


NO_COMMANDS = (
    f"no commands are installed (entry point group {GROUP} is empty): install the package, e.g. "
    "pip install -e . in the checkout"
)


def _build() -> tuple[argparse.ArgumentParser, list[str], dict[str, Unavailable]]:
    parser = argparse.ArgumentParser(
        prog="gfm",
        description="gfm-ase: multi-task atomistic graph foundation models",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    broken = register_all(sub)
    add_debug_everywhere(parser)
    return parser, list(sub.choices), broken


def build_parser() -> argparse.ArgumentParser:
    """The ``gfm`` parser with every installed command (unavailable ones listed as such)."""
    return _build()[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, commands, broken = _build()
    if not commands:
        print(f"gfm: error: {NO_COMMANDS}", file=sys.stderr)
        return 2
    command = next((a for a in argv if not a.startswith("-")), None)  # the root parser's options are flags only
    if command in broken:  # before parsing: the placeholder knows none of the command's options
        return broken[command].report(debug="--debug" in argv)
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
