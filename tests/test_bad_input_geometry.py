"""Bad-input suite, geometries: the sanity check (gfm_ase.graph.sanity) in the calculator and in screening.

Absurd geometries are refused with one clear message; normal ones (EOS strains, phonon displacements, hot MD,
molecules, slabs, wires) are evaluated. Cases of issue 14: two Si 0.4 A apart, Si in a 0.5 A periodic cell, a
skewed cell with an image 0.30 A away.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.data import atomic_numbers, covalent_radii
from conftest import make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.graph.sanity import DEFAULT_FACTOR, GeometryError, SanityCheck, check_factor, min_distance_ratio

ELEMENTS = ("H", "C", "N", "O", "Si", "Cu", "Pt", "Na", "Cl", "Li", "Fe")


@pytest.fixture(scope="module")
def calc():
    return GFMCalculator(model=make_tiny_model(elements=ELEMENTS), head="a", device="cpu", dtype="float64")


def _skewed_si():
    """One Si whose cell vector c is a + (0.18, 0, 0.24): the image at c - a is 0.30 A away, the vectors are long."""
    return Atoms("Si", cell=[[5, 0, 0], [0, 5, 0], [5.18, 0, 0.24]], pbc=True)


def _skewed_pair():
    """Two Si in a skewed 3D cell; atom 1 sits 0.30 A from an image of atom 0 that is 4 cells away."""
    cell = np.array([[5.0, 0, 0], [0, 5.0, 0], [20.0, 0, 5.0]])
    return Atoms("Si2", positions=[[0, 0, 0], cell[2] - 4 * cell[0] + [0.3, 0, 0]], cell=cell, pbc=True)


REFUSED = {
    # name: (atoms, message fragment)
    "Si2 0.4 A apart (issue)": (Atoms("Si2", positions=[[0, 0, 0], [0.4, 0, 0]]), "overlapping atoms"),
    "Si in a 0.5 A cell (issue)": (Atoms("Si", cell=[0.5] * 3, pbc=True), "cell too small"),
    "skewed cell, image 0.30 A (issue)": (_skewed_si(), "cell too small"),
    "skewed cell, other atom's image 0.30 A": (_skewed_pair(), "overlapping atoms"),
    "Pt and N 0.8 A apart": (Atoms("PtN", positions=[[0, 0, 0], [0.8, 0, 0]], cell=[8] * 3, pbc=True),
                             "overlapping atoms"),
    "Na on top of Cl in rock salt": (Atoms("NaCl", positions=[[0, 0, 0], [0.2, 0.1, 0]], cell=[5.6] * 3, pbc=True),
                                     "overlapping atoms"),
    "slab with a 0.6 A in-plane cell": (Atoms("Cu", cell=[0.6, 0.6, 0], pbc=[True, True, False]), "cell too small"),
    "wire with a 0.5 A period": (Atoms("C", cell=[0, 0, 0.5], pbc=[False, False, True]), "cell too small"),
    "dense cell, vectors long enough": (Atoms("Cu8", scaled_positions=np.random.default_rng(0).random((8, 3)),
                                              cell=[1.6, 1.6, 1.6], pbc=True), "cell too small"),
    "H2 0.2 A apart": (Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.2]]), "overlapping atoms"),
    "atom 1.0 A from its image across the boundary": (
        Atoms("Si2", positions=[[0.1, 2, 2], [5.9, 2, 2]], cell=[6.0, 6.0, 6.0], pbc=True), "overlapping atoms"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_absurd_geometry_refused_by_the_calculator(calc, name):
    atoms, fragment = REFUSED[name]
    atoms = atoms.copy()
    atoms.calc = calc
    with pytest.raises(GeometryError, match=fragment) as info:
        atoms.get_potential_energy()
    msg = str(info.value)
    assert "\n" not in msg and "min_distance_factor=0.4" in msg


@pytest.mark.parametrize("name", list(REFUSED))
def test_absurd_geometry_is_an_error_row_in_screening(screener, name):
    atoms, fragment = REFUSED[name]
    block = screener.evaluate([bulk("Si", "diamond", a=5.43), atoms], ids=["good", "bad"])
    assert block["error"][0] == "" and np.isfinite(block["energy"][0])
    assert fragment in block["error"][1] and np.isnan(block["energy"][1])


@pytest.fixture(scope="module")
def screener():
    from gfm_ase.screening.engine import Screener

    return Screener(make_tiny_model(elements=ELEMENTS), "a", device="cpu", dtype="float64", max_atoms=64,
                    max_edges=4096, tune_allocator=False, uncertainty=False)


def test_cell_message_names_the_image_count_for_the_cutoff(calc):
    atoms = Atoms("Si", cell=[0.5] * 3, pbc=True)
    atoms.calc = calc
    with pytest.raises(GeometryError, match=r"the 4 A cutoff would span 4,913 periodic image cells"):
        atoms.get_potential_energy()  # tiny model: cutoff 4 A -> (2 * 8 + 1)^3 image cells


def _eos_cells():
    out = []
    for sym, kind, a in [("Si", "diamond", 5.43), ("Cu", "fcc", 3.61), ("Li", "bcc", 3.44), ("Fe", "bcc", 2.83),
                         ("NaCl", "rocksalt", 5.64)]:
        for v in (0.92, 1.0, 1.08):
            out.append((f"{sym} V={v}", bulk(sym, kind, a=a * v ** (1 / 3))))
    return out


@pytest.mark.parametrize("name,atoms", _eos_cells(), ids=[n for n, _ in _eos_cells()])
def test_eos_strains_are_evaluated(calc, name, atoms):
    atoms.calc = calc
    assert math.isfinite(atoms.get_potential_energy())


def test_compressed_phonon_displacements_are_evaluated(calc):
    base = bulk("Si", "diamond", a=5.43 * 0.92 ** (1 / 3), cubic=True) * 2
    for k in range(3):
        a = base.copy()
        a.positions[0, k] -= 0.03  # phonopy's default displacement is 0.01 A; towards a neighbour, 3x that
        a.positions[0] += 0.05 * np.eye(3)[(k + 1) % 3]
        a.calc = calc
        assert np.isfinite(a.get_forces()).all()


def test_hot_md_is_evaluated(calc):
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * 2
    MaxwellBoltzmannDistribution(atoms, temperature_K=1000, rng=np.random.default_rng(1))
    atoms.calc = GFMCalculator(model=make_tiny_model(elements=ELEMENTS), head="a", device="cpu", dtype="float64")
    VelocityVerlet(atoms, timestep=2.0 * 0.0982269).run(20)  # 2 fs
    assert math.isfinite(atoms.get_potential_energy())


@pytest.mark.parametrize("atoms", [molecule("H2O"), molecule("CH4"), molecule("H2"), fcc111("Cu", (2, 2, 3), vacuum=6),
                                   Atoms("C2", positions=[[0, 0, 0], [0, 0, 1.3]], cell=[0, 0, 2.6],
                                         pbc=[False, False, True]),
                                   Atoms("Na", cell=[3.7] * 3, pbc=True)],
                         ids=["H2O", "CH4", "H2", "Cu(111) slab", "C wire", "Na 1 atom sc"])
def test_normal_structures_are_evaluated(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    assert math.isfinite(atoms.get_potential_energy())


def test_the_threshold_is_element_aware_and_sharp():
    check = SanityCheck()
    for pair in (("H", "H"), ("Si", "Si"), ("Pt", "Pt"), ("H", "Pt"), ("Pt", "H"), ("O", "Na")):
        limit = DEFAULT_FACTOR * sum(covalent_radii[atomic_numbers[s]] for s in pair)
        sym = "".join(pair)
        ok = Atoms(sym, positions=[[0, 0, 0], [0, 0, limit * 1.001]])
        bad = Atoms(sym, positions=[[0, 0, 0], [0, 0, limit * 0.999]])
        assert check.problem(ok.positions, ok.numbers, ok.cell, ok.pbc) is None, sym
        assert "overlapping" in check.problem(bad.positions, bad.numbers, bad.cell, bad.pbc), sym
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.5]])  # fine for H (limit 0.25 A) ...
    si2 = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 0.5]])  # ... not for Si (limit 0.89 A)
    assert check.problem(h2.positions, h2.numbers, h2.cell, h2.pbc) is None
    assert check.problem(si2.positions, si2.numbers, si2.cell, si2.pbc) is not None


def test_option_changes_or_disables_the_check(calc):
    pair = Atoms("Si2", positions=[[0, 0, 0], [1.5, 0, 0]])  # ratio 0.68
    pair.calc = calc
    assert math.isfinite(pair.get_potential_energy())
    strict = GFMCalculator(model=make_tiny_model(elements=ELEMENTS), head="a", min_distance_factor=0.7)
    pair.calc = strict
    with pytest.raises(GeometryError, match="min_distance_factor=0.7"):
        pair.get_potential_energy()
    off = GFMCalculator(model=make_tiny_model(elements=ELEMENTS), head="a", min_distance_factor=0)
    close = Atoms("Si2", positions=[[0, 0, 0], [0.4, 0, 0]])
    close.calc = off
    assert math.isfinite(close.get_potential_energy())


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), float("inf"), "x", [0.4]])
def test_invalid_factor_is_an_error(value):
    with pytest.raises(ValueError, match="min_distance_factor must be a number in"):
        check_factor(value)
    with pytest.raises(ValueError, match="min_distance_factor"):
        GFMCalculator(model=make_tiny_model(elements=ELEMENTS), head="a", min_distance_factor=value)


@pytest.mark.parametrize("kwarg", ["min_distance_factr", "dtyp", "heads"])
def test_unknown_calculator_option_is_an_error(kwarg):
    with pytest.raises(TypeError, match=rf"unknown option\(s\) \['{kwarg}'\]"):
        GFMCalculator(model=make_tiny_model(elements=ELEMENTS), head="a", **{kwarg: 1})


def test_min_distance_ratio_matches_the_pair_rule():
    si = bulk("Si", "diamond", a=5.43)
    expected = 5.43 * math.sqrt(3) / 4 / (2 * covalent_radii[14])
    assert min_distance_ratio(si.positions, si.numbers, si.cell, si.pbc) == pytest.approx(expected, rel=1e-9)


def test_builtin_model_refuses_the_issue_cases_and_keeps_its_eos():
    calc = GFMCalculator(model="gfm-mini", head="omat", device="cpu")
    for name in ("Si2 0.4 A apart (issue)", "Si in a 0.5 A cell (issue)", "skewed cell, image 0.30 A (issue)"):
        atoms = REFUSED[name][0].copy()
        atoms.calc = calc
        with pytest.raises(GeometryError):
            atoms.get_potential_energy()
    for v in np.linspace(0.92, 1.08, 5):
        atoms = bulk("Si", "diamond", a=5.43 * v ** (1 / 3))
        atoms.calc = calc
        assert math.isfinite(atoms.get_potential_energy())


def test_data_check_flags_what_the_calculator_refuses(tmp_path, capsys):
    from ase.calculators.singlepoint import SinglePointCalculator

    from gfm_ase.cli import main
    from gfm_ase.data import StoreWriter

    store = tmp_path / "s.h5"
    with StoreWriter(store, name="si") as w:
        for k, d in enumerate([2.35, 0.8, 2.3]):  # 0.8 A: above the 0.5 A absolute floor, ratio 0.36 < 0.4
            a = Atoms("Si2", positions=[[0, 0, 0], [d, 0, 0]], cell=[8] * 3, pbc=True)
            a.calc = SinglePointCalculator(a, energy=-1.0)
            w.append_atoms(a, id=f"si-{k}")
    assert main(["data", "check", str(store), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "structure 1 (id 'si-1'): overlapping atoms" in out and "1 error(s)" in out
    assert main(["data", "check", str(store), "--no-progress", "--min-distance-factor", "0"]) == 0
    capsys.readouterr()
    assert main(["data", "check", str(store), "--no-progress", "--min-distance-factor", "-1"]) == 2
    assert "min_distance_factor must be a number in [0, 1]" in capsys.readouterr().err
