"""The import rules of docs/architecture.md, checked on the source (import statements, including the ones inside
functions): lower layers never import the layers built on them, and consumers load models through the runtime."""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("gfm_ase",)
# the top-level folders that install under gfm_ase (pyproject.toml [tool.setuptools.package-dir])
MAPPED = {"gfm_ase.pretraining": "pretraining", "gfm_ase.finetune_zoo": "finetune_zoo",
          "gfm_ase.validation": "validation"}
OLD_NAMES = tuple(MAPPED.values())


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
           if n.split(".")[0] in OLD_NAMES or n.startswith(tuple(m + "." for m in MAPPED)) or n in MAPPED]
    assert bad == []


def test_core_never_names_their_modules():
    """Nor does it import them by name (importlib, a list of module paths, exception names): no string in gfm_ase
    other than a docstring is a module path into those packages."""
    top = re.compile(r"^(gfm_ase\.)?(pretraining|finetune_zoo|validation)[.:]\w")
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


def test_shipped_packages():
    """The distribution installs one top-level import name, gfm_ase (docs/architecture.md, Naming): the package list
    of pyproject.toml is every folder with an __init__.py, the three top-level folders mapped under gfm_ase."""
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setup["package-dir"] == MAPPED
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "gfm_ase").rglob("__init__.py")}
    for name, folder in MAPPED.items():
        on_disk |= {".".join((name, *p.parent.relative_to(REPO / folder).parts))
                    for p in (REPO / folder).rglob("__init__.py")}
    assert set(setup["packages"]) == on_disk
    assert {p.split(".")[0] for p in setup["packages"]} == {"gfm_ase"}


def test_nothing_imports_the_old_top_level_names():
    """Every source file of the repository (packages, tests, benchmarks, examples) imports the folders by their
    installed names; `import validation` from the repository root would load a second copy of the modules."""
    skip = (".venv", ".venv-teachers", "build", "work_data")
    bad = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] in skip or rel.parts[0].startswith("."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            bad += [f"{rel}:{node.lineno}: {n}" for n in names if n.split(".")[0] in OLD_NAMES]
    assert bad == []


def test_a_checkout_that_was_never_installed_imports_the_mapped_packages(tmp_path):
    """python -S (no site: no editable-install finder) with the checkout and site-packages on PYTHONPATH: the
    mapped packages load from the folders through gfm_ase._source_checkout, no module loads under an old name, and
    only the mapped names are answered."""
    import os
    import subprocess
    import sys
    import sysconfig

    probe = ("import importlib.util, sys, gfm_ase.validation.md as m, gfm_ase.pretraining.corpus as c, "
             "gfm_ase.finetune_zoo as f; print(m.__file__); print(c.__file__); print(f.__file__); "
             "print(sorted({'validation', 'pretraining', 'finetune_zoo'} & set(sys.modules)), "
             "importlib.util.find_spec('gfm_ase.tests'))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_path("purelib")])}
    res = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:4] == [str(REPO / "validation" / "md.py"),
                                          str(REPO / "pretraining" / "corpus" / "__init__.py"),
                                          str(REPO / "finetune_zoo" / "__init__.py"), "[] None"]


def test_the_typecheck_link_tree_has_the_installed_layout(tmp_path):
    """`make typecheck` runs mypy on this tree: every entry of gfm_ase/ and each mapped folder under its installed
    name; rebuilding it replaces the links (a removed module leaves none behind)."""
    from gfm_ase._source_checkout import link_tree

    tree = link_tree(tmp_path) / "gfm_ase"
    for name, folder in MAPPED.items():
        assert (tree / name.split(".")[1]).resolve() == REPO / folder
    assert (tree / "runtime").resolve() == REPO / "gfm_ase" / "runtime"
    assert {p.name for p in tree.iterdir()} == ({p.name for p in (REPO / "gfm_ase").iterdir()} - {"__pycache__"}
                                               | {n.split(".")[1] for n in MAPPED})
    (tree / "stale.py").symlink_to(REPO / "gfm_ase" / "units.py")
    link_tree(tmp_path)
    assert not (tree / "stale.py").exists()
