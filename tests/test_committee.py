"""The last-layer committee tool (gfm_ase.pretraining.committee) and the calibration numbers of the errors suite
(gfm_ase.validation.calibration)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from pretrain_helpers import make_data, tiny_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("tiny"), scale=0.25)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small random model with the example config's heads, saved (float64)."""
    from conftest import make_tiny_model
    from gfm_ase.checkpoint import save_model

    model = make_tiny_model(heads=("emt", "lj"), cutoff=4.0)
    out = save_model(model, tmp_path_factory.mktemp("src") / "model")
    (out / "card.md").write_text("a companion file (e.g. a head router) travels with the model\n")
    return out


@pytest.fixture(scope="module")
def committee(source, data_dir, tmp_path_factory):
    from gfm_ase.pretraining.committee import build_committee

    out = tmp_path_factory.mktemp("committee") / "model"
    record = build_committee(source, tiny_config(data_dir), "emt", out, members=4, calibration_structures=30,
                             force_calibration_structures=5, log=lambda *_: None)
    return out, record


def test_committee_model_loads_verified_with_members_and_the_head_unchanged(source, committee, data_dir):
    from gfm_ase.checkpoint import load_model
    from gfm_ase.runtime.uncertainty import COMMITTEE_KEY, MEMBER_KEY

    out, record = committee
    src = load_model(source)
    m = load_model(out).inference_mode_()  # checksums of weights and JSON verified, no pickle
    names = [f"emt_c{k}" for k in range(4)]
    assert m.head_names == ["emt", "lj", *names]
    assert m.head_config("emt").metrics[COMMITTEE_KEY]["members"] == names == record["members"]
    assert all(m.head_config(n).metrics[MEMBER_KEY] == "emt" for n in names)
    assert all(m.head_config(n).reference_energies == m.head_config("emt").reference_energies for n in names)
    for k, v in src.state_dict().items():  # trunk and the original heads are untouched
        assert torch.equal(m.state_dict()[k], v), k
    # the members' last layers are centred on the head's
    last = np.array([torch.cat([m.heads[n].mlp[-1].weight.ravel(), m.heads[n].mlp[-1].bias]).numpy() for n in names])
    head = torch.cat([m.heads["emt"].mlp[-1].weight.ravel(), m.heads["emt"].mlp[-1].bias]).numpy()
    np.testing.assert_allclose(last.mean(axis=0), head, atol=1e-12)
    assert np.abs(last - head).max() > 1e-8
    for n in names:  # only the last layer moves
        for a, b in zip(list(m.heads[n].mlp[:-1].parameters()), list(m.heads["emt"].mlp[:-1].parameters())):
            assert torch.equal(a, b)
    assert record["energy_scale"] > 0 and record["forces_scale"] > 0
    assert (out / "card.md").read_bytes() == (source / "card.md").read_bytes() and record["copied"] == ["card.md"]
    from gfm_ase.pretraining.data import open_datasets

    n_val = sum(len(d.val) for d in open_datasets(tiny_config(data_dir), m.cutoff) if d.head == "emt")
    assert record["calibration"]["n_structures"] == min(30, n_val) > 0


def test_calculator_uses_the_committee_and_keeps_the_head_energy(source, committee):
    from gfm_ase.calculator import GFMCalculator

    out, record = committee
    at = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    at.rattle(0.05, seed=0)
    calc = GFMCalculator(out, head="emt", dtype="float64", uncertainty=True)
    assert calc.spread.kind == "committee" and calc.spread.energy_scale == record["energy_scale"]
    res = calc.predict(at)
    plain = GFMCalculator(source, head="emt", dtype="float64").predict(at)
    assert res["energy"] == pytest.approx(plain["energy"], rel=1e-12)
    assert res["energy_std"] > 0 and res["forces_std"].shape == (len(at),)


def test_member_energies_follow_the_linear_last_layer(committee, data_dir):
    """E_k - E_head = scale * (Phi . dw_k + n db_k): the formula the fit and the calibration use."""
    from gfm_ase.checkpoint import load_model
    from gfm_ase.graph.batch import collate
    from gfm_ase.model.outputs import predict
    from gfm_ase.pretraining.committee import LastLayerInputs, member_energy_offsets

    out, _ = committee
    m = load_model(out).inference_mode_()
    from gfm_ase.pretraining.data import open_datasets

    graphs = [g for d in open_datasets(tiny_config(data_dir), m.cutoff) if d.head == "emt" for g in d.val][:6]
    data = LastLayerInputs(m, "emt")(graphs)
    names = [f"emt_c{k}" for k in range(4)]
    deltas = np.array([torch.cat([m.heads[n].mlp[-1].weight.ravel() - m.heads["emt"].mlp[-1].weight.ravel(),
                                  m.heads[n].mlp[-1].bias - m.heads["emt"].mlp[-1].bias]).numpy() for n in names])
    linear = member_energy_offsets(data, deltas, m.head_config("emt").scale)
    batch = collate(graphs, torch.float64)
    with torch.no_grad():
        head = predict(m, batch, "emt", forces=False)["energy"].numpy()
        direct = np.stack([predict(m, batch, n, forces=False)["energy"].numpy() - head for n in names], axis=1)
    np.testing.assert_allclose(linear, direct, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(data["e_head"], head, rtol=1e-12)


def test_fit_members_spread_vanishes_when_the_data_determine_the_last_layer():
    from gfm_ase.pretraining.committee import fit_members

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(200, 5)), np.ones((200, 1))], axis=1)
    theta = rng.normal(size=6)
    exact = fit_members(x, x @ theta, members=5, ridge=1e-12, seed=1)
    noisy = fit_members(x, x @ theta + 0.1 * rng.normal(size=200), members=5, ridge=1e-12, seed=1)
    np.testing.assert_allclose(exact.mean(axis=0), 0, atol=1e-12)
    assert np.abs(exact).max() < 1e-8
    assert np.abs(noisy).max() > 1e-3
    # bootstrap spread of a least-squares fit ~ sigma / sqrt(n): within a factor 3 of the textbook value
    big = fit_members(x, x @ theta + 0.1 * rng.normal(size=200), members=200, ridge=1e-12, seed=2)
    textbook = 0.1 * np.sqrt(np.diag(np.linalg.inv(x.T @ x)))
    ratio = big.std(axis=0) / textbook
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio


def test_bad_options_are_clean_errors(source, committee, data_dir, tmp_path):
    from gfm_ase.pretraining.committee import CommitteeError, build_committee

    out, _ = committee
    cfg = tiny_config(data_dir)
    with pytest.raises(CommitteeError, match="exists and is not empty"):
        build_committee(source, cfg, "emt", out, log=lambda *_: None)
    with pytest.raises(CommitteeError, match="no head 'nope'"):
        build_committee(source, cfg, "nope", tmp_path / "a", log=lambda *_: None)
    with pytest.raises(CommitteeError, match="two or more members"):
        build_committee(source, cfg, "emt", tmp_path / "b", members=1, log=lambda *_: None)
    with pytest.raises(CommitteeError, match="already has a committee"):
        build_committee(out, cfg, "emt", tmp_path / "c", log=lambda *_: None)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_cli_error_is_one_line(source, data_dir, tmp_path, capsys):
    from gfm_ase.cli import main

    rc = main(["committee", str(source), "--config", "nonexistent.yaml", "--head", "emt", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nonexistent.yaml" in err[0]


# --- calibration numbers ---------------------------------------------------------------------------------------------
def test_calibrated_gaussian_errors_give_the_gaussian_fractions():
    from gfm_ase.validation.calibration import spread_calibration

    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.1, 2.0, 20000)
    c = spread_calibration(rng.normal(size=sigma.size) * sigma, sigma, dof=1)
    for k in (1, 2, 3):
        assert c[f"within_{k}sigma"] == pytest.approx(c[f"expected_within_{k}sigma"], abs=0.01)
    assert c["rmse_over_rms_sigma"] == pytest.approx(1.0, abs=0.03)
    assert c["spearman"] > 0.3
    assert all(b["rmse"] == pytest.approx(b["rms_sigma"], rel=0.15) for b in c["bins"])
    # 3D force errors: |e| of isotropic Gaussian vectors with E|e|^2 = sigma^2
    f = rng.normal(size=(sigma.size, 3)) * sigma[:, None] / np.sqrt(3)
    c3 = spread_calibration(np.linalg.norm(f, axis=1), sigma, dof=3)
    assert c3["within_1sigma"] == pytest.approx(c3["expected_within_1sigma"], abs=0.01)
    # a spread that says nothing about the error: no rank correlation, and too small a spread: few within 1 sigma
    u = spread_calibration(rng.normal(size=sigma.size), sigma, dof=1)
    assert abs(u["spearman"]) < 0.05
    small = spread_calibration(rng.normal(size=sigma.size) * sigma, 0.2 * sigma, dof=1)
    assert small["within_1sigma"] < 0.25 and small["rmse_over_rms_sigma"] == pytest.approx(5.0, rel=0.05)


def test_errors_suite_reports_calibration_when_the_calculator_gives_a_spread(committee, data_dir, tmp_path):
    import json

    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.data import Store
    from gfm_ase.validation.errors import run_errors

    out, _ = committee
    store = Store(data_dir / "cu_bulk.h5")
    structures = [store.to_atoms(i) for i in range(12)]
    res = run_errors(GFMCalculator(out, head="emt", dtype="float64", uncertainty=True), structures, outdir=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert 0 <= summary["energy_within_1sigma"] <= 1 and 0 <= summary["forces_within_1sigma"] <= 1
    assert summary["energy_expected_within_1sigma"] == pytest.approx(0.6827, abs=1e-4)
    assert (tmp_path / "calibration.png").is_file()
    report = (tmp_path / "report.md").read_text().split("## Uncertainty calibration")[1].split("\n\n")[2]
    rows = report.strip().splitlines()
    assert len(rows) == 4 and len({r.count("|") for r in rows}) == 1  # header, rule, energy, forces: same columns
    cal = res.details["calibration"]
    assert cal["energy"]["n"] == 12 and cal["forces"]["n"] == sum(len(a) for a in structures)
    plain = run_errors(GFMCalculator(out, head="emt", dtype="float64"), structures)
    assert "energy_within_1sigma" not in plain.summary and "calibration" not in plain.details


def test_gfm_heads_shows_the_committee_under_its_head(committee, capsys):
    from gfm_ase.cli import main

    out, record = committee
    assert main(["heads", "--model", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("emt_c") for line in lines)  # members are not listed as heads of their own
    at = next(k for k, line in enumerate(lines) if line.startswith("emt "))
    assert "committee of 4 members (emt_c0, emt_c1, emt_c2, emt_c3)" in lines[at + 1]
