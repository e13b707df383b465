"""How a fine-tuning run finds each head's pretraining data (replay, forgetting report): the config recorded in
the model, an explicit --replay-config, the head metadata; moved data via --data-dir; a different store with the same
name is refused; chained fine-tuning finds the held-out data of heads added by earlier fine-tuning."""
from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from finetune_helpers import shared_pretrained


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    return shared_pretrained(tmp_path_factory)


def _find(pre, doc=None, **kw):
    from gfm_ase.finetune_zoo.heldout import find_head_data
    from gfm_ase.checkpoint import load_model, read_model_json

    model = load_model(pre["model"] / "final")
    doc = doc or read_model_json(pre["model"] / "final")
    return find_head_data(doc, list(model.config.heads), cutoff=model.cutoff, **kw)


def _test_ids(hd):
    return {d.name: [float(g.energy) for g in d.test] for d in hd.datasets}


def _moved_doc(pre):
    from gfm_ase.checkpoint import read_model_json

    doc = copy.deepcopy(read_model_json(pre["model"] / "final"))
    for d in doc["extra"]["training"]["config"]["datasets"]:
        d["path"] = "/nonexistent/place/" + d["path"].rsplit("/", 1)[-1]
    return doc


def _here(pre, recorded: dict) -> dict:
    """The recorded pretraining config with its (portable: file names) store paths pointing into the test's data."""
    return {**recorded, "datasets": [{**d, "path": str(pre["data"] / d["path"])} for d in recorded["datasets"]]}


def test_recorded_config_gives_the_exact_pretraining_splits(pre):
    from gfm_ase.pretraining.config import config_from_dict
    from gfm_ase.pretraining.data import open_datasets
    from gfm_ase.checkpoint import read_model_json

    recorded = read_model_json(pre["model"] / "final")["extra"]["training"]["config"]
    assert [d["path"] for d in recorded["datasets"]] == [f"{n}.h5" for n in ("cu_bulk", "au_bulk", "cuau_alloy",
                                                                              "cu_lj")]  # no machine paths
    got = _find(pre, data_dirs=[pre["data"]])
    assert set(got) == {"emt", "lj"}
    assert got["emt"].ok and got["emt"].source == "pretraining config recorded in model.json"
    assert [d.name for d in got["emt"].datasets] == ["cu_bulk", "au_bulk", "cuau_alloy"]
    cfg = config_from_dict(_here(pre, recorded))
    ref = {d.name: d for d in open_datasets(cfg, 4.0)}
    for d in got["emt"].datasets + got["lj"].datasets:
        for split in ("train", "val", "test"):
            assert np.array_equal(d.split_indices[split], ref[d.name].split_indices[split])


def test_moved_data_is_reported_then_found_with_data_dir(pre):
    doc = _moved_doc(pre)
    lost = _find(pre, doc)
    for h in ("emt", "lj"):
        assert not lost[h].ok and "not found" in lost[h].reason and "--data-dir" in lost[h].reason
    found = _find(pre, doc, data_dirs=[pre["data"]])
    assert found["emt"].ok and found["lj"].ok
    assert _test_ids(found["emt"]) == _test_ids(_find(pre, data_dirs=[pre["data"]])["emt"])


def test_a_different_store_with_the_same_name_is_refused(pre, tmp_path):
    from gfm_ase.data import Store, StoreWriter

    src = Store(pre["data"] / "cu_lj.h5")
    with StoreWriter(tmp_path / "cu_lj.h5", name="cu_lj") as w:
        for i in range(len(src) - 1):
            w.append(src[i])
    for name in ("cu_bulk", "au_bulk", "cuau_alloy"):
        shutil.copy(pre["data"] / f"{name}.h5", tmp_path / f"{name}.h5")
    got = _find(pre, _moved_doc(pre), data_dirs=[tmp_path])
    assert got["emt"].ok
    assert not got["lj"].ok and "not the same data" in got["lj"].reason


def test_explicit_replay_config_and_head_metadata_fallback(pre, tmp_path):
    import yaml
    from gfm_ase.checkpoint import read_model_json

    doc = _moved_doc(pre)
    cfg = _here(pre, read_model_json(pre["model"] / "final")["extra"]["training"]["config"])
    yml = tmp_path / "pre.yaml"
    yml.write_text(yaml.safe_dump(cfg))
    got = _find(pre, doc, replay_config=yml)
    assert got["emt"].ok and got["emt"].source.startswith("--replay-config")
    ref = _find(pre, data_dirs=[pre["data"]])
    assert _test_ids(got["emt"]) == _test_ids(ref["emt"])
    bare = copy.deepcopy(doc)
    bare["extra"] = {}
    assert not _find(pre, bare)["lj"].ok  # the metadata's store paths are file names: found through data_dirs
    meta = _find(pre, bare, data_dirs=[pre["data"]])  # no recorded config: the heads' own metadata (path + split)
    assert meta["lj"].ok and meta["lj"].source == "head metadata"
    assert _test_ids(meta["lj"]) == _test_ids(ref["lj"])


def test_chained_finetuning_reports_heads_added_earlier(pre, tmp_path):
    from gfm_ase.finetune_zoo import FinetuneConfig, finetune

    quiet = dict(log=lambda *a: None, data_dirs=[pre["data"], pre["morse"].parent])
    finetune(str(pre["model"]), str(pre["morse"]), outdir=tmp_path / "a",
             config=FinetuneConfig(head="morse", strategy="frozen", steps=5), **quiet)
    m = finetune(str(tmp_path / "a"), str(pre["ag"]), outdir=tmp_path / "b",
                 config=FinetuneConfig(head="ag", strategy="full", steps=5), **quiet)
    rep = m["forgetting"]
    assert set(rep) == {"emt", "lj", "morse"}
    assert rep["morse"]["status"] == "ok" and rep["morse"]["source"] == "head metadata"
    assert rep["emt"]["source"] == "pretraining config recorded in model.json"
    doc = json.loads((tmp_path / "b" / "final" / "model.json").read_text())
    assert [r["head"] for r in doc["extra"]["finetune"]] == ["morse", "ag"]


def test_datasets_without_a_test_split_are_evaluated_on_validation(pre):
    from gfm_ase.finetune_zoo.forgetting import ForgettingReport
    from gfm_ase.finetune_zoo.heldout import HeadData
    from gfm_ase.checkpoint import load_model

    hd = _find(pre, data_dirs=[pre["data"]])["lj"]
    d = hd.datasets[0]
    d0 = copy.copy(d)
    d0.test = []
    rep = ForgettingReport({"lj": HeadData("lj", [d0], source="x")}, max_structures=None)
    model = load_model(pre["model"] / "final")
    rep.evaluate_before(model)
    rep.evaluate_after(model)
    r = rep.report()["lj"]
    assert r["splits"] == {"cu_lj": "val"} and r["n_structures"] == len(d.val)
    assert r["delta"]["forces_mae_meV_A"] == 0.0


def test_exclude_covered_by_and_label_filter_give_the_trainers_splits(pre, tmp_path):
    """A dataset whose structures depend on other datasets (exclude_covered_by, here one of another head) and a
    label filter: the held-out split is the trainer's (this used to fail: the covering dataset was not opened)."""
    import yaml
    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.pretraining.config import config_from_dict
    from gfm_ase.pretraining.data import open_datasets

    cfg = _here(pre, read_model_json(pre["model"] / "final")["extra"]["training"]["config"])
    names = [d["name"] for d in cfg["datasets"]]
    alloy = cfg["datasets"][names.index("cuau_alloy")]
    alloy["exclude_covered_by"] = ["cu_bulk", "cu_lj"]  # cu_lj trains the other head
    stress = None
    from gfm_ase.data import Store

    st = Store(alloy["path"]).stresses
    stress = float(np.nanquantile(np.abs(st).max(axis=1), 0.7))
    alloy["label_filter"] = {"max_abs_stress": stress}
    yml = tmp_path / "pre.yaml"
    yml.write_text(yaml.safe_dump(cfg))
    got = _find(pre, _moved_doc(pre), replay_config=yml)
    assert got["emt"].ok, got["emt"].reason
    ref = {d.name: d for d in open_datasets(config_from_dict(cfg), 4.0)}
    mine = {d.name: d for d in got["emt"].datasets}
    for split in ("train", "val", "test"):
        assert np.array_equal(mine["cuau_alloy"].split_indices[split], ref["cuau_alloy"].split_indices[split])
    assert ref["cuau_alloy"].provenance["label_filter"]["n_structures_beyond"]["max_abs_stress"] > 0
