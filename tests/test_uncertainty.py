"""Calculator uncertainty (gfm_ase.runtime.uncertainty): energy_std / forces_std of a head's committee or family,
the same definition as screening's ``uncertainty`` column."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from gfm_ase.calculator import GFMCalculator
from gfm_ase.config import HeadConfig
from gfm_ase.graph.batch import collate, graph_from_atoms
from gfm_ase.model import GFMModel
from gfm_ase.model.outputs import predict
from gfm_ase.runtime.uncertainty import MEMBER_KEY, COMMITTEE_KEY, Spread, UncertaintyError, family_heads

REFS = {"a": {"Si": -5.0, "O": -3.0}, "b": {"Si": -4.0, "O": -2.5}, "d": {"Si": -4.5, "O": -2.0}}


def family_model(seed=0, identical=False):
    from conftest import make_tiny_config

    heads = [HeadConfig(name="a", hidden=[16], family="pbe", reference_energies=REFS["a"]),
             HeadConfig(name="b", hidden=[16], family="pbe", reference_energies=REFS["b"]),
             HeadConfig(name="d", hidden=[16], family="pbe", reference_energies=REFS["d"]),
             HeadConfig(name="c", hidden=[16], family="r2scan")]
    cfg = make_tiny_config(heads=("x",)).model_copy(update={"heads": heads})
    torch.manual_seed(seed)
    m = GFMModel(cfg).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if identical:  # b and d: the same MLP as a (references differ, and cancel in the referenced spread)
            for h in ("b", "d"):
                m.heads[h].mlp.load_state_dict(m.heads["a"].mlp.state_dict())
    return m


def structure(seed=1, repeat=(2, 1, 1)):
    at = bulk("SiO", "rocksalt", a=4.5).repeat(repeat)
    at.rattle(0.05, seed=seed)
    return at


def explicit(m, at, heads):
    """Member energies (referenced) and forces from predict(), one head at a time."""
    g = collate([graph_from_atoms(at, m.cutoff)], torch.float64)
    energies, forces = [], []
    for h in heads:
        out = predict(m, g, h, forces=True)
        ref = sum(REFS[h][s] for s in at.get_chemical_symbols())
        energies.append(float(out["energy"].detach()[0]) - ref)
        forces.append(out["forces"].detach().numpy())
    return np.array(energies), np.array(forces)


def test_energy_and_forces_std_match_numpy_std_of_member_predictions():
    m = family_model()
    at = structure()
    calc = GFMCalculator(m, head="a", dtype="float64", uncertainty=True)
    at.calc = calc
    at.get_potential_energy()
    e, f = explicit(m, at, ["a", "b", "d"])
    assert calc.results["energy_std"] == pytest.approx(np.std(e), rel=1e-9)
    assert calc.results["energy_std"] > 1e-4
    fs = calc.results["forces_std"]
    assert fs.shape == (len(at),)
    expected = np.sqrt(((f - f.mean(axis=0)) ** 2).sum(axis=-1).mean(axis=0))  # eV/A, RMS member deviation
    np.testing.assert_allclose(fs, expected, rtol=1e-8, atol=1e-12)
    assert fs.min() > 0
    # the head's own results are untouched by the option
    plain = GFMCalculator(m, head="a", dtype="float64")
    b = at.copy()
    b.calc = plain
    assert b.get_potential_energy() == pytest.approx(at.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(b.get_forces(), at.get_forces(), atol=1e-12)
    assert calc.get_property("energy_std", at) == calc.results["energy_std"]


def test_forces_std_is_in_eV_per_A_and_scales_with_the_forces():
    """Scaling every member's MLP output by k scales forces_std by k (the spread is of the forces, not of a
    squared or per-component quantity)."""
    m = family_model()
    at = structure()
    base = GFMCalculator(m, head="a", dtype="float64", uncertainty=True).predict(at)
    for h in ("a", "b", "d"):
        m.update_head_config(m.head_config(h).model_copy(update={"scale": 3.0 * m.head_config(h).scale}))
    scaled = GFMCalculator(m, head="a", dtype="float64", uncertainty=True).predict(at)
    np.testing.assert_allclose(scaled["forces_std"], 3.0 * base["forces_std"], rtol=1e-9)


def test_std_is_zero_for_identical_members():
    m = family_model(identical=True)
    at = structure()
    res = GFMCalculator(m, head="a", dtype="float64", uncertainty=True).predict(at)
    assert res["energy_std"] == 0.0
    assert np.abs(res["forces"]).max() > 1e-3
    assert res["forces_std"].max() < 1e-12 * np.abs(res["forces"]).max()  # the mean's rounding only


def test_batched_equals_one_by_one():
    m = family_model()
    structs = [structure(seed=s, repeat=r) for s, r in ((1, (2, 1, 1)), (2, (1, 1, 1)), (3, (2, 2, 1)))]
    spread = Spread.for_head(m, "a")
    batch = collate([graph_from_atoms(a, m.cutoff) for a in structs], torch.float64)
    together = spread.evaluate(m, batch, "float64")
    alone = [spread.evaluate(m, collate([graph_from_atoms(a, m.cutoff)], torch.float64), "float64") for a in structs]
    np.testing.assert_allclose(together["energy_std"], [r["energy_std"][0] for r in alone], rtol=1e-9)
    np.testing.assert_allclose(together["forces_std"], np.concatenate([r["forces_std"] for r in alone]), rtol=1e-8,
                               atol=1e-12)
    calc = GFMCalculator(m, head="a", dtype="float64", uncertainty=True)
    np.testing.assert_allclose([calc.predict(a)["energy_std"] for a in structs], together["energy_std"], rtol=1e-9)


def test_same_definition_as_screening():
    from gfm_ase.screening.engine import Screener

    m = family_model()
    at = structure()
    res = Screener(m, head="a", dtype="float64").evaluate([at])
    calc = GFMCalculator(m, head="a", dtype="float64", uncertainty=True).predict(at)
    assert res["uncertainty"][0] * len(at) == pytest.approx(calc["energy_std"], rel=1e-9)


def test_option_errors_are_clean():
    m = family_model()
    with pytest.raises(TypeError, match="uncertainty must be True or False"):
        GFMCalculator(m, head="a", uncertainty="yes")
    with pytest.raises(UncertaintyError, match="head 'c' has no committee and no family of two or more heads"):
        GFMCalculator(m, head="c", uncertainty=True)
    at = structure()
    at.calc = GFMCalculator(m, head="a", dtype="float64")
    with pytest.raises(PropertyNotImplementedError, match="uncertainty=True"):
        at.calc.get_property("energy_std", at)


def with_committee(m, head="a", members=("a_c0", "a_c1"), energy_scale=2.0, forces_scale=3.0):
    """A committee by hand: members are copies of ``head`` with perturbed last layers."""
    cfg = m.head_config(head)
    for k, name in enumerate(members):
        m.add_head(cfg.model_copy(update={"name": name, "metrics": {MEMBER_KEY: head}}))
        m.heads[name].load_state_dict(m.heads[head].state_dict())
        with torch.no_grad():
            last = m.heads[name].mlp[-1]
            last.weight.add_(0.05 * (k + 1) * torch.randn_like(last.weight))
        m.heads[name].to(torch.float64)
    m.update_head_config(cfg.model_copy(update={"metrics": {COMMITTEE_KEY: {
        "members": list(members), "energy_scale": energy_scale, "forces_scale": forces_scale}}}))
    return m


def test_committee_is_preferred_to_the_family_and_carries_its_scales():
    m = with_committee(family_model())
    at = structure()
    spread = Spread.for_head(m, "a")
    assert spread.kind == "committee" and spread.heads == ["a", "a_c0", "a_c1"]
    res = GFMCalculator(m, head="a", dtype="float64", uncertainty=True).predict(at)
    g = collate([graph_from_atoms(at, m.cutoff)], torch.float64)
    outs = [predict(m, g, h, forces=True) for h in spread.heads]
    e = np.array([float(o["energy"].detach()[0]) for o in outs])
    f = np.array([o["forces"].detach().numpy() for o in outs])
    assert res["energy_std"] == pytest.approx(2.0 * np.std(e), rel=1e-9)
    np.testing.assert_allclose(res["forces_std"], 3.0 * np.sqrt(((f - f.mean(0)) ** 2).sum(-1).mean(0)), rtol=1e-8)
    # committee members of 'a' are not family members of 'b'
    assert family_heads(m, "b") == ["b", "a", "d"]


def test_a_committee_record_naming_a_missing_or_foreign_head_is_an_error():
    m = with_committee(family_model())
    cfg = m.head_config("a")
    m.update_head_config(cfg.model_copy(update={"metrics": {COMMITTEE_KEY: {"members": ["a_c0", "zz"]}}}))
    with pytest.raises(UncertaintyError, match="'zz' is not a head"):
        GFMCalculator(m, head="a", uncertainty=True)
    m.update_head_config(cfg.model_copy(update={"metrics": {COMMITTEE_KEY: {"members": ["b"]}}}))
    with pytest.raises(UncertaintyError, match="does not record"):
        GFMCalculator(m, head="a", uncertainty=True)


def test_screening_uses_the_committee_with_the_same_definition():
    from gfm_ase.screening.engine import Screener

    m = with_committee(family_model())
    at = structure()
    screener = Screener(m, head="a", dtype="float64")
    assert screener.spread_kind == "committee" and screener.family == ["a", "a_c0", "a_c1"]
    res = screener.evaluate([at])
    calc = GFMCalculator(m, head="a", dtype="float64", uncertainty=True).predict(at)
    assert res["uncertainty"][0] * len(at) == pytest.approx(calc["energy_std"], rel=1e-9)


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("bfloat16", 5e-2)])
def test_lower_precisions_give_the_float64_spread(dtype, tol):
    m = family_model()
    at = structure()
    ref = GFMCalculator(m, head="a", dtype="float64", uncertainty=True).predict(at)
    low = GFMCalculator(m, head="a", dtype=dtype, uncertainty=True).predict(at)
    assert low["energy_std"] == pytest.approx(ref["energy_std"], rel=tol)
    np.testing.assert_allclose(low["forces_std"], ref["forces_std"], rtol=tol, atol=tol * ref["forces_std"].max())
