"""The one error path of the ``gfm`` command line.

An *expected* failure (a bad file, model, option or device: the exception classes of :data:`EXPECTED`, plus the
ones a command's ``register`` function adds with :func:`expect`) ends a command with one line
``gfm <command>: error: <what>`` on stderr and exit status 2; ``--debug`` (accepted by every command) adds the
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback

EXIT_ERROR = 2

# exception classes (module.qualname) whose message is the whole story; subclasses count too. Names, not
# imports: the CLI must not import every subsystem to report the error of one. The packages built on gfm_ase
# (pretraining, finetune_zoo, validation) add theirs with expect() when their commands register.
EXPECTED = frozenset(
    {
        "builtins.ValueError",  # options and values checked by the code (includes DeviceError, StructureError)
        "builtins.OSError",  # missing/unreadable files and folders, h5py's "unable to open file"
        "gfm_ase.checkpoint.CheckpointError",
        "gfm_ase.data.store.StoreError",
        "gfm_ase.data.converters.base.ConversionError",
        "gfm_ase.screening.readers.InputError",
        "gfm_ase.screening.output.OutputError",
        "pydantic_core._pydantic_core.ValidationError",
    }
)


_ADDED: set[str] = set()


def expect(*names: str) -> None:
    """Count the exception classes ``names`` (``module.qualname``, e.g. ``"gfm_ase.pretraining.errors.X"``) as
    expected failures: a command's ``register`` function declares the errors of its package."""
    for name in names:
        module, _, qualname = name.rpartition(".")
        if not module or not qualname:
            raise ValueError(f"expect() takes 'module.qualname' of an exception class, got {name!r}")
    _ADDED.update(names)


def _loaded(name: str) -> type | None:
    """The class a name points to if its module is loaded (an exception's own module always is: a class
    re-exported from another module, e.g. after a file was split, is found through the name it is known by)."""
    module, _, attr = name.rpartition(".")
    found = getattr(sys.modules.get(module), attr, None)
    return found if isinstance(found, type) else None


def is_expected(exc: BaseException) -> bool:
    names = EXPECTED | _ADDED
    if any(f"{c.__module__}.{c.__qualname__}" in names for c in type(exc).__mro__):
        return True
    return any(cls is not None and isinstance(exc, cls) for cls in map(_loaded, names))


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (pydantic lists every problem: joined with '; ')."""
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":
        try:
            parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in errors()]
            return "invalid options: " + "; ".join(parts)
        except Exception:  # pragma: no cover - fall back to the message
            pass
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines)


def report(prog: str, exc: BaseException, debug: bool = False) -> int:
    """Print the one-line error (and the traceback with ``debug``); returns the exit status."""
    if debug:
        traceback.print_exception(exc)
    print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
    return EXIT_ERROR


def add_debug_everywhere(parser: argparse.ArgumentParser, _root: bool = True) -> None:
    """Give every (sub)command a ``--debug`` flag (kept where a command defines its own); ``gfm --debug CMD`` and
    ``gfm CMD --debug`` both work (a subcommand's flag does not reset the root's)."""
    if "--debug" not in parser._option_string_actions:
        parser.add_argument(
            "--debug",
            action="store_true",
            default=False if _root else argparse.SUPPRESS,
            help="print the traceback of an error",
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                add_debug_everywhere(sub, _root=False)


def program_name(args: argparse.Namespace) -> str:
    parts = ["gfm"] + [
        str(v)
        for v in (getattr(args, "command", None), getattr(args, "suite", None), getattr(args, "data_command", None))
        if v
    ]
    return " ".join(parts)


__all__ = [
    "EXIT_ERROR",
    "EXPECTED",
    "add_debug_everywhere",
    "expect",
    "is_expected",
    "one_line",
    "program_name",
    "report",
]
