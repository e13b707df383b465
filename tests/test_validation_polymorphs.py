"""The polymorphs suite (validation/polymorphs.py): lattices at the asked volume, minima against an independent
minimisation, the scan-edge flag, refused elements, the CLI / report entry and the side-by-side table."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from scipy.optimize import minimize_scalar

from gfm_ase.cli import main
from gfm_ase.validation.polymorphs import LATTICES, lattice, reference_volume, run_polymorphs


@pytest.mark.parametrize("kind", LATTICES)
def test_lattice_has_the_asked_volume_and_its_neighbour_shell(kind):
    from ase.neighborlist import neighbor_list

    atoms = lattice("Cu", kind, 12.3)
    assert atoms.get_volume() / len(atoms) == pytest.approx(12.3, rel=1e-12)
    d = neighbor_list("d", atoms, 6.0)
    first = d.min()
    n_first = int(np.sum(d < first * 1.01)) / len(atoms)
    assert n_first == {"fcc": 12, "bcc": 8, "hcp": 12, "sc": 6, "diamond": 4}[kind]


def _dense_minimum(element, kind):
    def energy(v):
        atoms = lattice(element, kind, v)
        atoms.calc = EMT()
        return atoms.get_potential_energy() / len(atoms)

    v0 = reference_volume(element)
    return minimize_scalar(energy, bounds=(0.5 * v0, 2.0 * v0), method="bounded", options={"xatol": 1e-5}).fun


def test_energies_match_an_independent_minimisation_with_emt(tmp_path):
    res = run_polymorphs(EMT(), ["Cu", "Al"], lattices=["fcc", "bcc", "sc"], outdir=tmp_path)
    for el in ("Cu", "Al"):
        row = res.details["elements"][el]
        dense = {k: _dense_minimum(el, k) for k in ("fcc", "bcc", "sc")}
        low = min(dense.values())
        for k in dense:  # the parabola through the scan's lowest three points: within 2 meV/atom
            assert row["dE_eV"][k] == pytest.approx(dense[k] - low, abs=2e-3), (el, k)
        assert row["lowest"] == "fcc" and row["at_edge"] == []
    assert res.summary["lowest_counts"] == {"fcc": 2, "bcc": 0, "sc": 0}
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "polymorphs.png").is_file()


def test_a_minimum_outside_the_scan_is_flagged():
    res = run_polymorphs(EMT(), ["Cu"], lattices=["fcc", "bcc"], factors=[0.5, 0.55, 0.6])  # all compressed
    row = res.details["elements"]["Cu"]
    assert sorted(row["at_edge"]) == ["bcc", "fcc"] and res.summary["n_at_edge"] == 2
    assert row["v_min"]["fcc"] == pytest.approx(0.6 * reference_volume("Cu"))


def test_bad_input_and_refused_elements():
    with pytest.raises(ValueError, match="at least two different"):
        run_polymorphs(EMT(), ["Cu"], lattices=["fcc"])
    with pytest.raises(ValueError, match="at least two different"):
        run_polymorphs(EMT(), ["Cu"], lattices=["fcc", "bct"])
    with pytest.raises(ValueError, match="three positive"):
        run_polymorphs(EMT(), ["Cu"], factors=[0.9, 1.1])
    with pytest.raises(ValueError, match="unknown element"):
        run_polymorphs(EMT(), ["Xx"])
    from gfm_ase import GFMCalculator

    res = run_polymorphs(GFMCalculator("gfm-mini", "omat", dtype="float64"), ["Si", "Fe"], lattices=["diamond", "sc"])
    assert list(res.details["elements"]) == ["Si"] and "not covered" in res.details["failed"]["Fe"]
    assert res.details["elements"]["Si"]["lowest"] == "diamond"


def test_cli_report_entry_and_comparison_against_the_last_column(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["validate", "polymorphs", "--calculator", "emt", "--elements", "Cu", "Ni",
                     "--lattices", "fcc", "bcc", "-o", str(tmp_path / name / "polymorphs")]) == 0
    doc = json.loads((tmp_path / "a" / "polymorphs" / "summary.json").read_text())
    assert doc["summary"]["n_elements"] == 2 and doc["summary"]["lattices"] == ["fcc", "bcc"]
    # the second run, shifted: bcc of Ni 0.3 eV/atom higher than the reference's
    b = json.loads((tmp_path / "b" / "polymorphs" / "summary.json").read_text())
    b["details"]["elements"]["Ni"]["dE_eV"]["bcc"] += 0.3
    (tmp_path / "b" / "polymorphs" / "summary.json").write_text(json.dumps(b))
    from gfm_ase.validation.compare import main as compare_main

    capsys.readouterr()
    assert compare_main([str(tmp_path / "b"), str(tmp_path / "a"), "--names", "shifted", "ref"]) == 0
    out = capsys.readouterr().out
    assert "### Polymorph energies of the elements" in out
    assert "none with a scan-edge minimum; number in brackets)** | **0.150** (2) | **0.000** (2) |" in out
    assert "| of them more than 0.1 eV/atom from ref's | 1 | 0 |" in out
    assert "| largest deviation from ref (eV/atom) | +0.30 (Ni bcc) | +0.00 (" in out
    assert "above this calculator's lowest | 0 | 0 |" in out  # bcc Ni moved up: the ordering is unchanged
    # now Cu's bcc below its fcc by 0.2 eV/atom: a wrong ordering, measured from the reference's lowest (fcc)
    ref_bcc = b["details"]["elements"]["Cu"]["dE_eV"]["bcc"]
    b["details"]["elements"]["Cu"]["dE_eV"] = {"fcc": 0.2, "bcc": 0.0}
    b["details"]["elements"]["Cu"]["lowest"] = "bcc"
    b["details"]["elements"]["Ni"]["dE_eV"]["bcc"] -= 0.3  # Ni back to the reference's
    (tmp_path / "b" / "polymorphs" / "summary.json").write_text(json.dumps(b))
    assert compare_main([str(tmp_path / "b"), str(tmp_path / "a"), "--names", "shifted", "ref"]) == 0
    out = capsys.readouterr().out
    assert "above this calculator's lowest | Cu | 0 |" in out
    assert f"| largest deviation from ref (eV/atom) | {-0.2 - ref_bcc:+.2f} (Cu bcc) |" in out
    from gfm_ase.validation.report import run_report

    doc = {"suites": [{"suite": "polymorphs", "elements": ["Cu"], "lattices": ["fcc", "bcc"]},
                      {"suite": "polymorphs", "name": "bad", "elements": ["Cu"], "lattice": ["fcc"]}]}
    report = run_report(doc, calc=EMT(), outdir=tmp_path / "r")
    assert report.summary["suites"]["polymorphs"]["n_elements"] == 1
    assert report.summary["n_failed"] == 1 and "unknown option(s) ['lattice']" in report.details["failed"]["bad"]
