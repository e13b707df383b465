"""torch-sim model (gfm_ase.simulation.torchsim): torch-sim's own interface check, agreement with GFMCalculator,
stress convention, batching, dynamics and bad input. Needs the ``engines`` extra; skipped without it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

ts = pytest.importorskip("torch_sim", reason="torch-sim-atomistic not installed (pip install -e '.[engines]')")

from gfm_ase import GFMCalculator  # noqa: E402
from gfm_ase.graph.neighbors import radius_graph  # noqa: E402
from gfm_ase.graph.sanity import GeometryError  # noqa: E402
from gfm_ase.simulation.neighbors import device_radius_graph  # noqa: E402
from gfm_ase.simulation.torchsim import GFMTorchSimModel  # noqa: E402

CPU = torch.device("cpu")


def mixed_structures():
    """Structures of gfm-mini's elements: several sizes, a cell smaller than the cutoff, triclinic, alloys."""
    out = [bulk("Si", "diamond", a=5.43, cubic=True), bulk("Ge", "diamond", a=5.7).repeat((2, 1, 1)),
           bulk("Li", "bcc", a=3.45).repeat((2, 2, 2)), bulk("Mo", "bcc", a=3.16, cubic=True)]
    tri = bulk("Si", "diamond", a=5.43)
    tri.set_cell(tri.cell.array @ np.array([[1.0, 0.06, 0.02], [0.0, 1.0, 0.04], [0.0, 0.0, 0.96]]),
                 scale_atoms=True)
    out.append(tri)
    alloy = bulk("Ta", "bcc", a=3.3, cubic=True).repeat((2, 1, 1))
    alloy.numbers[::2] = 42
    out.append(alloy)
    for k, a in enumerate(out):
        a.rattle(0.04, seed=k)
    return out


@pytest.fixture(scope="module")
def model64():
    return GFMTorchSimModel("gfm-mini", "omat", device="cpu", dtype="float64")


@pytest.fixture(scope="module")
def calc64():
    return GFMCalculator("gfm-mini", "omat", device="cpu", dtype="float64")


@pytest.mark.parametrize("dtype, state_dtype", [("float64", torch.float64), ("float32", torch.float32),
                                                ("bfloat16", torch.float32)])  # bf16 trunk, float32 state
def test_passes_torch_sim_validate_model_outputs(dtype, state_dtype):
    from torch_sim.models.interface import validate_model_outputs

    # torch-sim's check uses Fe, which gfm-mini's omat head was not trained on
    model = GFMTorchSimModel("gfm-mini", "omat", device="cpu", dtype=dtype, allow_unknown_elements=True)
    assert model.dtype == state_dtype
    with pytest.warns(UserWarning, match="Fe"):
        validate_model_outputs(model, CPU, state_dtype)


def test_agrees_with_calculator_float64(model64, calc64):
    structures = mixed_structures()
    out = model64(ts.io.atoms_to_state(structures, CPU, torch.float64))
    assert out["energy"].shape == (len(structures),)
    assert out["forces"].shape == (sum(len(a) for a in structures), 3)
    assert out["stress"].shape == (len(structures), 3, 3)
    start = 0
    for b, atoms in enumerate(structures):
        atoms.calc = calc64
        n = len(atoms)
        assert abs(float(out["energy"][b]) - atoms.get_potential_energy()) < 1e-8
        np.testing.assert_allclose(out["forces"][start:start + n].numpy(), atoms.get_forces(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(out["stress"][b].numpy(), atoms.get_stress(voigt=False), rtol=0, atol=1e-8)
        start += n


def test_stress_is_strain_derivative_over_volume(model64):
    """torch-sim's convention (as ASE's): stress = (1/V) dE/d(strain), tension positive."""
    atoms = mixed_structures()[4]  # triclinic
    out = model64(ts.io.atoms_to_state([atoms], CPU, torch.float64))
    h = 1e-5
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[a, b] += 0.5 * sign * h
                eps[b, a] += 0.5 * sign * h
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
                e.append(float(model64(ts.io.atoms_to_state([strained], CPU, torch.float64))["energy"][0]))
            numeric[a, b] = (e[0] - e[1]) / (2 * h) / atoms.get_volume()
    np.testing.assert_allclose(out["stress"][0].numpy(), numeric, rtol=0, atol=1e-7)


def test_per_direction_pbc_of_later_torch_sim_releases(model64, calc64):
    """torch-sim after 0.3 stores pbc as three flags: a slab (periodic in x, y) matches the calculator."""
    from ase.build import diamond100

    slab = diamond100("Si", size=(2, 2, 4), vacuum=6.0)
    slab.rattle(0.03, seed=4)
    state = ts.io.atoms_to_state([slab], CPU, torch.float64)
    state.pbc = torch.tensor([True, True, False])
    out = model64(state)
    slab.calc = calc64
    assert abs(float(out["energy"][0]) - slab.get_potential_energy()) < 1e-8
    np.testing.assert_allclose(out["forces"].numpy(), slab.get_forces(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["stress"][0].numpy(), slab.get_stress(voigt=False), rtol=0, atol=1e-8)


def test_device_neighbor_list_matches_calculator_graph():
    for atoms, pbc in [(mixed_structures()[4], True), (molecule("CH4"), False)]:
        e_ref, s_ref = radius_graph(atoms.positions, atoms.cell.array, atoms.pbc, 5.0)
        e, s, _ = device_radius_graph(torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), pbc, 5.0)
        ref = sorted(zip(*e_ref.tolist(), *s_ref.T.tolist()))
        got = sorted(zip(*e.tolist(), *s.T.tolist()))
        assert got == ref and len(ref) > 0


def test_batched_equals_one_by_one_and_autobatcher(model64):
    structures = mixed_structures()
    state = ts.io.atoms_to_state(structures, CPU, torch.float64)
    together = model64(state)
    alone = torch.stack([model64(ts.io.atoms_to_state([a], CPU, torch.float64))["energy"][0] for a in structures])
    torch.testing.assert_close(together["energy"], alone, rtol=0, atol=1e-10)
    assert model64.memory_scales_with == "n_atoms_x_density"
    # the autobatcher splits by the model's memory metric; results come back in the original order
    metric = max(ts.autobatching.calculate_memory_scaler(s, model64.memory_scales_with) for s in state.split())
    batcher = ts.BinningAutoBatcher(model64, memory_scales_with=model64.memory_scales_with,
                                    max_memory_scaler=metric * 1.01)
    calls = []
    hook = model64.register_forward_hook(lambda module, inputs, output: calls.append(len(output["energy"])))
    try:
        results = ts.static(structures, model64, autobatcher=batcher)
    finally:
        hook.remove()
    assert len(calls) > 1 and sum(calls) == len(structures)  # really split into batches
    assert len(results) == len(structures)
    energies = torch.stack([r["potential_energy"].reshape(-1)[0] for r in results])
    torch.testing.assert_close(energies, alone, rtol=0, atol=1e-10)


def test_cell_relaxation_expands_a_compressed_cell(model64, calc64):
    """FIRE with the Frechet cell filter moves a compressed and a stretched Si cell towards the same volume; a
    stress of the wrong sign would push them further away."""
    small = bulk("Si", "diamond", a=5.2, cubic=True)
    large = bulk("Si", "diamond", a=5.7, cubic=True)
    final = ts.optimize([small, large], model64, optimizer=ts.frechet_cell_fire, max_steps=300,
                        convergence_fn=ts.generate_force_convergence_fn(1e-3))
    volumes = final.volume.numpy()
    assert volumes[0] > small.get_volume() and volumes[1] < large.get_volume()
    assert abs(volumes[0] - volumes[1]) < 1e-2 * volumes[0]
    for atoms in final.to_atoms():
        atoms.calc = calc64
        assert np.abs(atoms.get_stress()).max() < 1e-3


def test_nve_trajectory_follows_ase_velocity_verlet(model64, calc64):
    from ase import units
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    structures = mixed_structures()[:3]
    for k, atoms in enumerate(structures):
        thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(k))
    dt_fs, n_steps = 1.0, 10
    init_fn, update_fn = ts.nve(model64, dt=torch.tensor(dt_fs * 1e-3 * ts.units.MetalUnits.time,
                                                         dtype=torch.float64), kT=torch.tensor(0.0))
    state = init_fn(ts.io.atoms_to_state(structures, CPU, torch.float64))
    momenta = np.concatenate([a.get_momenta() for a in structures])  # amu A / (ASE time)
    state.momenta = torch.tensor(momenta * units.fs * 1e3 / ts.units.MetalUnits.time)  # -> torch-sim metal units
    for _ in range(n_steps):
        state = update_fn(state)
    start = 0
    for k, atoms in enumerate(structures):
        atoms.calc = calc64
        VelocityVerlet(atoms, timestep=dt_fs * units.fs).run(n_steps)
        n = len(atoms)
        diff = state.positions[start:start + n].numpy() - atoms.positions  # torch-sim wraps into the cell
        frac = np.linalg.solve(atoms.cell.array.T, diff.T).T
        diff = (frac - np.round(frac)) @ atoms.cell.array
        assert np.abs(diff).max() < 1e-5
        start += n


# --- bad input ------------------------------------------------------------------------------------------------
def test_unknown_head_is_refused_at_construction():
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        GFMTorchSimModel("gfm-mini", "nope", device="cpu")


def test_unknown_element_is_refused_before_any_step(model64):
    fe = bulk("Fe", "bcc", a=2.87, cubic=True)
    with pytest.raises(ValueError, match=r"\['Fe'\] not covered by head 'omat'"):
        ts.optimize([bulk("Si", "diamond", a=5.43), fe], model64, optimizer=ts.frechet_cell_fire, max_steps=5)


def test_stress_without_a_cell_is_a_clear_error():
    mol = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 2.3]])
    model = GFMTorchSimModel("gfm-mini", "omat", device="cpu", dtype="float64")
    with pytest.raises(ValueError, match="stress needs periodic systems"):
        model(ts.io.atoms_to_state([mol], CPU, torch.float64))
    no_stress = GFMTorchSimModel("gfm-mini", "omat", device="cpu", dtype="float64", compute_stress=False)
    out = no_stress(ts.io.atoms_to_state([mol], CPU, torch.float64))
    assert "stress" not in out and torch.isfinite(out["energy"]).all()


def test_geometry_sanity_check_names_the_system(model64):
    """The calculator's sanity check: on the host when the cells change, on the device (pair rule) otherwise."""
    good, bad = bulk("Si", "diamond", a=5.43), bulk("Si", "diamond", a=5.43, cubic=True)
    bad.positions[1] = bad.positions[0] + 0.3
    with pytest.raises(GeometryError, match="system 1: overlapping atoms: atom 0 .Si. and atom 1"):
        model64(ts.io.atoms_to_state([good, bad], CPU, torch.float64))
    fine = bulk("Si", "diamond", a=5.43, cubic=True)
    state = ts.io.atoms_to_state([good, fine], CPU, torch.float64)
    model64(state)  # checked on the host; the same cells next time: only the device pair rule
    state.positions[3] = state.positions[2] + 0.3
    with pytest.raises(GeometryError, match="system 1: overlapping atoms: atom 0 .Si. and atom 1 .Si. are 0.520"):
        model64(state)
    tiny = bulk("Si", "diamond", a=0.5)
    with pytest.raises(GeometryError, match="system 0: cell too small"):
        model64(ts.io.atoms_to_state([tiny], CPU, torch.float64))
    off = GFMTorchSimModel(evaluator=model64.evaluator, min_distance_factor=0)
    assert torch.isfinite(off(ts.io.atoms_to_state([good, bad], CPU, torch.float64))["energy"]).all()


def test_unknown_forward_option_is_an_error(model64):
    with pytest.raises(TypeError, match="unknown options"):
        model64(ts.io.atoms_to_state([bulk("Si", "diamond", a=5.43)], CPU, torch.float64), compute_virials=True)
