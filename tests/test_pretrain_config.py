"""The pretraining config: validated once, unknown keys rejected, every option documented."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pretrain_helpers import EXAMPLE, REPO
from gfm_ase.pretraining.config import ConfigError, PretrainConfig, StrictModel, describe_options, load_config


def _write(tmp_path: Path, doc: dict) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def _example_doc() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_config_loads_and_resolves_paths_relative_to_the_file():
    cfg = load_config(EXAMPLE)
    assert [h.name for h in cfg.heads] == ["emt", "lj"]
    assert cfg.total_steps == cfg.sampling.epochs * cfg.sampling.steps_per_epoch
    p = cfg.dataset_path(cfg.datasets[0])
    assert p.is_absolute()
    assert p.resolve() == (EXAMPLE.parent / "../../work_data/tiny/cu_bulk.h5").resolve()


@pytest.mark.parametrize("where", ["top", "nested", "dataset"])
def test_unknown_keys_are_rejected_with_their_location(tmp_path, where):
    doc = _example_doc()
    if where == "top":
        doc["epochz"] = 3
    elif where == "nested":
        doc["loss"]["kindd"] = "mse"
    else:
        doc["datasets"][1]["weight"] = 2.0
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, doc))
    key = {"top": "epochz", "nested": "loss.kindd", "dataset": "datasets.1.weight"}[where]
    assert key in str(err.value)


def test_bad_values_and_inconsistent_mappings_are_refused(tmp_path):
    doc = _example_doc()
    doc["datasets"][0]["head"] = "dft"
    with pytest.raises(ConfigError, match="unknown head 'dft'"):
        load_config(_write(tmp_path, doc))
    doc = _example_doc()
    doc["sampling"]["alpha"] = 1.5
    with pytest.raises(ConfigError, match="sampling.alpha"):
        load_config(_write(tmp_path, doc))
    doc = _example_doc()
    doc["parallel"] = {"mode": "multitask", "head_groups": [["emt"]]}
    with pytest.raises(ConfigError, match="partition the heads"):
        load_config(_write(tmp_path, doc))
    doc = _example_doc()
    doc["parallel"] = {"head_groups": [["emt"], ["lj"]]}
    with pytest.raises(ConfigError, match="multitask"):
        load_config(_write(tmp_path, doc))
    doc = _example_doc()
    doc["heads"].append({"name": "unused"})
    with pytest.raises(ConfigError, match="no dataset"):
        load_config(_write(tmp_path, doc))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "bad.yaml")


def test_overrides_use_dotted_keys_including_list_indices():
    cfg = load_config(EXAMPLE, {"sampling.epochs": 2, "datasets.3.loss_weight": 0.5, "precision": "float64"})
    assert cfg.sampling.epochs == 2
    assert cfg.datasets[3].loss_weight == 0.5
    assert cfg.precision == "float64"
    with pytest.raises(ConfigError, match="precision"):
        load_config(EXAMPLE, {"precision": "float16"})


def _leaf_fields(model: type[StrictModel], prefix=""):
    for name, field in model.model_fields.items():
        ann = field.annotation
        inner = getattr(ann, "__args__", (None,))[0] if getattr(ann, "__origin__", None) is list else None
        sub = ann if isinstance(ann, type) and issubclass(ann, StrictModel) else None
        if isinstance(inner, type) and issubclass(inner, StrictModel):
            sub = inner
        if sub is not None and sub.__module__.startswith("gfm_ase.pretraining"):
            yield from _leaf_fields(sub, f"{prefix}{name}{'[]' if sub is inner else ''}.")
        else:
            yield f"{prefix}{name}", field


def test_every_option_is_documented():
    undocumented = [k for k, f in _leaf_fields(PretrainConfig) if not (f.description or "").strip()]
    assert undocumented == []
    text = "\n".join(describe_options())
    for key, _ in _leaf_fields(PretrainConfig):
        assert key in text, key


def test_make_tiny_writes_where_the_example_config_looks():
    from gfm_ase.pretraining.corpus.make_tiny import DATASETS, DEFAULT_OUT

    cfg = load_config(EXAMPLE)
    assert [d.name for d in cfg.datasets] == list(DATASETS)
    for d in cfg.datasets:
        assert cfg.dataset_path(d).resolve() == (DEFAULT_OUT / f"{d.name}.h5").resolve()


def test_loss_stages_switch_weights_at_their_fractions(tmp_path):
    from gfm_ase.pretraining.config import LossSpec

    spec = LossSpec(energy_weight=1.0, forces_weight=10.0, stages=[
        {"start": 0.5, "energy_weight": 5.0}, {"start": 0.75, "forces_weight": 2.0}])
    w = [(s.energy_weight, s.forces_weight) for s in (spec.at(k, 100) for k in (0, 49, 50, 74, 75, 99))]
    assert w == [(1, 10), (1, 10), (5, 10), (5, 10), (5, 2), (5, 2)]  # later stages keep earlier changes
    assert spec.max_weight("energy") == 5.0 and spec.max_weight("stress") == 0.0
    for bad in ([{"start": 0.5}, {"start": 0.5}], [{"start": 0.8}, {"start": 0.3}], [{"start": 1.0}],
                [{"start": 0.5, "energy_weight": -1}]):
        doc = _example_doc()
        doc["loss"] = {"stages": bad}
        with pytest.raises(ConfigError, match="stages"):
            load_config(_write(tmp_path, doc))


def test_pretraining_builds_on_the_models_own_configs():
    """No parallel head/model specs: a head to train is the model's HeadSpec (a trained HeadConfig extends it with
    what was fitted) and the ``model`` section is the model's ModelArchitecture plus where the weights start."""
    from gfm_ase.config import HeadConfig, HeadSpec, ModelArchitecture, ModelConfig
    from gfm_ase.pretraining.config import ModelSpec, PretrainConfig

    assert PretrainConfig.model_fields["heads"].annotation == list[HeadSpec]
    assert issubclass(HeadConfig, HeadSpec) and issubclass(ModelConfig, ModelArchitecture)
    assert issubclass(ModelSpec, ModelArchitecture)
    assert set(ModelSpec.model_fields) - set(ModelArchitecture.model_fields) == {"init_from"}


@pytest.mark.parametrize("name", ["gfm-mini", "gfm-base"])
def test_shipped_models_training_configs_load_and_describe_their_models(name):
    """The training config recorded in a shipped model still loads, and its heads and architecture are the
    model's: the same HeadSpec fields (hidden sizes included) and the same name, trunk options and pair term."""
    import json

    from gfm_ase.config import HeadSpec, ModelConfig
    from gfm_ase.model.registry import trunk_options
    from gfm_ase.pretraining.config import config_from_dict

    doc = json.loads((REPO / "gfm_ase" / "models" / name / "model.json").read_text())
    model = ModelConfig(**doc["config"])
    run = config_from_dict(doc["extra"]["training"]["config"])
    spec = set(HeadSpec.model_fields)
    for h in run.heads:
        assert h.model_dump(include=spec) == model.head(h.name).model_dump(include=spec), h.name
    assert (run.model.name, run.model.repulsion) == (model.name, model.repulsion)
    assert trunk_options(run.model.trunk.name, run.model.trunk.options) == trunk_options(model.trunk.name,
                                                                                         model.trunk.options)
