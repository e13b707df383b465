"""The validation-suite registry (validation/suites): one Suite object gives a suite both its `gfm validate <suite>`
command and its `gfm validate report` YAML entry."""
import json

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from gfm_ase.cli import main
from validation.calculators import describe
from validation.output import SuiteResult
from validation.report import run_report
from validation.suites import SUITES, Suite, register_suite
from validation.suites.registry import keyword_options


def run_toy(calc, *, repeat: int = 1, outdir):
    """A minimal suite: the energy of a Cu supercell."""
    atoms = bulk("Cu", "fcc", a=3.6).repeat(repeat)
    atoms.calc = calc
    result = SuiteResult("toy-fake", describe(calc), {"energy": atoms.get_potential_energy()})
    result.write(outdir)
    return result


def _add(p):
    p.add_argument("--repeat", type=int, default=1)


TOY = Suite("toy-fake", "a test suite registered outside the package", _add,
            lambda args, calculator: run_toy(calculator(), repeat=args.repeat, outdir=args.outdir),
            lambda calc, opts, base, outdir: run_toy(calc, outdir=outdir,
                                                     **keyword_options(run_toy, opts, ("outdir",), "toy-fake")))


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
    assert list(SUITES) == ["errors", "eos", "phonons", "relax", "md", "dimers"]
