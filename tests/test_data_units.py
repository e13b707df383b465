"""Unit and sign conversions, pinned on a sheared cell with an independent stress from ASE's EMT."""
from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT

from gfm_ase.units import (BAR, KBAR, UnitError, full_to_voigt, stress_to_ase, virial_to_stress, voigt_to_full)


@pytest.fixture(scope="module")
def sheared():
    """A sheared, rattled Cu cell with all six stress components distinct and non-zero (EMT)."""
    a = bulk("Cu", "fcc", a=3.7, cubic=True)
    a.set_cell(a.cell.array @ np.array([[1.0, 0.03, 0.05], [0.0, 0.98, 0.07], [0.0, 0.0, 1.02]]),
               scale_atoms=True)
    a.rattle(0.03, seed=2)
    a.calc = EMT()
    s = a.get_stress()  # ASE Voigt, eV/A^3, tension positive
    assert np.all(np.abs(s) > 1e-4) and len(np.unique(np.round(s, 6))) == 6
    return a, s


def test_voigt_full_roundtrip(sheared):
    _, s = sheared
    full = voigt_to_full(s)
    assert full[1, 2] == s[3] and full[0, 2] == s[4] and full[0, 1] == s[5]
    np.testing.assert_array_equal(full_to_voigt(full), s)
    with pytest.raises(UnitError, match="not symmetric"):
        full_to_voigt(np.arange(9.0).reshape(3, 3))


def test_vasp_kbar_compression_positive(sheared):
    """VASP prints -stress in kbar ('in kB' line) in the order xx yy zz xy yz zx."""
    _, s = sheared
    full = voigt_to_full(s)
    vasp6 = -np.array([full[0, 0], full[1, 1], full[2, 2], full[0, 1], full[1, 2], full[0, 2]]) / KBAR
    np.testing.assert_allclose(stress_to_ase(vasp6, "kbar", sign="compression", order="vasp"), s, rtol=1e-12)
    # pymatgen: full 3x3 in kbar, compression positive
    np.testing.assert_allclose(stress_to_ase(-full / KBAR, "kbar", sign="compression"), s, rtol=1e-12)
    # 1 GPa = 10 kbar = 1e4 bar
    assert KBAR == pytest.approx(0.1 * units.GPa) and BAR == pytest.approx(1e-4 * units.GPa)
    np.testing.assert_allclose(stress_to_ase(full / BAR, "bar", sign="tension"), s, rtol=1e-12)


def test_virial_to_stress(sheared):
    a, s = sheared
    virial = -s[[0, 5, 4, 5, 1, 3, 4, 3, 2]] * a.get_volume()  # full 3x3 row-major from Voigt
    np.testing.assert_allclose(virial_to_stress(virial, a.get_volume()), s, rtol=1e-12)


def test_unknown_units_and_signs():
    with pytest.raises(UnitError, match="unknown stress unit"):
        stress_to_ase(np.zeros(6), "psi", sign="tension")
    with pytest.raises(UnitError, match="sign"):
        stress_to_ase(np.zeros(6), "bar", sign="pressure")
    with pytest.raises(UnitError, match="order"):
        stress_to_ase(np.zeros(6), "bar", sign="tension", order="lammps?")
