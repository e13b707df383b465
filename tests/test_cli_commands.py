"""The ``gfm`` subcommand registry (gfm_ase/cli/commands.py): entry points of the group ``gfm_ase.commands``.

Plugins are fake distributions written into a temporary folder on ``sys.path`` (a ``*.dist-info`` with an
``entry_points.txt``), so the tests exercise the same metadata lookup as an installed package.
"""
import importlib
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest

from gfm_ase.cli import build_parser, main
from gfm_ase.cli import commands
from gfm_ase.cli.commands import GROUP, discover
from gfm_ase.cli import errors
from gfm_ase.cli.errors import is_expected

REPO = Path(__file__).resolve().parents[1]


def declared() -> dict[str, str]:
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    return doc["project"]["entry-points"][GROUP]


def fake_dist(root: Path, name: str, entries: dict[str, str], modules: dict[str, str] | None = None,
              suffix: str = "dist-info") -> Path:
    """A distribution ``name`` in ``root`` declaring ``entries`` in GROUP, with the given module sources."""
    meta = root / f"{name.replace('-', '_')}-1.0.{suffix}"
    meta.mkdir(parents=True)
    pkg_info = "PKG-INFO" if suffix == "egg-info" else "METADATA"
    (meta / pkg_info).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = [f"[{GROUP}]"] + [f"{k} = {v}" for k, v in entries.items()] if entries else ["[console_scripts]"]
    (meta / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for mod, src in (modules or {}).items():
        (root / f"{mod}.py").write_text(textwrap.dedent(src))
    importlib.invalidate_caches()
    return root


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    declared_errors = set(errors._ADDED)
    yield tmp_path
    errors._ADDED.intersection_update(declared_errors)  # the fake packages' expect() calls
    for mod in [m for m in sys.modules if m.startswith("fake_gfm_")]:
        del sys.modules[mod]


def test_installed_metadata_matches_pyproject():
    """A stale install (entry points changed in pyproject.toml, not reinstalled) fails here, not in a user's hands.
    (A stale gfm_ase.egg-info of an old build may sit beside the install: one current metadata folder suffices.)"""
    installed = [{ep.name: ep.value for ep in d.entry_points if ep.group == GROUP} for d in distributions()
                 if d.metadata["Name"] == "gfm-ase"]
    assert declared() in installed, "reinstall the package metadata: pip install -e . --no-deps"
    assert discover()[1] == []


def test_a_checkout_that_was_never_installed_has_its_commands(monkeypatch):
    """No installed metadata (a bare checkout on PYTHONPATH, e.g. the GPU suite's): the commands come from the
    checkout's pyproject.toml."""
    monkeypatch.setattr(commands, "_installed", lambda: [])
    found, clashes = discover()
    assert {cmd.name: cmd.value for cmd, _ in found} == declared() and clashes == []
    assert {cmd.dist for cmd, _ in found} == {"the gfm-ase source checkout 0.1.0"}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(declared())


def test_checkout_and_install_disagree(monkeypatch, capsys):
    """pyproject.toml edited but not reinstalled: the command says so instead of running either target."""
    real = commands._installed
    monkeypatch.setattr(commands, "_installed", lambda: [
        (EntryPoint(ep.name, "gfm_ase.cli.info:register" if ep.name == "models" else ep.value, ep.group), d, w)
        for ep, d, w in real()])
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert "'gfm_ase.cli.info:register'" in err and "'gfm_ase.cli.models:register'" in err and "reinstall" in err


def test_every_declared_command_registers_under_its_name():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in declared():
        assert name in sub.choices
        assert "unavailable" not in (next(a.help for a in sub._choices_actions if a.dest == name) or "")


def test_core_imports_none_of_the_packages_built_on_it():
    """With only gfm_ase's own commands installed, building the parser loads no pretraining/validation/finetune_zoo
    module; with all of them (the control) it does, so the probe can see an import."""
    probe = textwrap.dedent("""
        import sys
        import gfm_ase.cli.commands as c
        PLUGINS = ("gfm_ase.finetune_zoo", "gfm_ase.pretraining", "gfm_ase.validation")
        real = c.distributions
        only_core = sys.argv[1] == "core"
        class View:
            def __init__(self, d): self.d = d; self.metadata = d.metadata; self.version = d.version
            def locate_file(self, p): return self.d.locate_file(p)
            @property
            def entry_points(self):
                return [e for e in self.d.entry_points if not only_core or not e.value.startswith(PLUGINS)]
        c.distributions = lambda: [View(d) for d in real()]
        if only_core:
            c._checkout = lambda: []  # the checkout's pyproject.toml declares them too
        from gfm_ase.cli import build_parser
        build_parser()
        print(sorted({".".join(m.split(".")[:2]) for m in sys.modules} & set(PLUGINS)))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = {kind: subprocess.run([sys.executable, "-c", probe, kind], capture_output=True, text=True, env=env,
                                cwd=REPO, check=True).stdout.strip() for kind in ("core", "all")}
    assert out["core"] == "[]"
    assert out["all"] == "['gfm_ase.finetune_zoo', 'gfm_ase.pretraining', 'gfm_ase.validation']"


def test_python_m_from_the_checkout_lists_the_plugin_commands():
    """`python -m gfm_ase.cli` in the repository root (where an old build may have left gfm_ase.egg-info first on
    sys.path) still finds the installed commands."""
    res = subprocess.run([sys.executable, "-m", "gfm_ase.cli", "--help"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    for name in ("pretrain", "finetune", "validate", "screen"):
        assert f"\n    {name} " in res.stdout


def test_stale_metadata_of_the_same_project_does_not_hide_commands(plugin_path, monkeypatch):
    from importlib.metadata import entry_points

    monkeypatch.setattr(commands, "_checkout", lambda: [])  # the installed metadata alone
    fake_dist(plugin_path, "gfm-ase", {}, suffix="egg-info")  # an old build's metadata, first on sys.path
    assert "pretrain" not in {ep.name for ep in entry_points(group=GROUP)}  # the first-of-a-name lookup is fooled
    found, clashes = discover()
    assert {cmd.name for cmd, _ in found} >= set(declared()) and clashes == []


def test_an_outside_package_adds_a_command(plugin_path, capsys):
    fake_dist(plugin_path, "fake-plugin", {"hello-fake": "fake_gfm_hello:register"}, {"fake_gfm_hello": """
        def register(sub):
            p = sub.add_parser("hello-fake", help="says hello")
            p.add_argument("--who", default="world")
            p.set_defaults(func=lambda args: print("hello", args.who) or 0)
    """})
    assert main(["hello-fake", "--who", "gfm"]) == 0
    assert capsys.readouterr().out == "hello gfm\n"


@pytest.mark.parametrize("entry, source, cause", [
    ("fake_gfm_missing_mod:register", None, "ModuleNotFoundError: No module named 'fake_gfm_missing_mod'"),
    ("fake_gfm_raises:register", """
        def register(sub):
            sub.add_parser("broken-fake")
            import fake_gfm_optional_dependency_xyz
    """, "No module named 'fake_gfm_optional_dependency_xyz'"),
    ("fake_gfm_wrong:register", """
        def register(sub):
            sub.add_parser("other-fake")
    """, "added ['other-fake'] instead of 'broken-fake'"),
    ("fake_gfm_two:register", """
        def register(sub):
            sub.add_parser("broken-fake")
            sub.add_parser("second-fake")
    """, "added ['broken-fake', 'second-fake'] instead of 'broken-fake'"),
])
def test_a_broken_command_is_one_line_and_leaves_the_others(plugin_path, capsys, entry, source, cause):
    module = entry.split(":")[0]
    fake_dist(plugin_path, "fake-broken", {"broken-fake": entry}, {module: source} if source else None)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "other-fake" not in sub.choices and "second-fake" not in sub.choices  # partial registration undone
    assert "(unavailable: " in parser.format_help() and "pretrain" in sub.choices
    capsys.readouterr()

    assert main(["broken-fake", "--any-option", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gfm broken-fake: error: the command could not be loaded")
    assert f"entry point 'broken-fake = {entry}' of fake-broken 1.0" in err and cause in err

    assert main(["broken-fake", "--debug"]) == 2  # --debug: the traceback of a load that raised
    err = capsys.readouterr().err
    raised = source is None or "import" in source
    assert ("Traceback" in err) == raised and cause in err.rstrip().splitlines()[-1]

    with pytest.raises(SystemExit) as exc:  # the other commands parse as before
        main(["heads", "--help"])
    assert exc.value.code == 0


def test_a_shadowed_package_is_named(plugin_path, capsys):
    """Another distribution's module of the same top-level name (here a plain module where a package is declared)
    found first: the one line says which file Python imported."""
    fake_dist(plugin_path, "fake-shadowed", {"shadowed-fake": "fake_gfm_shadow.cli:register"},
              {"fake_gfm_shadow": "x = 1\n"})
    assert main(["shadowed-fake"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No module named 'fake_gfm_shadow.cli'" in err
    assert f"the 'fake_gfm_shadow' Python imported is {plugin_path / 'fake_gfm_shadow.py'}: is it another" in err


def test_a_missing_submodule_inside_the_package_is_not_called_a_shadow(plugin_path, capsys):
    """The package is the right one, its command module imports a module of the package that is missing."""
    (plugin_path / "fake_gfm_pkg").mkdir()
    (plugin_path / "fake_gfm_pkg" / "__init__.py").write_text("")
    (plugin_path / "fake_gfm_pkg" / "cli.py").write_text("import fake_gfm_pkg.gone\n\ndef register(sub):\n    pass\n")
    fake_dist(plugin_path, "fake-pkg", {"pkg-fake": "fake_gfm_pkg.cli:register"})
    assert main(["pkg-fake"]) == 2
    err = capsys.readouterr().err
    assert "No module named 'fake_gfm_pkg.gone'" in err and "another package" not in err


def test_two_targets_for_one_command_name_is_refused(plugin_path, capsys):
    fake_dist(plugin_path, "fake-clash", {"models": "fake_gfm_models:register"})
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert "declared with different targets" in err and "gfm_ase.cli.models:register" in err
    assert "fake_gfm_models:register" in err


def test_a_command_declares_its_expected_errors(plugin_path, capsys):
    fake_dist(plugin_path, "fake-errors", {"fails-fake": "fake_gfm_fails:register"}, {
        "fake_gfm_errors": """
            class FakeError(RuntimeError):
                pass
        """,
        "fake_gfm_fails": """
            from fake_gfm_errors import FakeError  # re-exported: the name the command declares
            from gfm_ase.cli.errors import expect

            def register(sub):
                expect("fake_gfm_fails.FakeError")
                p = sub.add_parser("fails-fake")
                p.set_defaults(func=run)

            def run(args):
                raise FakeError("fake.h5: no such dataset 'x'")
        """})
    assert main(["fails-fake"]) == 2
    assert capsys.readouterr().err == "gfm fails-fake: error: fake.h5: no such dataset 'x'\n"

    class Unlisted(RuntimeError):
        pass

    assert not is_expected(Unlisted("a bug keeps its traceback"))


def test_every_expected_error_name_points_at_an_exception_class():
    """The names of EXPECTED and the ones the packages declare with expect() (in their register functions) still
    name exception classes: a class moved to another module without its old name fails here."""
    build_parser()
    names = sorted(errors.EXPECTED | errors._ADDED)
    assert "gfm_ase.pretraining.errors.TrainingError" in names
    assert "gfm_ase.finetune_zoo.finetuning.FinetuneError" in names
    for name in names:
        module, _, attr = name.rpartition(".")
        cls = getattr(importlib.import_module(module), attr, None)
        assert isinstance(cls, type) and issubclass(cls, BaseException), name
        assert errors._loaded(name) is cls, name
