"""Pretraining options of the ZBL continuation: the pair term in the trained model, warm start from a trained
model (weights and head constants carried over, mismatches refused), and the label filter (counted, not silent)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain_helpers import make_data, tiny_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("tiny"), scale=0.25)


@pytest.fixture(scope="module")
def base_run(data_dir, tmp_path_factory):
    from gfm_ase.pretraining.trainer import Trainer

    out = tmp_path_factory.mktemp("base")
    cfg = tiny_config(data_dir, sampling__steps_per_epoch=10, sampling__epochs=1, validation__max_structures=4)
    Trainer(cfg, out).fit()
    return out / "final"


def test_warm_start_begins_from_the_trained_weights_and_constants(data_dir, base_run, tmp_path):
    from gfm_ase.checkpoint import load_model
    from gfm_ase.pretraining.trainer import Trainer

    base = load_model(base_run)
    cfg = tiny_config(data_dir, model__init_from=str(base_run), sampling__steps_per_epoch=5, sampling__epochs=1,
                      validation__max_structures=4, seed=7)
    tr = Trainer(cfg, tmp_path)
    start = tr.model.state_dict()
    for k, v in base.state_dict().items():
        torch.testing.assert_close(start[k], v.to(start[k].dtype), rtol=0, atol=0)
    for h in base.head_names:
        old, new = base.head_config(h), tr.model.head_config(h)
        assert (new.scale, new.shift, new.reference_energies) == (old.scale, old.shift, old.reference_energies)
    # a random start with the same seed would differ
    cold = Trainer(tiny_config(data_dir, sampling__steps_per_epoch=5, sampling__epochs=1, seed=7), tmp_path / "c")
    assert any(not torch.equal(cold.model.state_dict()[k], start[k]) for k in start)


def test_warm_start_refuses_another_architecture(data_dir, base_run, tmp_path):
    from gfm_ase.pretraining.trainer import Trainer
    from gfm_ase.pretraining.warm_start import WarmStartError

    cfg = tiny_config(data_dir, model__init_from=str(base_run), **{"model.trunk.options.num_features": 24})
    with pytest.raises(WarmStartError, match="num_features"):
        Trainer(cfg, tmp_path)
    with pytest.raises(WarmStartError, match="init_from"):
        Trainer(tiny_config(data_dir, model__init_from=str(tmp_path / "nothing")), tmp_path / "x")


def test_pair_term_is_trained_in_and_saved(data_dir, base_run, tmp_path):
    from gfm_ase.checkpoint import load_model
    from gfm_ase.config import PairRepulsionConfig
    from gfm_ase.pretraining.trainer import Trainer

    cfg = tiny_config(data_dir, model__init_from=str(base_run), model__repulsion={"cutoff_factor": 1.0},
                      sampling__steps_per_epoch=5, sampling__epochs=1, validation__max_structures=4)
    tr = Trainer(cfg, tmp_path)
    assert tr.model.repulsion is not None  # the trainer's forward includes the pair term
    tr.fit()
    final = load_model(tmp_path / "final")
    assert final.config.repulsion == PairRepulsionConfig(cutoff_factor=1.0)


def test_label_filter_drops_and_counts_outliers(data_dir, tmp_path):
    from gfm_ase.data import Store
    from gfm_ase.pretraining.data import label_outliers
    from gfm_ase.pretraining.trainer import Trainer

    cfg = tiny_config(data_dir)
    store = Store(cfg.dataset_path(cfg.datasets[0]))
    stress = np.nan_to_num(np.abs(store.stresses)).max(axis=1)
    bound = float(np.quantile(stress, 0.8))
    want = int((stress > bound).sum())
    assert 0 < want < len(store)
    masks = label_outliers(store, _spec(max_abs_stress=bound))
    assert int(masks["max_abs_stress"].sum()) == want
    cfg = tiny_config(data_dir, **{"datasets.0.label_filter": {"max_abs_stress": bound, "max_abs_force": 1e6}},
                      sampling__steps_per_epoch=2, sampling__epochs=1)
    tr = Trainer(cfg, tmp_path)
    ds = tr.datasets[0]
    kept = np.concatenate([ds.split_indices[k] for k in ("train", "val", "test")])
    assert not np.any(stress[kept] > bound)
    assert ds.provenance["label_filter"]["n_structures_beyond"] == {"max_abs_stress": want, "max_abs_force": 0}
    head = tr.full_config.head(ds.head)
    assert head.datasets[0]["label_filter"]["max_abs_stress"] == bound  # recorded in the model's metadata


def _spec(**kw):
    from gfm_ase.pretraining.config import LabelFilterSpec

    return LabelFilterSpec(**kw)


def test_finetuning_keeps_the_pair_term_and_the_scratch_baseline_has_it_too(tmp_path_factory, tmp_path):
    """Fine-tuning a model with a ZBL term must keep it (it used to rebuild the config from trunk + heads and stop
    with 'the fine-tuning model's config differs'); the from-scratch baseline gets the same architecture."""
    from finetune_helpers import shared_pretrained

    from gfm_ase.finetune_zoo import FinetuneConfig, finetune
    from gfm_ase.checkpoint import load_model, save_model
    from gfm_ase.config import PairRepulsionConfig
    from gfm_ase.model import GFMModel

    pre = shared_pretrained(tmp_path_factory)
    base = load_model(pre["model"] / "final")
    cfg = base.config.model_copy(update={"repulsion": PairRepulsionConfig()})
    with_rep = GFMModel(cfg)
    with_rep.load_state_dict(base.state_dict())
    save_model(with_rep, tmp_path / "base")
    quiet = dict(log=lambda *a: None, data_dirs=[pre["data"], pre["morse"].parent])
    finetune(str(tmp_path / "base"), str(pre["ag"]), outdir=tmp_path / "ft",
             config=FinetuneConfig(head="ag", strategy="full", steps=3, baseline="scratch"), **quiet)
    assert load_model(tmp_path / "ft" / "final").config.repulsion == PairRepulsionConfig()
    assert load_model(tmp_path / "ft" / "scratch" / "final").config.repulsion == PairRepulsionConfig()


def test_finetuning_the_trunk_retires_a_committee(tmp_path_factory, tmp_path):
    """A committee fitted on the pretrained trunk must not give a spread after the trunk was fine-tuned."""
    from finetune_helpers import shared_pretrained

    from gfm_ase.finetune_zoo import FinetuneConfig, finetune
    from gfm_ase.checkpoint import load_model, save_model
    from gfm_ase.runtime.uncertainty import COMMITTEE_KEY, Spread, UncertaintyError

    pre = shared_pretrained(tmp_path_factory)
    base = load_model(pre["model"] / "final")
    head = base.head_names[0]
    member = base.head_config(head).model_copy(update={"name": f"{head}_c1",
                                                       "metrics": {"committee_member_of": head}})
    base.add_head(member)
    base.heads[member.name].load_state_dict(base.heads[head].state_dict())
    h = base.head_config(head)
    base.update_head_config(h.model_copy(update={"metrics": {**h.metrics, COMMITTEE_KEY: {"members": [member.name]}}}))
    Spread.for_head(base, head)  # the committee works before fine-tuning
    save_model(base, tmp_path / "base")
    quiet = dict(log=lambda *a: None, data_dirs=[pre["data"], pre["morse"].parent])
    finetune(str(tmp_path / "base"), str(pre["ag"]), outdir=tmp_path / "ft",
             config=FinetuneConfig(head="ag", strategy="full", steps=2), **quiet)
    ft = load_model(tmp_path / "ft" / "final")
    assert COMMITTEE_KEY not in ft.head_config(head).metrics
    assert ft.head_config(head).metrics["committee_retired"]["members"] == [member.name]
    with pytest.raises(UncertaintyError):
        Spread.for_head(ft, head)
