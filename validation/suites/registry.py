"""The registry of validation suites: one :class:`Suite` per suite, holding both ways to run it.

A suite is a computation (``validation/<suite>.py``: ``run_<suite>(calc, ..., outdir)`` takes any ASE calculator
and writes ``summary.json`` and its plots) and this declaration of its inputs and outputs: the options of
``gfm validate <suite>``, the runner of a ``{suite: <name>, ...}`` entry of a ``gfm validate report`` YAML file, and
the suite's side-by-side tables of several calculators (``python -m gfm_ase.validation.compare``).
Each suite's declaration is a module of this package that calls :func:`register_suite`; the package imports them.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from gfm_ase.validation.output import SuiteResult


@dataclass(frozen=True)
class Comparison:
    """One side-by-side table of ``python -m gfm_ase.validation.compare``.

    ``table(runs)`` turns the loaded ``<folder>/summary.json`` of every calculator that has one (name -> JSON, in
    the order of the command line) into Markdown lines, printed under ``### <title>``. ``folder`` is the subfolder
    the suite's runs are read from (``validation/card_runs.sh`` names them: one suite may be run twice, e.g.
    ``errors`` and ``errors-aligned``); ``rank`` places the table among the tables of all suites (lower first).
    """

    folder: str
    title: str
    table: Callable[[dict[str, dict]], list[str]]
    rank: int


@dataclass(frozen=True)
class Suite:
    """One validation suite.

    ``add_arguments(parser)`` adds the suite's own options to ``gfm validate <name>`` (the calculator options and
    ``-o`` are common to every suite, ``validation/cli.py``); ``run_args(args, calculator)`` runs it from the parsed
    options, calling ``calculator()`` for the calculator once its inputs are read (a bad input file fails before a
    model is loaded); ``run_yaml(calc, options, base, outdir)`` runs one report entry (``options`` without the
    ``suite``/``name`` keys, a copy the runner may consume; relative paths are relative to ``base``, the YAML file's
    folder). ``compare`` holds the suite's :class:`Comparison` tables; it has no default, so every suite states
    them, ``()`` for a suite without one.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run_args: Callable[[argparse.Namespace, Callable[[], Any]], SuiteResult]
    run_yaml: Callable[[Any, dict, Path, Path], SuiteResult]
    compare: tuple[Comparison, ...]


SUITES: dict[str, Suite] = {}


def register_suite(suite: Suite) -> Suite:
    if suite.name in SUITES:
        raise ValueError(f"validation suite {suite.name!r} is already registered")
    if not isinstance(suite.compare, tuple) or not all(isinstance(c, Comparison) for c in suite.compare):
        raise TypeError(
            f"validation suite {suite.name!r}: compare must be a tuple of Comparison, got {suite.compare!r}"
        )
    folders = {c.folder for s in SUITES.values() for c in s.compare}
    taken = sorted(folders & {c.folder for c in suite.compare})
    if taken:
        raise ValueError(f"validation suite {suite.name!r}: comparison folder(s) {taken} already used by another suite")
    SUITES[suite.name] = suite
    return suite


@overload
def resolve_path(base: Path, value: list[Any] | tuple[Any, ...]) -> list[str]: ...


@overload
def resolve_path(base: Path, value: str | os.PathLike) -> str: ...


def resolve_path(base: Path, value: str | os.PathLike | list[Any] | tuple[Any, ...]) -> str | list[str]:
    """A path (or list of paths) of a YAML entry: ``~`` expanded, relative ones taken from ``base``."""
    if isinstance(value, (list, tuple)):
        return [resolve_path(base, v) for v in value]
    p = Path(os.path.expanduser(str(value)))
    return str(p if p.is_absolute() else base / p)


def keyword_options(fn: Callable, options: dict, exclude: tuple, where: str) -> dict:
    """``options`` as keyword arguments of ``fn``; an option that is not one of its keyword-only parameters is an
    error naming the suite and the allowed options."""
    params = inspect.signature(fn).parameters
    allowed = {k for k, p in params.items() if p.kind == p.KEYWORD_ONLY and k not in exclude}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    return dict(options)


__all__ = ["SUITES", "Comparison", "Suite", "keyword_options", "register_suite", "resolve_path"]
