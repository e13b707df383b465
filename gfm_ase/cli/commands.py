"""The registry of ``gfm`` subcommands: the entry points of the group ``gfm_ase.commands``.

A distribution offers a command with one line in its ``pyproject.toml``::

    [project.entry-points."gfm_ase.commands"]
    pretrain = "gfm_ase.pretraining.cli:register"

The name is the command; the value is a function ``register(subparsers)`` that adds that command's parser (with
``subparsers.add_parser(name, ...)``) and sets ``func`` on it: a callable taking the parsed namespace and returning
an exit code. ``gfm_ase`` knows its commands only through these entry points (the installed metadata and, when it
runs from a source checkout, that checkout's ``pyproject.toml``), so it never imports the packages built on it
(``pretraining``, ``finetune_zoo``, ``validation``) otherwise. Changed entry points need a reinstall of the metadata
(``pip install -e .``, which ``make`` does when ``pyproject.toml`` changes).

A command whose entry point fails to load, fails in ``register``, registers another name or is declared twice with
different targets stays listed in ``gfm --help`` as unavailable; running it prints one line naming the entry point and
the cause and exits with status 2 (``--debug``: the traceback). The other commands are not affected.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, distributions
from pathlib import Path

GROUP = "gfm_ase.commands"


@dataclass(frozen=True)
class Command:
    """One entry point of :data:`GROUP` and the distribution that declares it."""

    name: str
    value: str
    dist: str

    @property
    def origin(self) -> str:
        return f"entry point '{self.name} = {self.value}' of {self.dist}"


def _dist_label(dist: Distribution) -> str:
    return f"{dist.metadata['Name']} {dist.version}"


def _installed() -> list[tuple[EntryPoint, str, str]]:
    """(entry point, declared by, metadata folder) of every installed distribution on ``sys.path``."""
    return [
        (ep, _dist_label(dist), str(dist.locate_file("")))
        for dist in distributions()
        for ep in dist.entry_points
        if ep.group == GROUP
    ]


def _checkout() -> list[tuple[EntryPoint, str, str]]:
    """The commands declared in the ``pyproject.toml`` of the source checkout this ``gfm_ase`` runs from (none for
    an installed wheel): ``python -m gfm_ase.cli`` works from a checkout on ``PYTHONPATH`` that was never installed.
    Needs Python >= 3.11 (tomllib); older ones rely on the installed metadata."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return []
    path = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        project = tomllib.loads(path.read_text()).get("project", {})
    except (OSError, ValueError):
        return []
    if project.get("name") != "gfm-ase":
        return []
    entries = project.get("entry-points", {}).get(GROUP, {})
    label = f"the gfm-ase source checkout {project.get('version', '')}".rstrip()
    return [(EntryPoint(name, value, GROUP), label, str(path)) for name, value in entries.items()]


def discover() -> tuple[list[tuple[Command, EntryPoint]], list[tuple[Command, str]]]:
    """The commands sorted by name, and the ones declared with different targets (and why).

    Every installed distribution on ``sys.path`` counts, not only the first of a name: a stale ``gfm_ase.egg-info``
    left in the checkout by an old build (first on ``sys.path`` when Python runs there) must not hide the commands
    of the installed metadata. The source checkout's ``pyproject.toml`` counts too (:func:`_checkout`). The same
    declaration seen more than once (one project, several metadata folders) is one command.
    """
    by_name: dict[str, dict[str, list[tuple[EntryPoint, str, str]]]] = {}
    for ep, label, where in _installed() + _checkout():
        by_name.setdefault(ep.name, {}).setdefault(ep.value, []).append((ep, label, where))
    found, clashes = [], []
    for name in sorted(by_name):
        targets = by_name[name]
        (first_value, first_rows), *_ = targets.items()
        first = Command(name, first_value, first_rows[0][1])
        if len(targets) == 1:
            found.append((first, first_rows[0][0]))
        else:
            origins = " and ".join(f"'{value}' ({rows[0][1]}, {rows[0][2]})" for value, rows in targets.items())
            clashes.append(
                (
                    first,
                    f"the command is declared with different targets: {origins} (an edited pyproject.toml needs "
                    "a reinstall: pip install -e .)",
                )
            )
    return found, clashes


def _remove(sub: argparse._SubParsersAction, names: set[str]) -> None:
    """Undo a partial registration (a register function that added its parser, then failed)."""
    for name in names:
        sub._name_parser_map.pop(name, None)
    sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest not in names]


@dataclass(frozen=True)
class Unavailable:
    """A command that could not be registered, and why."""

    command: Command
    reason: str
    trace: str = ""

    def report(self, debug: bool = False) -> int:
        """One line on stderr naming the entry point and the cause (and the traceback with ``debug``); exit status."""
        if debug and self.trace:
            print(self.trace, file=sys.stderr, end="")
        print(
            f"gfm {self.command.name}: error: the command could not be loaded ({self.command.origin}): {self.reason}",
            file=sys.stderr,
        )
        return 2


def _list_unavailable(sub: argparse._SubParsersAction, bad: Unavailable) -> None:
    """Keep the command in ``gfm --help`` (marked unavailable); :func:`gfm_ase.cli.main` reports it when run."""
    p = sub.add_parser(bad.command.name, help=f"(unavailable: {bad.reason})", add_help=False)
    p.set_defaults(func=lambda args: bad.report(getattr(args, "debug", False)))


def _cause(exc: BaseException, value: str) -> str:
    """The load failure in one line; when the entry point's own top-level package was found but not its module, the
    package Python found instead is named (another distribution's package of the same name, docs/architecture.md)."""
    from gfm_ase.cli.errors import one_line

    text = f"{type(exc).__name__}: {one_line(exc)}"
    module = value.split(":")[0]
    top = module.split(".")[0]
    found = sys.modules.get(top)
    missing = getattr(exc, "name", None) or ""
    # the entry point's own module (or a package on its path) is what is missing, below a top-level package that
    # was found: the signature of a same-named package of another distribution (not a missing dependency)
    if (
        isinstance(exc, ImportError)
        and found is not None
        and missing != top
        and (module + ".").startswith(missing + ".")
    ):
        where = getattr(found, "__file__", None) or list(getattr(found, "__path__", []))
        text += f" (the '{top}' Python imported is {where}: is it another package of that name?)"
    return text


def register_all(sub: argparse._SubParsersAction) -> dict[str, Unavailable]:
    """Register every installed command on ``sub``; returns the unavailable ones by name."""
    found, clashes = discover()
    broken = {cmd.name: Unavailable(cmd, reason) for cmd, reason in clashes}
    for cmd, ep in found:
        before = set(sub.choices)
        try:
            register: Callable[[argparse._SubParsersAction], None] = ep.load()
            register(sub)
        except Exception as exc:  # a broken plugin must not take the other commands down
            _remove(sub, set(sub.choices) - before)
            broken[cmd.name] = Unavailable(cmd, _cause(exc, cmd.value), traceback.format_exc())
            continue
        added = set(sub.choices) - before
        own = sub.choices.get(cmd.name) if cmd.name in added else None
        if own is None or any(sub.choices[n] is not own for n in added):  # aliases share the command's parser
            _remove(sub, added)
            broken[cmd.name] = Unavailable(
                cmd,
                f"its register function added {sorted(added) or 'no command'} "
                f"instead of '{cmd.name}' (and its aliases)",
            )
    for name in sorted(broken):
        if name not in sub.choices:
            _list_unavailable(sub, broken[name])
    return broken


__all__ = ["GROUP", "Command", "Unavailable", "discover", "register_all"]
