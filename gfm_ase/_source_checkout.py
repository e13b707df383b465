"""Import names of a source checkout that was never installed.

The folders ``pretraining/``, ``finetune_zoo/`` and ``validation/`` sit beside ``gfm_ase/`` in the repository and
install as ``gfm_ase.pretraining``, ``gfm_ase.finetune_zoo`` and ``gfm_ase.validation`` through the
``[tool.setuptools.package-dir]`` table of ``pyproject.toml`` (docs/architecture.md, "Naming"). An installed wheel
has them inside ``gfm_ase/``; an editable install's own finder maps them. A checkout used only through
``PYTHONPATH`` (a bare GPU image, ``python -S``) has neither: :class:`CheckoutFinder`, placed last on
``sys.meta_path``, applies the same table there. It answers only for the ``gfm_ase.*`` names of that table,
only when no other finder found them, and only when this ``gfm_ase`` is the one of a gfm-ase checkout. It imports
nothing itself.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def package_dir() -> dict[str, Path]:
    """``{"gfm_ase.pretraining": <checkout>/pretraining, ...}`` from the checkout's pyproject.toml; empty for an
    installed wheel (no pyproject.toml beside ``gfm_ase/``) and on Python 3.10 (no tomllib)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return {}
    try:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    except (OSError, ValueError):
        return {}
    if project.get("project", {}).get("name") != "gfm-ase":
        return {}
    table = project.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return {
        name: ROOT / folder
        for name, folder in table.items()
        if name.startswith("gfm_ase.") and (ROOT / folder / "__init__.py").is_file()
    }


class CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds the mapped packages of :func:`package_dir` (their submodules then load through their ``__path__``)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("gfm_ase."):
            return None
        folder = package_dir().get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def install() -> None:
    """Append one :class:`CheckoutFinder` to ``sys.meta_path`` (idempotent; last, so installed packages win)."""
    if not any(isinstance(f, CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.append(CheckoutFinder())


def link_tree(dest: str | Path) -> Path:
    """Build ``dest/gfm_ase``: the installed layout of this checkout as symbolic links (the entries of ``gfm_ase/``
    plus each mapped folder under its installed name). Type checkers do not run import hooks, so ``make lint`` runs
    mypy there to check the whole installed package under its real module names. Returns ``dest``."""
    dest = Path(dest)
    tree = dest / "gfm_ase"
    if tree.exists() or tree.is_symlink():
        for entry in tree.iterdir():
            entry.unlink()
    tree.mkdir(parents=True, exist_ok=True)
    for entry in sorted((ROOT / "gfm_ase").iterdir()):
        if entry.name != "__pycache__":
            (tree / entry.name).symlink_to(entry)
    for name, folder in package_dir().items():
        (tree / name.split(".", 1)[1]).symlink_to(folder, target_is_directory=True)
    return dest
