"""`gfm finetune` per the CLI contract: writes OUTDIR (loadable by GFMCalculator) and OUTDIR/metrics.json with the
validation errors of the fine-tuned and from-scratch models and the forgetting report; bad requests fail clearly
without writing anything; an existing run is never overwritten."""
from __future__ import annotations

import json

import pytest

from finetune_helpers import shared_pretrained


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    return shared_pretrained(tmp_path_factory)


def _cli(*args) -> int:
    from gfm_ase.cli import main

    return main(["finetune", *map(str, args)])


@pytest.fixture(scope="module")
def cli_run(pre, tmp_path_factory):
    from gfm_ase.data import Store, StoreWriter

    root = tmp_path_factory.mktemp("cli")
    src = Store(pre["morse"])
    for name, idx in (("train", range(0, 30)), ("val", range(30, 35)), ("test", range(35, 40))):
        with StoreWriter(root / f"{name}.h5", name=f"morse_{name}", level_of_theory="Morse", code="ASE") as w:
            for i in idx:
                w.append(src[i])
    out = root / "out"
    rc = _cli("--from", pre["model"], "--train", root / "train.h5", "--val", root / "val.h5", "--test",
              root / "test.h5", "--head", "morse", "--strategy", "full", "--steps", 20, "--batch-size", 4,
              "--baseline", "scratch", "--level-of-theory", "Morse (Cu)", "--set", "loss.stress_weight=1",
              "--data-dir", pre["data"], "-o", out)
    return root, out, rc


def test_cli_writes_model_and_metrics(cli_run):
    from gfm_ase.calculator import GFMCalculator

    root, out, rc = cli_run
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["format"] == "gfm-ase-finetune-metrics"
    for which in ("finetuned", "scratch"):
        for split, n in (("val", 5), ("test", 5)):
            row = m[which][split]
            assert row["n_structures"] == n
            assert row["energy_mae_meV_atom"] > 0 and row["forces_mae_meV_A"] > 0
    assert m["task"]["n_train"] == 30 and m["task"]["val_path"].endswith("val.h5")
    assert m["config"]["loss"]["stress_weight"] == 1.0 and m["config"]["steps"] == 20
    assert set(m["forgetting"]) == {"emt", "lj"}
    assert all(r["status"] == "ok" and r["after"]["forces_mae_meV_A"] > 0 for r in m["forgetting"].values())
    assert m["command"].startswith("gfm ") and "--strategy full" in m["command"]
    calc = GFMCalculator(model=str(out), head="morse", device="cpu")
    assert calc.head_config.level_of_theory == "Morse (Cu)"


def test_cli_refuses_an_existing_run(cli_run, pre, capsys):
    root, out, _ = cli_run
    before = (out / "final" / "model.safetensors").read_bytes()
    rc = _cli("--from", pre["model"], "--train", root / "train.h5", "--head", "morse2", "--strategy", "frozen",
              "-o", out)
    assert rc == 2 and "already holds" in capsys.readouterr().err
    assert (out / "final" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("args, rc, msg", [
    (["--strategy", "frozen", "--head", "emt"], 2, "already has a head 'emt'"),
    (["--strategy", "sideways", "--head", "x"], 2, "invalid choice"),
    (["--strategy", "frozen"], 2, "head"),
    (["--strategy", "frozen", "--head", "x", "--set", "steps=0"], 2, "steps"),
    (["--strategy", "frozen", "--head", "x", "--set", "nonsense=1"], 2, "nonsense"),
])
def test_cli_bad_requests(pre, tmp_path, capsys, args, rc, msg):
    from gfm_ase.cli import main

    argv = ["finetune", "--from", str(pre["model"]), "--train", str(pre["morse"]), "-o", str(tmp_path / "o"), *args]
    if rc == 2 and "invalid choice" in msg:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    else:
        assert main(argv) == rc
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_missing_store_is_a_clear_error(pre, tmp_path, capsys):
    assert _cli("--from", pre["model"], "--train", tmp_path / "nope.h5", "--head", "x", "--strategy", "frozen",
                "-o", tmp_path / "o") == 2
    assert "nope.h5" in capsys.readouterr().err


def test_show_options_lists_every_option(capsys):
    from gfm_ase.finetune_zoo.config import FinetuneConfig

    assert _cli("--show-options") == 0
    text = capsys.readouterr().out
    for name in FinetuneConfig.model_fields:
        assert f"\n{name}" in "\n" + text, name


def test_pretraining_stores_are_looked_up_in_work_data_stores_by_default(pre, tmp_path, monkeypatch, capsys):
    """The saved model records its stores by file name; without --data-dir the forgetting report finds them in
    ./work_data/stores, and where they are not there, one console line per head names the dataset and the places
    looked at."""
    import shutil

    here = tmp_path / "here"
    (here / "work_data" / "stores").mkdir(parents=True)
    for f in pre["data"].glob("*.h5"):
        shutil.copy(f, here / "work_data" / "stores" / f.name)
    common = ("--from", pre["model"], "--train", pre["morse"], "--head", "m", "--strategy", "frozen", "--steps", 2)
    monkeypatch.chdir(here)
    assert _cli(*common, "-o", tmp_path / "a") == 0
    rep = json.loads((tmp_path / "a" / "metrics.json").read_text())["forgetting"]
    assert {h: r["status"] for h, r in rep.items()} == {"emt": "ok", "lj": "ok"}
    assert "unavailable" not in capsys.readouterr().out

    monkeypatch.chdir(tmp_path)  # no work_data/stores here
    assert _cli(*common, "-o", tmp_path / "b") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "unavailable" in line]
    looked = str(tmp_path / "work_data" / "stores")
    assert len(lines) == 2
    assert "head 'emt'" in lines[0] and "dataset 'cu_bulk'" in lines[0] and looked in lines[0]
    assert "head 'lj'" in lines[1] and "dataset 'cu_lj'" in lines[1] and looked in lines[1]
    rep = json.loads((tmp_path / "b" / "metrics.json").read_text())["forgetting"]
    assert rep["emt"]["status"] == "unavailable" and "cu_bulk" in rep["emt"]["reason"]
