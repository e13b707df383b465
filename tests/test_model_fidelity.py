"""The fidelity embedding (gfm_ase.model.fidelity): a model is unchanged by adding it (zero start), a head evaluates
at its own fidelity, a structure's explicit fidelity wins, physics still holds (forces and stress by finite
differences, invariance, extensivity, batched = one by one), the config refuses what it cannot mean, and the
trainer trains each dataset at its fidelity."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from conftest import make_fidelity_model as _fidelity_model
from conftest import make_tiny_config
from pretrain_helpers import make_data, tiny_config


def _triclinic():
    a = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    a.set_cell(a.cell.array @ np.array([[1.0, 0.08, -0.05], [0.03, 0.97, 0.06], [-0.04, 0.02, 1.03]]),
               scale_atoms=True)
    a.numbers[1] = 6
    a.rattle(0.05, seed=1)
    return a


def _predict(model, atoms_list, head=None, heads=None, fidelities=None, **kw):
    from gfm_ase.graph import collate, graph_from_atoms
    from gfm_ase.model import predict

    graphs = [graph_from_atoms(a, model.cutoff) for a in atoms_list]
    for k, g in enumerate(graphs):
        if heads is not None:
            g.head = heads[k]
        if fidelities is not None:
            g.fidelity = fidelities[k]
    return {k: v.detach() for k, v in predict(model, collate(graphs), head, **kw).items()}


def test_config_declares_and_refuses():
    from gfm_ase.config import HeadConfig, ModelConfig

    with pytest.raises(ValueError, match="fidelities the model does not have"):
        ModelConfig(fidelities=["dft"], heads=[HeadConfig(name="a", fidelity="pbe")])
    with pytest.raises(ValueError, match="duplicate fidelity"):
        ModelConfig(fidelities=["dft", "dft"], heads=[HeadConfig(name="a")])
    with pytest.raises(ValueError, match="letters, digits"):
        ModelConfig(fidelities=["d f t"], heads=[HeadConfig(name="a")])
    with pytest.raises(ValueError, match="fidelities the model does not have"):
        ModelConfig(heads=[HeadConfig(name="a", fidelity="dft")])  # no fidelities at all


def test_trunk_without_condition_is_refused(monkeypatch):
    from gfm_ase.model import GFMModel
    from gfm_ase.model.painn import PaiNN

    monkeypatch.setattr(PaiNN, "accepts_condition", False)
    cfg = make_tiny_config().model_copy(update={"fidelities": ["dft"]})
    with pytest.raises(ValueError, match="accepts_condition"):
        GFMModel(cfg)


def test_zero_vectors_leave_the_model_unchanged():
    from gfm_ase.model import GFMModel

    torch.manual_seed(0)
    plain_cfg = make_tiny_config(heads=("a", "b"))
    plain = GFMModel(plain_cfg).double().eval()
    fid_cfg = plain_cfg.model_copy(
        update={
            "fidelities": ["dft", "surrogate"],
            "heads": [plain_cfg.heads[0].model_copy(update={"fidelity": "dft"}), plain_cfg.heads[1]],
        }
    )
    fid = GFMModel(type(fid_cfg)(**fid_cfg.model_dump())).double().eval()
    missing, unexpected = fid.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["fidelity.embedding.weight"] and not unexpected
    assert torch.count_nonzero(fid.fidelity.embedding.weight) == 0  # the vectors start at zero
    atoms = [_triclinic(), bulk("Cu", "fcc", a=3.6)]
    for head in ("a", "b"):
        a = _predict(plain, atoms, head, stress=True)
        b = _predict(fid, atoms, head, stress=True)
        for k in ("energy", "forces", "stress"):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_head_fidelity_and_explicit_structure_fidelity():
    model = _fidelity_model()
    atoms = [_triclinic()]
    # head a evaluates at "dft" (index 0): the same as any head asked explicitly for fidelity 0 -- here c, whose
    # own fidelity is none, evaluated on a structure marked dft, must equal c's MLP on a's trunk features
    e_a = _predict(model, atoms, "a")["energy"]
    e_a_dft = _predict(model, atoms, "a", fidelities=[0])["energy"]
    e_a_sur = _predict(model, atoms, "a", fidelities=[1])["energy"]
    torch.testing.assert_close(e_a, e_a_dft, rtol=0, atol=0)
    assert abs(float(e_a - e_a_sur)) > 1e-3  # the vectors condition the trunk
    e_c = _predict(model, atoms, "c")["energy"]
    e_c_dft = _predict(model, atoms, "c", fidelities=[0])["energy"]
    assert abs(float(e_c - e_c_dft)) > 1e-3  # c has no fidelity: no vector unless the structure names one
    # per-structure heads (training): each structure at its head's fidelity unless it names its own
    mixed = _predict(model, atoms * 3, None, heads=[0, 1, 2], fidelities=[-1, -1, 0])
    torch.testing.assert_close(mixed["energy"][0], e_a[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(mixed["energy"][1], _predict(model, atoms, "b")["energy"][0], rtol=0, atol=1e-10)
    torch.testing.assert_close(mixed["energy"][2], e_c_dft[0], rtol=0, atol=1e-10)


def test_forces_and_stress_match_finite_differences():
    from gfm_ase.calculator import GFMCalculator

    model = _fidelity_model()
    atoms = _triclinic()
    atoms.calc = GFMCalculator(model=model, head="b", dtype="float64", device="cpu")
    f = atoms.get_forces()
    s = atoms.get_stress()
    h = 1e-4
    num = np.zeros_like(f)
    for a in range(len(atoms)):
        for k in range(3):
            p, m = atoms.copy(), atoms.copy()
            p.calc = m.calc = atoms.calc
            p.positions[a, k] += h
            m.positions[a, k] -= h
            num[a, k] = -(p.get_potential_energy() - m.get_potential_energy()) / (2 * h)
    np.testing.assert_allclose(f, num, atol=1e-6)
    # stress: dE/d(strain) / V with symmetric strains, Voigt xx yy zz yz xz xy
    v = atoms.get_volume()
    pairs = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for n, (i, j) in enumerate(pairs):
        es = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = sign * h / (1 if i == j else 2)
            x = atoms.copy()
            x.calc = atoms.calc
            x.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            es.append(x.get_potential_energy())
        assert s[n] == pytest.approx((es[0] - es[1]) / (2 * h) / v, abs=1e-6)


def test_invariance_extensivity_and_batching():
    model = _fidelity_model()
    atoms = _triclinic()
    e0 = _predict(model, [atoms], "a")["energy"][0]
    rot = atoms.copy()
    rot.rotate(37, (1, 2, 3), rotate_cell=True)
    rot.translate((0.3, -1.1, 2.0))
    perm = atoms[np.random.default_rng(0).permutation(len(atoms))]
    for other in (rot, perm):
        assert float(_predict(model, [other], "a")["energy"][0]) == pytest.approx(float(e0), abs=1e-9)
    big = atoms * (2, 1, 1)
    assert float(_predict(model, [big], "a")["energy"][0]) == pytest.approx(2 * float(e0), abs=1e-8)
    structures = [atoms, molecule("CH4"), bulk("Cu", "fcc", a=3.6)]
    batch = _predict(model, structures, None, heads=[0, 1, 2], fidelities=[1, -1, 0])
    for k, s in enumerate(structures):
        one = _predict(model, [s], None, heads=[k], fidelities=[[1, -1, 0][k]])
        assert float(batch["energy"][k]) == pytest.approx(float(one["energy"][0]), abs=1e-10)


def test_checkpoint_round_trip_and_one_pass_refusals(tmp_path):
    from gfm_ase.checkpoint import load_model, save_model
    from gfm_ase.runtime.uncertainty import member_outputs

    model = _fidelity_model()
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m").double()
    assert back.config.fidelities == ["dft", "surrogate"] and back.head_config("a").fidelity == "dft"
    atoms = [_triclinic()]
    for head in ("a", "b", "c"):
        torch.testing.assert_close(_predict(back, atoms, head)["energy"], _predict(model, atoms, head)["energy"])
    with pytest.raises(ValueError, match="different fidelities"):
        _predict(model, atoms, "a", extra_heads=["b"])
    from gfm_ase.graph import collate, graph_from_atoms

    batch = collate([graph_from_atoms(atoms[0], model.cutoff)])
    with pytest.raises(ValueError, match="different fidelities"):
        member_outputs(model, batch, ["a", "b"], "float64")
    with pytest.raises(ValueError, match="not one of the model"):
        from gfm_ase.config import HeadConfig

        model.add_head(HeadConfig(name="d", fidelity="r2scan"))


# ---------------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("tiny-fid"), scale=0.25)


def _fid_overrides(**extra):
    return {
        "model.fidelities": ["emt_ref", "emt_alt"],
        "heads.0.fidelity": "emt_ref",
        "datasets.2.fidelity": "emt_alt",  # cuau_alloy trains the emt head at the other fidelity
        "sampling.steps_per_epoch": 12,
        "sampling.epochs": 1,
        "validation.max_structures": 4,
        **extra,
    }


def test_trainer_trains_each_dataset_at_its_fidelity(data_dir, tmp_path):
    from gfm_ase.checkpoint import load_model
    from gfm_ase.pretraining.trainer import Trainer

    cfg = tiny_config(data_dir, **_fid_overrides())
    tr = Trainer(cfg, tmp_path)
    assert tr.dataset_fidelity == [-1, -1, 1, -1]
    tr.fit()
    model = load_model(tmp_path / "final")
    table = model.fidelity.embedding.weight
    assert torch.count_nonzero(table[0]) == 0  # "no fidelity" stays zero
    assert torch.count_nonzero(table[1]) > 0 and torch.count_nonzero(table[2]) > 0  # both were trained
    prov = {d["name"]: d.get("fidelity") for d in model.head_config("emt").datasets}
    assert prov == {"cu_bulk": "emt_ref", "au_bulk": "emt_ref", "cuau_alloy": "emt_alt"}
    assert model.head_config("lj").fidelity is None
    from gfm_ase.calculator import head_summary  # what `gfm heads --json` prints

    summary = head_summary(model.head_config("emt").model_dump())
    assert summary["fidelity"] == "emt_ref"
    assert {d["name"]: d["fidelity"] for d in summary["datasets"]} == prov


def test_pretrain_config_refuses_undeclared_fidelity(data_dir):
    from gfm_ase.pretraining.config import ConfigError

    with pytest.raises(ConfigError, match="model.fidelities"):
        tiny_config(data_dir, **_fid_overrides(**{"datasets.2.fidelity": "r2scan"}))


def test_warm_start_adds_fidelities_at_zero(data_dir, tmp_path):
    from gfm_ase.checkpoint import load_model
    from gfm_ase.pretraining.trainer import Trainer

    base_cfg = tiny_config(data_dir, sampling__steps_per_epoch=6, sampling__epochs=1, validation__max_structures=4)
    Trainer(base_cfg, tmp_path / "base").fit()
    base = load_model(tmp_path / "base" / "final")
    tr = Trainer(tiny_config(data_dir, **_fid_overrides(**{"model.init_from": str(tmp_path / "base" / "final")})),
                 tmp_path / "warm")
    start = tr.model.state_dict()
    assert torch.count_nonzero(start["fidelity.embedding.weight"]) == 0
    for k, v in base.state_dict().items():
        torch.testing.assert_close(start[k], v.to(start[k].dtype), rtol=0, atol=0)


def test_ablation_evaluates_a_head_at_another_fidelity():
    from gfm_ase.pretraining.ablation import at_fidelity

    model = _fidelity_model()
    atoms = [_triclinic()]
    as_surrogate = _predict(model, atoms, "a", fidelities=[1])["energy"]
    at_fidelity(model, "a", "surrogate")
    torch.testing.assert_close(_predict(model, atoms, "a")["energy"], as_surrogate, rtol=0, atol=0)
    with pytest.raises(ValueError, match="not one of the model"):
        at_fidelity(model, "a", "r2scan")


def test_fidelity_vectors_get_no_weight_decay():
    from gfm_ase.pretraining.optimization import default_param_groups

    model = _fidelity_model()
    decay, no_decay = default_param_groups(model, 0.01)
    table = model.fidelity.embedding.weight
    assert any(p is table for p in no_decay["params"]) and not any(p is table for p in decay["params"])
