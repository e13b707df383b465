"""Models by name from a registry file (URL + sha256; a local file:// URL here), the download cache, `gfm models`."""
from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
from conftest import make_tiny_model


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A model archive served by a file:// URL, a registry file naming it, an empty cache."""
    from gfm_ase.checkpoint import save_model

    model_dir = tmp_path / "src" / "tiny-reg"
    save_model(make_tiny_model(heads=("pbe", "emt")), model_dir)
    archive = tmp_path / "tiny-reg.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(model_dir, arcname="tiny-reg")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    reg = tmp_path / "registry.json"
    entries = {"tiny-reg": {"url": archive.as_uri(), "sha256": digest, "description": "test model",
                            "card": "https://example.invalid/tiny-reg.md"},
               "tiny-bad": {"url": archive.as_uri(), "sha256": "0" * 64}}
    reg.write_text(json.dumps({"format": "gfm-ase-model-registry", "version": 1, "models": entries}))
    cache = tmp_path / "cache"
    monkeypatch.setenv("GFM_ASE_REGISTRY", str(reg))
    monkeypatch.setenv("GFM_ASE_CACHE", str(cache))
    return {"digest": digest, "cache": cache, "registry": reg, "model_dir": model_dir}


def test_calculator_downloads_a_registered_model_by_name(registry):
    from gfm_ase import GFMCalculator
    from gfm_ase.checkpoint import read_model_json

    calc = GFMCalculator(model="tiny-reg", head="emt", device="cpu")
    assert (registry["cache"] / registry["digest"] / "model.json").is_file()
    p = calc.todict()
    assert p["model"] == "tiny-reg" and p["model_source"] == "registry"
    assert p["weights_sha256"] == read_model_json(registry["model_dir"])["weights_sha256"]
    assert str(registry["cache"]) not in json.dumps(p)
    # second use: from the cache, even with the source gone
    (registry["registry"].parent / "tiny-reg.tar.gz").unlink()
    assert GFMCalculator(model="tiny-reg", head="pbe", device="cpu").todict()["weights_sha256"] == \
        p["weights_sha256"]


def test_sha256_mismatch_is_refused_and_leaves_nothing(registry):
    from gfm_ase import GFMCalculator
    from gfm_ase.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="has sha256 .*expected 0000.*refused"):
        GFMCalculator(model="tiny-bad", head="emt", device="cpu")
    leftovers = list(registry["cache"].iterdir()) if registry["cache"].exists() else []
    assert leftovers == []


def test_unknown_names_and_bad_registry_files_are_clean_errors(registry, tmp_path, monkeypatch):
    from gfm_ase import GFMCalculator
    from gfm_ase.checkpoint import CheckpointError
    from gfm_ase.registry import RegistryError, fetch, load_registry

    with pytest.raises(CheckpointError, match=r"unknown model 'nope'.*registered: \['tiny-bad', 'tiny-reg'\]"):
        GFMCalculator(model="nope", device="cpu")
    with pytest.raises(RegistryError, match="'nope' is not in the model registry"):
        fetch("nope")
    bad = tmp_path / "bad.json"
    for doc, msg in [({"format": "x", "models": {}}, "expected"),
                     ({"format": "gfm-ase-model-registry", "version": 1, "models": {"m": {"url": "ftp://x",
                                                                                          "sha256": "0" * 64}}},
                      "url must be"),
                     ({"format": "gfm-ase-model-registry", "version": 1,
                       "models": {"m": {"url": "https://x", "sha256": "abc"}}}, "sha256 must be 64 hex"),
                     ({"format": "gfm-ase-model-registry", "version": 1,
                       "models": {"m": {"url": "https://x", "sha256": "0" * 64, "sha": 1}}}, "unknown key")]:
        bad.write_text(json.dumps(doc))
        monkeypatch.setenv("GFM_ASE_REGISTRY", str(bad))
        with pytest.raises(RegistryError, match=f"{bad}.*{msg}"):
            load_registry()
    monkeypatch.setenv("GFM_ASE_REGISTRY", str(tmp_path / "missing.json"))
    with pytest.raises(RegistryError, match="missing.json does not exist"):
        load_registry()


def test_shipped_registry_is_valid():
    from gfm_ase.hub import builtin_models
    from gfm_ase.registry import REGISTRY_FILE, _read

    entries = _read(REGISTRY_FILE)
    assert not set(entries) & set(builtin_models())  # a built-in name would shadow a registry entry


def test_gfm_models_lists_builtin_registered_and_cached(registry, capsys):
    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.cli import main
    from gfm_ase.hub import BUILTIN_DIR, builtin_models, default_model

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in builtin_models():
        assert rows[name]["kind"] == "builtin"
        assert rows[name]["weights_sha256"] == read_model_json(BUILTIN_DIR / name)["weights_sha256"]
        assert rows[name]["default"] == (name == default_model())
        assert rows[name]["card"] == f"docs/models/{name}.md"
    assert rows["tiny-reg"]["kind"] == "registry" and rows["tiny-reg"]["cached"] is False
    assert rows["tiny-reg"]["archive_sha256"] == registry["digest"]
    # after a download it is cached, with its weights' sha256
    assert main(["heads", "--model", "tiny-reg"]) == 0
    capsys.readouterr()
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny-reg"]["cached"] is True
    assert rows["tiny-reg"]["weights_sha256"] == read_model_json(registry["model_dir"])["weights_sha256"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-reg" in out and "cached" in out and default_model() in out


def test_cli_names_a_registry_mismatch_in_one_line(registry, capsys):
    from gfm_ase.cli import main

    assert main(["heads", "--model", "tiny-bad"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sha256" in err[0] and err[0].startswith("gfm heads: error:")
