"""The validation-suite registry (validation/suites): one Suite object gives a suite both its `gfm validate <suite>`
command, its `gfm validate report` YAML entry and its tables in `python -m gfm_ase.validation.compare`."""
import dataclasses
import json

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from gfm_ase.cli import main
from gfm_ase.validation.calculators import describe
from gfm_ase.validation.output import SuiteResult
from gfm_ase.validation.report import run_report
from gfm_ase.validation.compare import comparisons
from gfm_ase.validation.compare import main as compare_main
from gfm_ase.validation.suites import SUITES, Suite, register_suite
from gfm_ase.validation.suites.registry import Comparison
from gfm_ase.validation.suites.registry import keyword_options


def run_toy(calc, *, repeat: int = 1, outdir):
    """A minimal suite: the energy of a Cu supercell."""
    atoms = bulk("Cu", "fcc", a=3.6).repeat(repeat)
    atoms.calc = calc
    result = SuiteResult("toy-fake", describe(calc), {"energy": atoms.get_potential_energy()})
    result.write(outdir)
    return result


def _add(p):
    p.add_argument("--repeat", type=int, default=1)


def _toy_table(runs):
    return [f"| {n} | {r['summary']['energy']!r} |" for n, r in runs.items()]


TOY = Suite("toy-fake", "a test suite registered outside the package", _add,
            lambda args, calculator: run_toy(calculator(), repeat=args.repeat, outdir=args.outdir),
            lambda calc, opts, base, outdir: run_toy(calc, outdir=outdir,
                                                     **keyword_options(run_toy, opts, ("outdir",), "toy-fake")),
            (Comparison("toy-fake", "Toy energies", _toy_table, 0),))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(SUITES, TOY.name, TOY)
    return TOY


def expected_energy(repeat: int) -> float:
    atoms = bulk("Cu", "fcc", a=3.6).repeat(repeat)
    atoms.calc = EMT()
    return atoms.get_potential_energy()


def test_a_registered_suite_is_a_command(toy, tmp_path, capsys):
    assert main(["validate", "toy-fake", "--calculator", "emt", "--repeat", "2", "-o", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert summary["energy"] == pytest.approx(expected_energy(2), rel=1e-12)
    assert "toy-fake" in capsys.readouterr().out


def test_a_registered_suite_is_a_report_entry(toy, tmp_path):
    doc = {"suites": [{"suite": "toy-fake", "repeat": 2}, {"suite": "toy-fake", "name": "bad", "repeats": 2}]}
    report = run_report(doc, calc=EMT(), outdir=tmp_path)
    assert report.summary["suites"]["toy-fake"]["energy"] == pytest.approx(expected_energy(2), rel=1e-12)
    assert report.summary["n_failed"] == 1 and "unknown option(s) ['repeats']" in report.details["failed"]["bad"]


def test_unregistered_suite_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["validate", "toy-fake", "--calculator", "emt", "-o", str(tmp_path)])
    assert "invalid choice: 'toy-fake'" in capsys.readouterr().err
    report = run_report({"suites": [{"suite": "toy-fake"}]}, calc=EMT(), outdir=tmp_path)
    assert "unknown suite 'toy-fake'" in report.details["failed"]["toy-fake"]


def test_a_name_registers_once(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_suite(TOY)


def test_builtin_suites_in_help_order():
    assert list(SUITES) == ["errors", "eos", "polymorphs", "phonons", "relax", "md", "dimers", "contacts"]


def test_a_registered_suite_is_a_comparison_table(toy, tmp_path, capsys):
    for name, repeat in (("one", 1), ("two", 2)):
        assert main(["validate", "toy-fake", "--calculator", "emt", "--repeat", str(repeat),
                     "-o", str(tmp_path / name / "toy-fake")]) == 0
    capsys.readouterr()
    assert compare_main([str(tmp_path / "one"), str(tmp_path / "two"), str(tmp_path / "none"),
                         "--names", "a", "b", "c"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\n### Toy energies\n\n")  # rank 0: before the built-in tables; no other folder exists
    assert out.splitlines()[3:] == [f"| a | {float(expected_energy(1))!r} |",
                                    f"| b | {float(expected_energy(2))!r} |"]


def test_every_suite_states_its_comparison():
    """A suite cannot leave out its compare entry: the field has no default, and register_suite takes only a tuple
    of Comparison (``()``: no table)."""
    field = {f.name: f for f in dataclasses.fields(Suite)}["compare"]
    assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    with pytest.raises(TypeError, match="compare"):
        Suite("toy-fake", "no compare entry", _add, TOY.run_args, TOY.run_yaml)
    with pytest.raises(TypeError, match="tuple of Comparison"):
        register_suite(dataclasses.replace(TOY, compare=None))
    assert "toy-fake" not in SUITES
    for suite in SUITES.values():
        assert isinstance(suite.compare, tuple) and all(isinstance(c, Comparison) for c in suite.compare), suite.name


def test_a_comparison_folder_belongs_to_one_suite():
    twin = dataclasses.replace(TOY, compare=(Comparison("errors-aligned", "twin", _toy_table, 99),))
    with pytest.raises(ValueError, match=r"comparison folder\(s\) \['errors-aligned'\] already used"):
        register_suite(twin)
    assert "toy-fake" not in SUITES


def test_builtin_comparisons_in_card_order():
    """The model card's order (validation/card_runs.sh and card_md.sh folders): EOS, polymorphs, phonons, errors
    raw then aligned (MAE, then the slopes), the FitSNAP test splits, then one MD table per novel composition."""
    from gfm_ase.validation.novel_compositions import NAMES

    assert [(c.folder, SUITES[s].name) for c in comparisons() for s in SUITES if c in SUITES[s].compare] == [
        ("eos", "eos"), ("polymorphs", "polymorphs"),
        ("phonons", "phonons"), ("errors", "errors"), ("errors-aligned", "errors"), ("errors-aligned", "errors"),
        ("fitsnap_Ta", "errors"), ("fitsnap_InP", "errors"), ("fitsnap_Fe", "errors"),
        ("contacts", "contacts"), *((f"md10_{n}", "md") for n in NAMES)]
