"""The compound lattice-constant check of the model card (validation/card_lattice.py)."""
from __future__ import annotations

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from scipy.optimize import brentq

from gfm_ase.validation import card_lattice


def test_lattice_constant_is_the_zero_pressure_one(monkeypatch, tmp_path):
    monkeypatch.setattr(card_lattice, "CRYSTALS", {"Cu fcc": (lambda a: bulk("Cu", "fcc", a=a), 3.7)})

    def pressure(a):
        at = bulk("Cu", "fcc", a=a)
        at.calc = EMT()
        return -at.get_stress()[:3].mean()

    a0 = brentq(pressure, 3.4, 3.9, xtol=1e-10)
    got = card_lattice.lattice_constants(EMT())["Cu fcc"]
    assert got == pytest.approx(a0, abs=5e-3)  # a parabola through three points 0.074 A apart
    assert got != pytest.approx(3.7, abs=0.02)  # not the guess
    assert card_lattice.main(["nonexistent:x"]) == 2  # usage: two arguments


def test_every_crystal_builds_with_its_guess():
    for name, (make, guess) in card_lattice.CRYSTALS.items():
        atoms = make(guess)
        assert len(atoms) >= 1 and atoms.pbc.all(), name
        assert atoms.cell.cellpar()[0] > 2.0


def test_a_minimum_outside_the_scan_is_none_not_an_extrapolation(monkeypatch, capsys):
    # EMT Cu's a0 is ~3.59 A: a guess of 5.0 scans 4.5-5.5 A, where E only rises with a
    monkeypatch.setattr(card_lattice, "CRYSTALS", {"Cu fcc": (lambda a: bulk("Cu", "fcc", a=a), 5.0)})
    assert card_lattice.lattice_constants(EMT()) == {"Cu fcc": None}
    assert "no E(a) minimum within 4.500-5.500 A" in capsys.readouterr().err
