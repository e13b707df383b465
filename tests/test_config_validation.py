"""Trunk options are validated when a config is read: one clean message with the dotted path, before a model,
a trainer or a process group exists."""
import pytest
import torch
from pretrain_helpers import EXAMPLE

from gfm_ase.config import ModelConfig
from gfm_ase.pretraining.config import ConfigError, load_config


@pytest.mark.parametrize("key, value, where", [
    ("model.trunk.options.num_featres", 8, "model.trunk.options.num_featres: Extra inputs are not permitted"),
    ("model.trunk.options.num_features", "wide", "model.trunk.options.num_features: Input should be a valid int"),
    ("model.trunk.name", "mace", "model.trunk.name: Value error, unknown trunk 'mace'"),
])
def test_bad_trunk_option_named_when_yaml_is_read(key, value, where):
    with pytest.raises(ConfigError) as err:
        load_config(EXAMPLE, {key: value})
    assert where in str(err.value)


def test_cli_gives_one_clean_line_before_any_process_group(capsys, tmp_path):
    from gfm_ase.cli import main

    rc = main(["pretrain", str(EXAMPLE), "--set", "model.trunk.options.num_featres=8", "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "model.trunk.options.num_featres" in err and "Traceback" not in err
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())
    assert not (tmp_path / "r").exists()


def test_model_config_rejects_options_of_its_trunk():
    with pytest.raises(ValueError, match="num_layer"):
        ModelConfig(trunk={"name": "painn", "options": {"num_layer": 2}}, heads=[{"name": "a"}])
    ok = ModelConfig(trunk={"name": "painn", "options": {"num_layers": 2}}, heads=[{"name": "a"}])
    assert ok.trunk.options == {"num_layers": 2}  # kept as given: config fingerprints do not change


SHIPPED_CONFIGS = sorted((EXAMPLE.parent).rglob("*.yaml"))


def test_shipped_configs_are_found():
    names = {p.name for p in SHIPPED_CONFIGS}
    assert {"gfm-mini.yaml", "gfm-base.yaml", "gfm-base-v4.yaml", "example-tiny.yaml"} <= names, names


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(EXAMPLE.parent)))
def test_every_shipped_pretraining_config_validates(path):
    """Each config under pretraining/configs/ (the recipes of the built-in models, the ablations, the example) is
    read by the typed config: a key renamed in the code or misspelt in a recipe fails here, not hours into a rerun.
    Stores and warm-start weights are not opened (they live in work_data/)."""
    cfg = load_config(path)
    assert cfg.datasets and cfg.heads
    assert {d.head for d in cfg.datasets} <= {h.name for h in cfg.heads}
