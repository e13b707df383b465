import hashlib
import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from conftest import make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.checkpoint import CheckpointError, load_model, save_model
from gfm_ase.hub import resolve_model


def _model_dir(tmp_path, **kw):
    m = make_tiny_model(**kw)
    return m, save_model(m, tmp_path / "m", extra={"note": "test"})


def test_round_trip_is_exact(tmp_path):
    m, d = _model_dir(tmp_path)
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in d.iterdir())
    m2 = load_model(d, dtype=torch.float64)
    assert m2.config == m.config
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    atoms = bulk("Cu", "fcc", a=3.6) * 2
    atoms.rattle(0.05, seed=0)
    e = []
    for model in (m, str(d)):
        a = atoms.copy()
        a.calc = GFMCalculator(model=model, head="b", dtype="float64", device="cpu")
        e.append(a.get_potential_energy())
    assert e[0] == e[1]


def test_weight_tampering_is_detected(tmp_path):
    _, d = _model_dir(tmp_path)
    w = d / "model.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-5] ^= 0x01  # flip one bit in the last tensor's data
    w.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(d)


def test_metadata_tampering_is_detected(tmp_path):
    _, d = _model_dir(tmp_path)
    j = d / "model.json"
    doc = json.loads(j.read_text())
    doc["config"]["heads"][0]["reference_energies"] = {"Cu": -3.0}
    j.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(d)


def test_corrupt_and_missing_files(tmp_path):
    _, d = _model_dir(tmp_path)
    (d / "model.json").write_text('{"format": "gfm-ase-model", "format_vers')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(d)
    _, d2 = _model_dir(tmp_path / "x")
    (d2 / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(d2)
    with pytest.raises(CheckpointError, match="unknown model"):
        resolve_model(str(tmp_path / "does-not-exist"))


def test_unknown_format_version_refused(tmp_path):
    import hashlib

    from gfm_ase.checkpoint import _canonical

    _, d = _model_dir(tmp_path)
    j = d / "model.json"
    doc = json.loads(j.read_text())
    doc["format_version"] = 99
    doc["json_sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    j.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="format_version"):
        load_model(d)


def test_training_outdir_resolves_to_final(tmp_path):
    m = make_tiny_model()
    save_model(m, tmp_path / "run" / "final")
    assert resolve_model(tmp_path / "run") == tmp_path / "run" / "final"
    heads = GFMCalculator.available_heads(tmp_path / "run")
    assert set(heads) == {"a", "b"}
    assert "level_of_theory" in heads["a"] and "elements" in heads["a"]
    np.testing.assert_equal(len(heads), 2)


def test_written_files_have_normal_permissions(tmp_path):
    import os

    from gfm_ase.fileio import default_file_mode

    _, d = _model_dir(tmp_path)
    for name in ("model.json", "model.safetensors"):
        assert os.stat(d / name).st_mode & 0o777 == default_file_mode()


def test_url_models_are_cached_and_verified(tmp_path, monkeypatch):
    import hashlib
    import tarfile

    monkeypatch.setenv("GFM_ASE_CACHE", str(tmp_path / "cache"))
    _, d = _model_dir(tmp_path)
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(d, arcname="tiny-model")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    url = archive.resolve().as_uri()
    with pytest.raises(CheckpointError, match="sha256"):
        resolve_model(url)  # no digest: refused
    with pytest.raises(CheckpointError, match="expected"):
        resolve_model(url + "#sha256=" + "0" * 64)
    cached = resolve_model(url + "#sha256=" + digest)
    assert cached == tmp_path / "cache" / digest
    assert load_model(cached).head_names == ["a", "b"]
    archive.unlink()  # second resolution comes from the cache
    assert resolve_model(url + "#sha256=" + digest) == cached


def test_saved_provenance_holds_no_machine_paths(tmp_path):
    """save_model writes dataset paths as work_data/... or the file name (also inside recorded commands and the
    recorded pretraining config, whose relative paths are joined with its base_dir first); the model still loads."""
    from gfm_ase.checkpoint import _canonical, make_portable, portable_path, portable_text, read_model_json

    assert portable_path("/home/me/proj/work_data/stores/mlearn_train.h5") == "work_data/stores/mlearn_train.h5"
    assert portable_path("/tmp/run3/cu.h5") == "cu.h5" and portable_path("rel/cu.h5") == "rel/cu.h5"
    assert portable_text("convert /a/work_data/gen/x -o '/b/y.h5' PBE/def2-SVP https://h.org/p eV/atom") == \
        "convert work_data/gen/x -o 'y.h5' PBE/def2-SVP https://h.org/p eV/atom"

    m = make_tiny_model()
    prov = {"name": "cu", "path": "/root/proj/work_data/stores/cu.h5", "n_train": 8,
            "store": {"command": "gfm data convert /home/u/raw/cu -o work_data/stores/cu.h5",
                      "source": "/home/u/raw/cu", "level_of_theory": "PBE/PAW"},
            "val": {"path": "/tmp/elsewhere/cu_val.h5", "indices": [1, 2]}}
    m.update_head_config(m.head_config("a").model_copy(update={"datasets": [prov]}))
    training = {"config": {"base_dir": "/work/main/pretraining/configs",
                           "datasets": [{"name": "cu", "path": "../../work_data/stores/cu.h5"},
                                        {"name": "ag", "path": "/srv/data/ag.h5"}]}}
    d = save_model(m, tmp_path / "m", extra={"training": training})
    doc = read_model_json(d)
    (rec,) = doc["config"]["heads"][0]["datasets"]
    assert rec["path"] == "work_data/stores/cu.h5" and rec["val"]["path"] == "cu_val.h5"
    assert rec["store"] == {"command": "gfm data convert cu -o work_data/stores/cu.h5", "source": "cu",
                            "level_of_theory": "PBE/PAW"}
    cfg = doc["extra"]["training"]["config"]
    assert cfg["base_dir"] is None
    assert [x["path"] for x in cfg["datasets"]] == ["work_data/stores/cu.h5", "ag.h5"]
    text = (d / "model.json").read_text()
    assert "/root/" not in text and "/home/" not in text and "/tmp/" not in text and "/work/" not in text
    assert m.head_config("a").datasets[0]["path"].startswith("/root/")  # the model in memory is not changed
    load_model(d)
    assert make_portable(d) is False  # already portable

    # an older file with machine paths: rewritten in place, checksum renewed, weights untouched
    raw = json.loads((d / "model.json").read_text())
    raw["config"]["heads"][0]["datasets"][0]["path"] = "/home/u/x/cu.h5"
    raw["json_sha256"] = hashlib.sha256(_canonical(raw)).hexdigest()
    (d / "model.json").write_text(json.dumps(raw))
    weights = (d / "model.safetensors").read_bytes()
    assert make_portable(d) is True
    assert read_model_json(d)["config"]["heads"][0]["datasets"][0]["path"] == "cu.h5"
    assert (d / "model.safetensors").read_bytes() == weights
    load_model(d)
