"""gfm_ase.relax: pymatgen Structure in -> Structure out (Molecule -> Molecule, Atoms -> Atoms), the input left
alone, and the structure handed back is the relaxed one."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from conftest import make_tiny_model
from pymatgen.core import Lattice, Molecule, Structure

from gfm_ase import GFMCalculator, relax


@pytest.fixture(scope="module")
def calc():
    return GFMCalculator(make_tiny_model(seed=2, heads=("a",)), dtype="float64")


def _structure():
    s = Structure(Lattice.cubic(3.7), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
                  site_properties={"magmom": [0.5, 0.5, 0.5, 0.5]})
    s.perturb(0.08, min_distance=0.04)
    return s


def _forces(calc, obj):
    return calc.predict(obj)["forces"]


def test_structure_in_structure_out_positions_only(calc):
    s = _structure()
    before = s.copy()
    r = relax(s, calc, fmax=0.02, steps=300, relax_cell=False)
    assert type(r.structure) is Structure and r.converged
    assert s == before  # the input is untouched
    assert np.abs(_forces(calc, r.structure)).max() < 0.02  # what comes back is the relaxed structure
    assert np.abs(_forces(calc, s)).max() > 0.02
    assert r.energy == pytest.approx(calc.predict(r.structure)["energy"], abs=1e-9)
    np.testing.assert_allclose(r.structure.lattice.matrix, s.lattice.matrix)
    assert r.structure.site_properties["magmom"] == [0.5] * 4


def test_cell_relaxation_returns_the_relaxed_cell(calc):
    s = _structure()
    r = relax(s, calc, fmax=0.01, steps=500)
    assert type(r.structure) is Structure and r.converged
    out = calc.predict(r.structure)
    assert np.abs(out["forces"]).max() < 0.02
    # the generalised cell force of the filter is stress x volume: relaxed means small stress
    assert np.abs(out["stress"]).max() * r.structure.volume < 0.05
    np.testing.assert_allclose(r.stress, out["stress"], atol=1e-9)
    assert not np.allclose(r.structure.lattice.matrix, s.lattice.matrix)


def test_molecule_in_molecule_out(calc):
    m = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.3, 0.9, 0]], charge=-1, spin_multiplicity=2)
    r = relax(m, calc, fmax=0.02, steps=500)
    assert type(r.structure) is Molecule and r.converged
    assert (r.structure.charge, r.structure.spin_multiplicity) == (-1, 2)
    assert np.abs(_forces(calc, r.structure)).max() < 0.02
    assert r.stress is None


def test_atoms_in_atoms_out_and_input_untouched(calc):
    a = bulk("Cu", "fcc", a=3.7, cubic=True)
    a.rattle(0.05, seed=4)
    pos = a.positions.copy()
    r = relax(a, calc, fmax=0.02, steps=300, relax_cell=False)
    assert np.array_equal(a.positions, pos) and a.calc is None
    assert type(r.structure) is type(a) and r.structure.calc is None
    assert np.abs(_forces(calc, r.structure)).max() < 0.02


@pytest.mark.parametrize("kw, match", [({"optimizer": "LBFGSX"}, "optimizer"), ({"fmax": 0.0}, "fmax"),
                                       ({"steps": -1}, "steps")])
def test_bad_options(calc, kw, match):
    with pytest.raises(ValueError, match=match):
        relax(_structure(), calc, **kw)


def test_unknown_type_is_refused(calc):
    with pytest.raises(TypeError, match="Structure"):
        relax("Cu", calc)


def test_validation_helper_points_pymatgen_users_to_gfm_ase_relax(calc):
    from gfm_ase.validation.relax import relax as relax_in_place

    with pytest.raises(TypeError, match="gfm_ase.relax"):
        relax_in_place(_structure(), calc)
