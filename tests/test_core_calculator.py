import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from conftest import make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.graph import StructureError


@pytest.fixture
def calc():
    return GFMCalculator(model=make_tiny_model(elements=("Cu", "Si", "H", "C", "O")), head="a", device="cpu")


def test_results_and_properties(calc):
    a = bulk("Cu", "fcc", a=3.6) * 2
    a.rattle(0.02, seed=0)
    a.calc = calc
    e = a.get_potential_energy()
    assert a.get_potential_energy(force_consistent=True) == e
    assert a.get_forces().shape == (8, 3)
    assert a.get_stress().shape == (6,)
    assert np.isclose(a.get_potential_energies().sum(), e)


def test_head_errors():
    m = make_tiny_model()
    with pytest.raises(ValueError, match=r"choose one with head=.*\['a', 'b'\]"):
        GFMCalculator(model=m)
    with pytest.raises(ValueError, match=r"unknown head 'zz'; available heads: \['a', 'b'\]"):
        GFMCalculator(model=m, head="zz")
    single = make_tiny_model(heads=("only",))
    assert GFMCalculator(model=single).head == "only"
    with pytest.raises(ValueError, match="dtype"):
        GFMCalculator(model=m, head="a", dtype="float16")


def test_unknown_element_refused_or_warned(calc):
    a = bulk("NaCl", "rocksalt", a=5.6)
    a.calc = calc
    with pytest.raises(ValueError, match=r"\['Na', 'Cl'\] not covered by head 'a'"):
        a.get_potential_energy()
    lenient = GFMCalculator(model=make_tiny_model(elements=("Cu",)), head="a", allow_unknown_elements=True)
    a.calc = lenient
    with pytest.warns(UserWarning, match="not covered"):
        a.get_potential_energy()


def test_stress_without_cell(calc):
    m = molecule("CH4")
    m.calc = calc
    m.get_forces()
    with pytest.raises(PropertyNotImplementedError, match="stress needs a periodic structure"):
        m.get_stress()


def test_bad_structures(calc):
    a = bulk("Cu", "fcc", a=3.6) * 2
    a.positions[3, 1] = np.nan
    a.calc = calc
    with pytest.raises(StructureError, match="NaN"):
        a.get_potential_energy()
    e = Atoms(cell=np.eye(3) * 5, pbc=True)
    e.calc = calc
    with pytest.raises(StructureError, match="empty"):
        e.get_potential_energy()
    o = Atoms("Cu2", positions=[[0, 0, 0], [0.05, 0, 0]], cell=np.eye(3) * 6, pbc=True)
    o.calc = calc
    with pytest.raises(StructureError, match="overlapping"):
        o.get_potential_energy()


def test_pymatgen_structure(calc):
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(3.6), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    res = calc.predict(s)
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    a.calc = calc
    assert res["energy"] == pytest.approx(a.get_potential_energy(), abs=1e-5)
    assert res["stress"].shape == (6,)


def test_metadata_exposed(calc):
    md = calc.metadata
    assert md["name"] == "a" and md["elements"] == ["H", "C", "O", "Si", "Cu"]


def test_compile_option_gives_the_eager_results_along_md():
    """GFMCalculator(compile=...) evaluates a compiled view of the trunk (dynamo's "eager" backend here: the real
    inductor compile takes minutes and is exercised on CUDA in tests/test_gpu.py); the model itself is untouched."""
    import torch
    from ase import units
    from ase.md.verlet import VelocityVerlet
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from gfm_ase.model.compiled import CompiledTrunkModel

    model = make_tiny_model()
    torch._dynamo.reset()
    calcs = [GFMCalculator(model=model, head="a", dtype="float64", device="cpu"),
             GFMCalculator(model=model, head="a", dtype="float64", device="cpu", compile={"backend": "eager"})]
    assert isinstance(calcs[1].runner, CompiledTrunkModel) and calcs[0].runner is model
    assert not isinstance(model.trunk, torch._dynamo.eval_frame.OptimizedModule)
    traces = []
    for calc in calcs:
        atoms = bulk("Si", "diamond", a=5.43) * (2, 2, 1)
        atoms.rattle(0.05, seed=4)
        MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(0))
        atoms.calc = calc
        rows = []
        dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
        dyn.attach(lambda a=atoms: rows.append(np.concatenate([[a.get_potential_energy()], a.get_forces().ravel(),
                                                                a.get_stress()])), interval=1)
        dyn.run(5)
        traces.append(np.array(rows))
    np.testing.assert_allclose(traces[1], traces[0], rtol=0, atol=1e-10)
