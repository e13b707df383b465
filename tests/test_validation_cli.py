"""Calculator resolution, the `gfm validate` CLI contract and the YAML report suite."""
from __future__ import annotations

import json
import sys
import types

import pytest
from ase.calculators.emt import EMT

from gfm_ase.validation.calculators import as_calculator, covered_elements, describe, make_calculator


def _factory_module(monkeypatch):
    mod = types.ModuleType("my_calcs")
    mod.emt_factory = lambda: EMT()
    mod.not_a_calculator = lambda: 42
    monkeypatch.setitem(sys.modules, "my_calcs", mod)


def test_make_calculator_names(monkeypatch):
    _factory_module(monkeypatch)
    assert isinstance(make_calculator("emt"), EMT) and isinstance(make_calculator("EMT"), EMT)
    assert isinstance(make_calculator("my_calcs:emt_factory"), EMT)
    assert isinstance(make_calculator("ase.calculators.emt:EMT"), EMT)
    with pytest.raises(TypeError, match="not an ASE calculator"):
        make_calculator("my_calcs:not_a_calculator")
    with pytest.raises(ValueError, match="cannot import"):
        make_calculator("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="no attribute"):
        make_calculator("my_calcs:missing")
    with pytest.raises(ValueError, match="unknown calculator"):
        make_calculator("lennard-jones")
    with pytest.raises(ValueError, match="not both"):
        make_calculator("emt", model="x")
    assert isinstance(as_calculator(EMT), EMT)  # a class is a factory too
    assert covered_elements(EMT()) == sorted(["Ag", "Al", "Au", "C", "Cu", "H", "N", "Ni", "O", "Pd", "Pt"])


def test_gfm_model_head_through_the_cli(tmp_path):
    from conftest import make_tiny_model

    from gfm_ase.checkpoint import save_model
    from gfm_ase.cli import main

    save_model(make_tiny_model(elements=("Cu", "Al")), tmp_path / "model")
    calc = make_calculator(None, model=str(tmp_path / "model"), head="a")
    assert sorted(covered_elements(calc)) == ["Al", "Cu"] and "head=a" in describe(calc)
    # reports name the model by its directory and weights sha256, never by the machine path
    sha = json.loads((tmp_path / "model" / "model.json").read_text())["weights_sha256"]
    assert describe(calc) == f"GFMCalculator(model=model (sha256 {sha[:12]}), head=a)"
    assert str(tmp_path) not in describe(calc)
    rc = main(["validate", "eos", "--model", str(tmp_path / "model"), "--head", "a", "-o", str(tmp_path / "out")])
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    # an untrained model may have no E(V) minimum: it is reported per element, but only covered elements are tried
    assert doc["summary"]["n_elements"] + doc["summary"]["n_failed"] == 2
    assert "head=a" in doc["calculator"]


def test_cli_contract_errors(tmp_path, capsys):
    from gfm_ase.cli import main

    # neither --model nor --calculator: the default model, which has several heads, so --head is asked for
    assert main(["validate", "eos", "--elements", "Cu", "-o", str(tmp_path / "o")]) == 2
    assert "choose one with head=" in capsys.readouterr().err
    assert main(["validate", "eos", "--calculator", "emt", "--model", "x", "-o", str(tmp_path / "o")]) == 2
    assert main(["validate", "phonons", "--calculator", "emt", "--reference", str(tmp_path / "nowhere"),
                 "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # -o is required
        main(["validate", "eos", "--calculator", "emt"])


def test_cli_eos_writes_the_contracted_files(tmp_path):
    from gfm_ase.cli import main

    rc = main(["validate", "eos", "--calculator", "emt", "--elements", "Cu", "--points", "5", "-o", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["suite"] == "eos" and doc["summary"]["n_elements"] == 1 and doc["summary"]["delta_mean_meV"] > 0
    assert (tmp_path / "report.md").read_text().startswith("# Validation: eos")
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<h2>Per element</h2>" in page
    assert list(tmp_path.glob("*.png"))


def test_report_runs_suites_from_yaml_and_lists_failures(tmp_path):
    from gfm_ase.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("""
title: EMT check
calculator: emt
suites:
  - suite: eos
    elements: [Al]
    n_points: 5
  - suite: md
    bulk: Cu
    repeat: [2, 2, 2]
    nve_ps: 0.04
    nvt_ps: 0
    timestep_fs: 2.0
  - suite: phonons
    name: missing-reference
    reference: nowhere
""")
    rc = main(["validate", "report", str(cfg), "-o", str(tmp_path / "out")])
    assert rc == 1  # one suite failed; the others were still run and reported
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc["summary"]["n_suites"] == 3 and doc["summary"]["n_failed"] == 1
    assert doc["summary"]["suites"]["eos"]["n_elements"] == 1
    assert doc["summary"]["suites"]["md"]["nve_stable"] is True
    assert "missing-reference" in doc["details"]["failed"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# EMT check") and "## eos" in md and "## md" in md and "(eos/eos_curves.png)" in md
    assert (tmp_path / "out" / "eos" / "summary.json").is_file()


def test_report_config_errors(tmp_path):
    from gfm_ase.validation.report import load_config, run_report

    bad = tmp_path / "bad.yaml"
    bad.write_text("suites:\n  - suite: nonsense\n")
    with pytest.raises(ValueError, match="one of"):
        load_config(bad)
    bad.write_text("calculator: emt\nsuites:\n  eos: {elements: [Cu], bogus: 1}\n")
    res = run_report(bad, outdir=tmp_path / "out")
    assert "bogus" in res.details["failed"]["eos"]
