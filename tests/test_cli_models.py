"""The default model in every command that takes a model (a missing --model / --from is the default model, help texts
name it), and `gfm heads` (elements, training structures, surrogate share per head)."""
from __future__ import annotations

import json

import pytest
from conftest import make_tiny_model


@pytest.fixture
def fake_builtins(tmp_path, monkeypatch):
    """A built-in folder holding a single-head tiny ``gfm-base`` (with its sha256 recorded) and a stand-in
    ``gfm-mini``: default_model() must then pick gfm-base."""
    from gfm_ase import hub
    from gfm_ase.checkpoint import save_model

    root = tmp_path / "models"
    save_model(make_tiny_model(heads=("only",), elements=("Cu",)), root / "gfm-base")
    save_model(make_tiny_model(heads=("x", "y")), root / "gfm-mini")
    monkeypatch.setattr(hub, "BUILTIN_DIR", root)
    monkeypatch.setattr(hub, "BUILTIN_SHA256", {n: hub.builtin_sha256(root / n) for n in ("gfm-base", "gfm-mini")})
    return root


def test_default_model_prefers_gfm_base_when_installed(fake_builtins):
    import shutil

    from gfm_ase import hub

    assert hub.default_model() == "gfm-base" and hub.DEFAULT_MODEL == "gfm-base"
    assert hub.resolve_model(None) == fake_builtins / "gfm-base"
    assert "currently gfm-base" in hub.default_model_help()
    shutil.rmtree(fake_builtins / "gfm-base")  # before the new weights land
    assert hub.default_model() == "gfm-mini" and hub.resolve_model(None) == fake_builtins / "gfm-mini"


def test_heads_and_validate_without_model_use_the_default(fake_builtins, tmp_path, capsys):
    from gfm_ase.cli import main

    assert main(["heads", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["only"]  # gfm-base's head, not gfm-mini's x/y
    assert main(["heads"]) == 0
    assert capsys.readouterr().out.startswith("model gfm-base: 1 head(s)\nonly ")
    rc = main(["validate", "eos", "--elements", "Cu", "--points", "5", "-o", str(tmp_path / "eos")])
    doc = json.loads((tmp_path / "eos" / "summary.json").read_text())
    assert rc == 0 and "model=gfm-base (sha256 " in doc["calculator"] and ", head=only" in doc["calculator"]
    assert str(fake_builtins) not in doc["calculator"]  # no machine path in a report


def test_finetune_without_from_uses_the_default_and_work_data_stores(fake_builtins, tmp_path, monkeypatch):
    import gfm_ase.finetune_zoo.finetuning as ft
    from gfm_ase.cli import main

    seen = {}
    monkeypatch.setattr(ft, "finetune", lambda model, train, **kw: seen.update(model=model, **kw))
    assert main(["finetune", "--train", str(tmp_path / "t.h5"), "--head", "h", "-o", str(tmp_path / "out")]) == 0
    assert seen["model"] == "gfm-base" and seen["data_dirs"] == ["work_data/stores"]
    assert "--from gfm-base" in seen["command"]
    assert main(["finetune", "--from", "gfm-mini", "--train", "t.h5", "--head", "h", "--data-dir", "d", "-o", "o"]) == 0
    assert seen["model"] == "gfm-mini" and seen["data_dirs"] == ["d"]


@pytest.mark.parametrize("argv", [["heads"], ["screen"], ["validate", "eos"], ["validate", "report"], ["finetune"],
                                  ["finetune-zoo"]])
def test_help_names_the_current_default(fake_builtins, capsys, argv):
    from gfm_ase.cli import main

    with pytest.raises(SystemExit):
        main([*argv, "-h"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines (also after "built-")
    assert "(default:thebuilt-indefaultmodel,currentlygfm-base)" in text


def _model_with_surrogate(tmp_path):
    from gfm_ase.checkpoint import save_model

    m = make_tiny_model(heads=("pbe", "emt"), elements=("Cu", "Au"))
    labels = {"energy": 10, "forces": 10, "stress": 4}
    m.update_head_config(m.head_config("pbe").model_copy(update={
        "level_of_theory": "PBE (VASP)", "code": "VASP", "family": "pbe", "datasets": [
            {"name": "dft", "n_structures": 10, "n_train": 8, "n_val": 2, "label_counts": labels,
             "store": {"level_of_theory": "PBE", "surrogate": ""}},
            {"name": "relabelled", "n_structures": 30, "n_train": 24, "n_val": 6,
             "store": {"level_of_theory": "PBE", "surrogate": "gfm-mini omat (distilled)"}}]}))
    m.update_head_config(m.head_config("emt").model_copy(update={
        "level_of_theory": "EMT", "code": "ASE", "elements": [], "datasets": []}))
    return save_model(m, tmp_path / "m")


def test_heads_report_elements_training_data_and_surrogate_share(tmp_path, capsys):
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.cli import main

    d = _model_with_surrogate(tmp_path)
    assert main(["heads", "--model", str(d), "--json"]) == 0
    heads = json.loads(capsys.readouterr().out)
    assert heads == json.loads(json.dumps(GFMCalculator.available_heads(d)))
    pbe = heads["pbe"]
    assert (pbe["name"], pbe["level_of_theory"], pbe["code"], pbe["family"]) == ("pbe", "PBE (VASP)", "VASP", "pbe")
    assert pbe["elements"] == ["Cu", "Au"] and pbe["n_elements"] == 2
    assert [(x["name"], x["n_structures"], x["n_train"], x["surrogate"]) for x in pbe["datasets"]] == [
        ("dft", 10, 8, None), ("relabelled", 30, 24, "gfm-mini omat (distilled)")]
    assert pbe["datasets"][0]["label_counts"] == {"energy": 10, "forces": 10, "stress": 4}
    assert pbe["n_train"] == 32 and pbe["surrogate_share"] == pytest.approx(24 / 32)
    emt = heads["emt"]
    assert emt["n_elements"] == 0 and emt["n_train"] == 0 and emt["surrogate_share"] is None
    assert "scale" in pbe and "metrics" in pbe  # the full metadata is still there

    assert main(["heads", "--model", str(d)]) == 0
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["pbe", "PBE", "(VASP)"]
    assert "2 elements" in lines[0] and "32 train structures" in lines[0] and "surrogate share 75 %" in lines[0]
    assert "any elements" in lines[1] and "surrogate share ?" in lines[1]
