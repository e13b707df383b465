"""Relax suite: references relaxed by the same calculator are recovered; a strained reference shows its strain."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

pytest.importorskip("pymatgen")

from gfm_ase.validation.relax import compare_structures, perturb, read_structures, relax, run_relax  # noqa: E402


def _emt_relaxed(el, a=None):
    atoms = bulk(el, "fcc", a=a, cubic=True) if a else bulk(el, cubic=True)
    relax(atoms, EMT(), optimizer="BFGS", fmax=1e-5, steps=500)
    e = atoms.get_potential_energy()
    atoms.calc = SinglePointCalculator(atoms, energy=e)
    atoms.info["name"] = el
    return atoms


def test_references_relaxed_by_the_same_calculator_are_recovered(tmp_path):
    refs = [_emt_relaxed("Cu"), _emt_relaxed("Al")]
    res = run_relax(EMT(), refs, rattle=0.05, strain=0.03, fmax=1e-4, steps=1000, optimizer="BFGS",
                    outdir=tmp_path)
    s = res.summary
    assert s["n_converged"] == 2 and s["n_matched"] == 2 and s["n_failed"] == 0
    assert s["volume_mae_pct"] < 0.01 and s["rmsd_mean"] < 1e-3
    assert s["energy_mae_meV_atom"] < 1e-3 and abs(s["relaxation_energy_mean_meV_atom"]) < 1e-3
    out = json.loads((tmp_path / "summary.json").read_text())
    assert out["summary"]["n_matched"] == 2 and (tmp_path / "relax.png").is_file()


def test_a_strained_reference_gives_its_known_volume_error():
    """A 'DFT' reference at a lattice 4% larger than EMT's: EMT relaxes back to its own volume, so the volume error is
    (a_emt / a_ref)^3 - 1, and EMT's minimum lies below the reference geometry."""
    ref_emt = _emt_relaxed("Cu")
    a_emt = ref_emt.cell.lengths()[0]
    ref = bulk("Cu", "fcc", a=1.04 * a_emt, cubic=True)
    ref.info["name"] = "Cu-expanded"
    res = run_relax(EMT(), [ref], rattle=0.0, strain=0.0, fmax=1e-4, steps=1000, optimizer="BFGS")
    row = res.details["structures"]["Cu-expanded"]
    assert row["volume_err_pct"] == pytest.approx(100 * (1 / 1.04 ** 3 - 1), abs=0.02)
    assert row["matched"]  # same structure type (StructureMatcher scales volumes)
    assert row["relaxation_energy_meV_atom"] < -5
    assert "energy_err_meV_atom" not in row  # the reference has no energy


def test_perturb_is_seeded_and_molecules_use_kabsch_rmsd():
    a = bulk("Cu", cubic=True)
    p1 = perturb(a, 0.05, 0.02, np.random.default_rng(3))
    p2 = perturb(a, 0.05, 0.02, np.random.default_rng(3))
    assert np.allclose(p1.positions, p2.positions) and not np.allclose(p1.positions, a.positions)
    from ase.build import molecule

    m = molecule("H2O")
    r = m.copy()
    r.rotate(30, "z")
    r.translate([1, 2, 3])
    assert compare_structures(r, m)["rmsd"] == pytest.approx(0.0, abs=1e-8)


def test_cli_relax(tmp_path):
    from gfm_ase.cli import main

    write(tmp_path / "refs.extxyz", [_emt_relaxed("Cu"), _emt_relaxed("Ni")])
    assert len(read_structures(tmp_path / "refs.extxyz")) == 2
    rc = main(["validate", "relax", "--calculator", "emt", "--reference", str(tmp_path / "refs.extxyz"),
               "--fmax", "1e-3", "--optimizer", "BFGS", "-o", str(tmp_path / "out")])
    assert rc == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    assert s["n_matched"] == 2 and s["volume_mae_pct"] < 0.1
