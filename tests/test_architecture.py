"""The import rules of docs/architecture.md, checked on the source (import statements, including the ones inside
functions): lower layers never import the layers built on them, and consumers load models through the runtime."""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("gfm_ase", "pretraining", "finetune_zoo", "validation")


def imports_of(package: str) -> dict[str, set[str]]:
    """module file -> the project modules it imports."""
    base = REPO / package.replace(".", "/")
    paths = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    out = {}
    for path in paths:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        out[str(path.relative_to(REPO))] = {n for n in names if n.split(".")[0] in PROJECT}
    return out


def violations(package: str, allowed: tuple[str, ...]) -> list[str]:
    ok = (package, *allowed)
    return [f"{f} imports {n}" for f, names in imports_of(package).items() for n in sorted(names)
            if not any(n == a or n.startswith(a + ".") for a in ok)]


@pytest.mark.parametrize("package, allowed", [
    # the model: configs, element tables and the graph type only (never runtime, calculator, screening, trainer)
    ("gfm_ase.model", ("gfm_ase.config", "gfm_ase.elements", "gfm_ase.graph", "gfm_ase.units")),
    # the runtime: the model, its files and the graph type
    ("gfm_ase.runtime", ("gfm_ase.model", "gfm_ase.graph", "gfm_ase.config", "gfm_ase.checkpoint", "gfm_ase.hub",
                         "gfm_ase.registry", "gfm_ase.elements")),
    # consumers of the runtime: no model files, hub or checkpoint of their own
    # (gfm_ase.dispersion: the D3 add-on, which imports only gfm_ase.units)
    ("gfm_ase.calculator", ("gfm_ase.runtime", "gfm_ase.graph", "gfm_ase.model.gfm", "gfm_ase.dispersion")),
    ("gfm_ase.simulation", ("gfm_ase.runtime", "gfm_ase.graph", "gfm_ase.model", "gfm_ase.elements",
                            "gfm_ase.units", "gfm_ase.dispersion")),
    ("gfm_ase.dispersion", ("gfm_ase.units",)),
])
def test_layer_imports(package, allowed):
    assert violations(package, allowed) == []


def test_core_never_imports_the_top_level_folders():
    """pretraining/, finetune_zoo/ and validation/ build on gfm_ase; their `gfm` commands reach the CLI through
    entry points (pyproject.toml, gfm_ase/cli/commands.py), gfm_ase never imports them."""
    bad = [f"{f} imports {n}" for f, names in imports_of("gfm_ase").items() for n in sorted(names)
           if n.split(".")[0] in ("pretraining", "finetune_zoo", "validation")]
    assert bad == []


def test_core_never_names_their_modules():
    """Nor does it import them by name (importlib, a list of module paths, exception names): no string in gfm_ase
    other than a docstring is a module path into those packages."""
    top = re.compile(r"^(pretraining|finetune_zoo|validation)[.:]\w")
    bad = []
    for path in sorted((REPO / "gfm_ase").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        bad += [f"{path.relative_to(REPO)}:{n.lineno}: {n.value!r}" for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
                and top.match(n.value)]
    assert bad == []


def test_screening_loads_models_through_the_runtime():
    bad = [f"{f} imports {n}" for f, names in imports_of("gfm_ase.screening").items() for n in sorted(names)
           if n in ("gfm_ase.checkpoint", "gfm_ase.hub") or n.startswith(("gfm_ase.checkpoint.", "gfm_ase.hub."))]
    assert bad == []


def test_shipped_top_level_packages():
    """The top-level import names the distribution installs (docs/architecture.md, Naming): gfm_ase and the three
    folders that are to move under it; a new top-level name (benchmarks, tests, examples) needs this test changed."""
    import tomllib

    from setuptools import find_packages

    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = find_packages(str(REPO), include=find["include"], exclude=find.get("exclude", ()))
    assert {p.split(".")[0] for p in shipped} == {"gfm_ase", "pretraining", "finetune_zoo", "validation"}
