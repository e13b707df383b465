"""Each fine-tuning strategy on a tiny task: the loss falls, what is frozen stays bit-for-bit, the other heads are
unchanged when the trunk is frozen, replay keeps the other heads' errors within tolerance, and the scratch baseline
and the forgetting report are written."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finetune_helpers import shared_pretrained, tensors
from gfm_ase.pretraining.logger import read_csv


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    return shared_pretrained(tmp_path_factory)


def _ft(pre, outdir, store, **kw):
    from gfm_ase.finetune_zoo import FinetuneConfig, finetune

    optim = {"lr": 5e-3, **kw.pop("optim", {})}
    doc = {"steps": 40, "batch_size": 4, "seed": 0, "optim": optim, **kw}
    cfg = FinetuneConfig(**doc)
    # the model records its stores by file name (no machine paths): the pretraining data is found via data_dirs
    return finetune(str(pre["model"]), str(store), outdir=outdir, config=cfg, data_dirs=[pre["data"]],
                    log=lambda *a: None)


def _losses(outdir):
    loss = np.array([float(r["loss"]) for r in read_csv(outdir / "logs" / "train.csv")])
    assert np.isfinite(loss).all()
    return loss


@pytest.fixture(scope="module")
def frozen(pre, tmp_path_factory):
    out = tmp_path_factory.mktemp("frozen")
    return out, _ft(pre, out, pre["morse"], head={"name": "morse", "level_of_theory": "Morse"}, strategy="frozen",
                    baseline="scratch")


def test_frozen_loss_falls_and_trunk_and_other_heads_are_bit_identical(pre, frozen):
    out, m = frozen
    loss = _losses(out)
    assert loss[-3:].mean() < 0.5 * loss[:3].mean()
    before, after = tensors(pre["model"]), tensors(out)
    new = [k for k in after if k.startswith("heads.morse.")]
    assert new and set(after) == set(before) | set(new)
    for k, v in before.items():  # trunk and heads emt, lj: not one bit changed
        assert torch.equal(after[k], v), k
    rep = m["forgetting"]
    assert set(rep) == {"emt", "lj"}
    for h in ("emt", "lj"):
        assert rep[h]["status"] == "ok" and rep[h]["before"]["forces_mae_meV_A"] > 0
        assert rep[h]["delta"]["forces_mae_meV_A"] == 0.0 and rep[h]["delta"]["energy_mae_meV_atom"] == 0.0
    assert m["elements_unseen_by_trunk"] == []
    assert m["finetuned"]["trainable_parameters"] == sum(v.numel() for k, v in after.items() if k in new)


def test_output_dir_loads_in_the_calculator_with_every_head(pre, frozen):
    from ase.build import bulk

    from gfm_ase.calculator import GFMCalculator

    out, m = frozen
    heads = GFMCalculator.available_heads(str(out))
    assert list(heads) == ["emt", "lj", "morse"]
    meta = heads["morse"]
    assert meta["level_of_theory"] == "Morse" and meta["elements"] == ["Cu"]
    assert meta["metrics"]["strategy"] == "frozen" and meta["metrics"]["test"]["n_structures"] == 0
    assert meta["metrics"]["val"]["forces_mae_meV_A"] == pytest.approx(m["finetuned"]["val"]["forces_mae_meV_A"])
    assert meta["datasets"][0]["role"] == "finetune" and meta["datasets"][0]["n_train"] == m["task"]["n_train"]
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=3)
    e = {}
    for h in ("emt", "lj", "morse"):
        atoms.calc = GFMCalculator(model=str(out), head=h, device="cpu")
        e[h] = atoms.get_potential_energy()
        base = GFMCalculator(model=str(pre["model"]), head=h, device="cpu") if h != "morse" else None
        if base is not None:  # the old heads predict exactly what they did
            assert base.predict(atoms)["energy"] == e[h]
    assert len(set(e.values())) == 3


def test_reference_energies_of_a_new_head_are_fitted_on_its_training_split(pre, frozen):
    from gfm_ase.data import Store, fit_reference_energies

    out, m = frozen
    store = Store(pre["morse"])
    meta = json.loads((out / "final" / "model.json").read_text())
    head = next(h for h in meta["config"]["heads"] if h["name"] == "morse")
    idx = meta["config"]["heads"][2]["datasets"][0]["val"]["indices"]
    train = np.setdiff1d(np.arange(len(store)), idx)
    assert len(train) == m["task"]["n_train"] == 36
    assert head["reference_energies"] == pytest.approx(fit_reference_energies(store, train), rel=1e-9)


def test_scratch_baseline_has_the_same_architecture_and_budget(pre, frozen):
    from gfm_ase.checkpoint import read_model_json

    out, m = frozen
    s = m["scratch"]
    assert s["val"]["forces_mae_meV_A"] > 0 and m["finetuned"]["val"]["forces_mae_meV_A"] > 0
    doc, base = read_model_json(out / "scratch" / "final"), read_model_json(pre["model"] / "final")
    assert doc["config"]["trunk"] == base["config"]["trunk"]
    assert [h["name"] for h in doc["config"]["heads"]] == ["morse"]
    assert len(read_csv(out / "scratch" / "logs" / "train.csv")) == len(read_csv(out / "logs" / "train.csv"))
    assert doc["extra"]["finetune_training"]["steps"] == 40
    assert s["trainable_parameters"] > m["finetuned"]["trainable_parameters"]


def test_frozen_trains_embedding_rows_of_elements_no_head_saw_and_nothing_else(pre, tmp_path):
    from ase.data import atomic_numbers

    m = _ft(pre, tmp_path, pre["ag"], head="ag", strategy="frozen", steps=20)
    assert m["elements_unseen_by_trunk"] == ["Ag"]
    n_head = sum(v.numel() for k, v in tensors(tmp_path).items() if k.startswith("heads.ag."))
    assert m["finetuned"]["trainable_parameters"] == n_head + 16  # + one embedding row of 16 features
    assert any("never seen" in n for n in m["notes"])
    before, after = tensors(pre["model"]), tensors(tmp_path)
    emb_b, emb_a = before["trunk.embedding.weight"], after["trunk.embedding.weight"]
    changed = (emb_a != emb_b).any(dim=1).nonzero().flatten().tolist()
    assert changed == [atomic_numbers["Ag"]]
    for k, v in before.items():
        if k != "trunk.embedding.weight":
            assert torch.equal(after[k], v), k
    for h in ("emt", "lj"):  # their elements' rows did not change, so neither did their errors
        assert m["forgetting"][h]["delta"]["forces_mae_meV_A"] == 0.0


def test_full_trains_the_trunk_at_a_scaled_lr_and_keeps_other_heads_weights(pre, tmp_path):
    m = _ft(pre, tmp_path / "a", pre["morse"], head="morse", strategy="full", optim={"trunk_lr_factor": 0.3})
    loss = _losses(tmp_path / "a")
    assert loss[-3:].mean() < 0.5 * loss[:3].mean()
    before, after = tensors(pre["model"]), tensors(tmp_path / "a")
    assert not torch.equal(after["trunk.messages.0.filter.weight"], before["trunk.messages.0.filter.weight"])
    for k, v in before.items():
        if k.startswith("heads."):
            assert torch.equal(after[k], v), k
    assert m["forgetting"]["emt"]["delta"]["forces_mae_meV_A"] != 0.0  # the trunk moved: other heads' errors too
    meta = json.loads((tmp_path / "a" / "final" / "model.json").read_text())
    emt = next(h for h in meta["config"]["heads"] if h["name"] == "emt")
    note = emt["metrics"]["finetuning"][-1]
    assert note["finetuned_head"] == "morse" and "warning" in note and note["after"]["forces_mae_meV_A"] > 0
    # a trunk LR factor of 0 leaves the trunk where it was (up to the rounding of the weight average)
    _ft(pre, tmp_path / "b", pre["morse"], head="morse", strategy="full", optim={"trunk_lr_factor": 0.0}, steps=10)
    b = tensors(tmp_path / "b")
    for k, v in before.items():
        if k.startswith("trunk."):
            torch.testing.assert_close(b[k], v, rtol=1e-6, atol=1e-7)
    assert not torch.equal(b["heads.morse.mlp.0.weight"], after["heads.morse.mlp.0.weight"])


def test_full_trains_embeddings_of_elements_no_head_saw_at_the_head_lr(pre, tmp_path):
    """With the trunk's LR at 0, only the new element's embedding row (new weights, at the head's LR) moves."""
    from ase.data import atomic_numbers

    m = _ft(pre, tmp_path, pre["ag"], head="ag", strategy="full", optim={"trunk_lr_factor": 0.0}, steps=15)
    assert m["elements_unseen_by_trunk"] == ["Ag"]
    before, after = tensors(pre["model"]), tensors(tmp_path)
    ag = atomic_numbers["Ag"]
    delta = (after["trunk.embedding.weight"] - before["trunk.embedding.weight"]).abs().max(dim=1).values
    assert delta[ag] > 1e-3
    assert float(torch.cat([delta[:ag], delta[ag + 1:]]).max()) < 1e-6
    for k, v in before.items():
        if k.startswith("trunk.") and k != "trunk.embedding.weight":
            torch.testing.assert_close(after[k], v, rtol=1e-6, atol=1e-7)


def test_continue_keeps_the_head_and_adds_references_for_new_elements(pre, tmp_path):
    from gfm_ase.checkpoint import read_model_json

    m = _ft(pre, tmp_path, pre["ag"], head="emt", strategy="continue")
    loss = _losses(tmp_path)
    assert loss[-3:].mean() < 0.5 * loss[:3].mean()
    assert m["new_head"] is False and m["elements_new_to_head"] == ["Ag"]
    base = {h["name"]: h for h in read_model_json(pre["model"] / "final")["config"]["heads"]}["emt"]
    new = {h["name"]: h for h in read_model_json(tmp_path / "final")["config"]["heads"]}["emt"]
    assert new["elements"] == ["Cu", "Ag", "Au"]
    for el in ("Cu", "Au"):
        assert new["reference_energies"][el] == base["reference_energies"][el]
    assert np.isfinite(new["reference_energies"]["Ag"])
    assert (new["scale"], new["shift"]) == (base["scale"], base["shift"])
    before, after = tensors(pre["model"]), tensors(tmp_path)
    assert set(before) == set(after)  # no head added
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("heads.lj."))
    assert not torch.equal(after["heads.emt.mlp.0.weight"], before["heads.emt.mlp.0.weight"])
    # the emt head's own pretraining data is part of the forgetting report
    assert m["forgetting"]["emt"]["status"] == "ok"
    # a continued head is pretrained: it trains at the trunk's LR (here 0: only its new reference changes)
    m0 = _ft(pre, tmp_path / "zero", pre["ag"], head="emt", strategy="continue", optim={"trunk_lr_factor": 0.0},
             steps=10)
    assert m0["elements_new_to_head"] == ["Ag"]
    for k, v in before.items():
        if not k.startswith("trunk.embedding"):
            torch.testing.assert_close(tensors(tmp_path / "zero")[k], v, rtol=1e-6, atol=1e-7)


def test_replay_keeps_the_other_heads_errors_within_tolerance(pre, tmp_path):
    """Same aggressive fine-tuning (trunk at the head's LR) with and without replay: without it the other heads'
    held-out force errors grow; with a replay share of 0.5 they stay within 25 % (+10 meV/A) of where they were."""
    kw = dict(head="morse", optim={"trunk_lr_factor": 1.0, "lr": 1e-2}, steps=60, forgetting_max_structures=None)
    full = _ft(pre, tmp_path / "full", pre["morse"], strategy="full", **kw)
    rep = _ft(pre, tmp_path / "replay", pre["morse"], strategy="replay", replay_fraction=0.5, **kw)
    assert rep["replay"]["heads"] == ["emt", "lj"]
    assert rep["replay"]["datasets"] == ["cu_bulk", "au_bulk", "cuau_alloy", "cu_lj"]
    # the sampler draws the task with 1 - replay_fraction and the replayed sets with the rest
    shares = list(rep["replay"]["sampled_shares"].values())
    assert shares[0] == pytest.approx(0.5) and sum(shares[1:]) == pytest.approx(0.5)
    loss = _losses(tmp_path / "replay")
    assert loss[-5:].mean() < loss[:5].mean()
    for h in ("emt", "lj"):
        b = rep["forgetting"][h]["before"]["forces_mae_meV_A"]
        a_rep = rep["forgetting"][h]["after"]["forces_mae_meV_A"]
        a_full = full["forgetting"][h]["after"]["forces_mae_meV_A"]
        assert full["forgetting"][h]["before"]["forces_mae_meV_A"] == b
        assert a_rep <= 1.25 * b + 10.0, (h, b, a_rep, a_full)
        assert a_rep < a_full, (h, b, a_rep, a_full)
    # replayed heads trained: their weights moved, unlike in full fine-tuning
    before, after = tensors(pre["model"]), tensors(tmp_path / "replay")
    assert not torch.equal(after["heads.lj.mlp.0.weight"], before["heads.lj.mlp.0.weight"])


def test_zero_initialised_new_head_starts_at_its_reference_energies(pre, tmp_path):
    from gfm_ase.checkpoint import load_model
    from gfm_ase.data import GraphDataset, Store
    from gfm_ase.graph import collate
    from gfm_ase.model.outputs import predict

    _ft(pre, tmp_path, pre["morse"], head="morse", strategy="frozen", steps=1, optim={"lr": 1e-12}, zero_init_head=True,
        ema={"enabled": False}, baseline="scratch")
    for sub in ("final", "scratch/final"):
        model = load_model(tmp_path / sub).double()
        h = model.head_config("morse")
        store = Store(pre["morse"])
        batch = collate([GraphDataset(store, model.cutoff)[i] for i in range(4)], dtype=torch.float64)
        out = predict(model, batch, "morse", forces=True)
        expect = [sum(h.reference_energies["Cu"] + h.shift for _ in range(int(n))) for n in batch.n_atoms]
        np.testing.assert_allclose(out["energy"].detach().numpy(), expect, rtol=1e-6)  # float32 constants
        assert float(out["forces"].abs().max()) < 1e-9  # output layer ~1e-12 after one step at lr 1e-12


def test_refusals_lose_nothing(pre, tmp_path):
    from gfm_ase.finetune_zoo import FinetuneError

    with pytest.raises(FinetuneError, match="continue"):
        _ft(pre, tmp_path / "x", pre["morse"], head="emt", strategy="full")
    with pytest.raises(FinetuneError, match="existing head"):
        _ft(pre, tmp_path / "y", pre["morse"], head="nohead", strategy="continue")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
