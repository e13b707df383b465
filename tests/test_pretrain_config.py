"""The pretraining config: validated once, unknown keys rejected, every option documented."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pretrain_helpers import EXAMPLE
from pretraining.config import ConfigError, PretrainConfig, StrictModel, describe_options, load_config


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
        if sub is not None and sub.__module__.startswith("pretraining"):
            yield from _leaf_fields(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def test_every_option_is_documented():
    undocumented = [k for k, f in _leaf_fields(PretrainConfig) if not (f.description or "").strip()]
    assert undocumented == []
    text = "\n".join(describe_options())
    for key, _ in _leaf_fields(PretrainConfig):
        assert key.replace(".", "[].", 1) in text or key in text, key
