"""Bad-input suite, smaller items of issue 14: CSV line ends after a resume, progress lines without a terminal,
no all-NaN uncertainty column, the README's pretraining example names its data step."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from conftest import make_tiny_model

REPO = Path(__file__).resolve().parents[1]


def test_csv_log_has_no_crlf_after_resume(tmp_path):
    from gfm_ase.pretraining.logger import TRAIN_COLUMNS, CSVLog, read_csv

    path = tmp_path / "train.csv"
    log = CSVLog(path, TRAIN_COLUMNS, None)
    for step in (1, 2, 3):
        log.write({"step": step, "loss": 0.5 / step})
    log.close()
    log = CSVLog(path, TRAIN_COLUMNS, 2)  # resume from step 2: step 3 is dropped, the header rewritten
    log.write({"step": 3, "loss": 0.1})
    log.close()
    raw = path.read_bytes()
    assert b"\r" not in raw
    assert raw.splitlines()[0].decode() == ",".join(TRAIN_COLUMNS)
    assert [int(r["step"]) for r in read_csv(path)] == [1, 2, 3]


def test_progress_lines_without_a_terminal(tmp_path, capsys, monkeypatch):
    import gfm_ase.pretraining.logger as logger

    monkeypatch.setattr(logger, "HEARTBEAT_S", 0.0)
    log = logger.RunLogger(tmp_path, True, tensorboard="off", progress=False, total_steps=5, start_step=1)
    log.progress(1, loss="0.25")
    log.close()
    out = capsys.readouterr().out
    assert "step 2/5 loss 0.25" in out and "steps/s" in out and "s left" in out
    monkeypatch.setattr(logger, "HEARTBEAT_S", 3600.0)
    log = logger.RunLogger(tmp_path, True, tensorboard="off", progress=False, total_steps=5, start_step=1)
    log.progress(1, loss="0.25")
    assert "step" not in capsys.readouterr().out  # not on every step


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_screen_writes_no_uncertainty_column_without_a_family(tmp_path, fmt):
    pytest.importorskip("pyarrow") if fmt == "parquet" else None
    from gfm_ase.screening.output import read_metadata, read_results
    from gfm_ase.screening.screen import screen

    src = tmp_path / "in.xyz"
    write(src, [bulk("Cu", "fcc", a=3.6), bulk("Cu", "fcc", a=3.7)])
    out = tmp_path / f"o.{fmt}"
    screen([src], out, model=make_tiny_model(elements=("Cu",)), head="a", device="cpu", log=None, shortlist=1)
    res = read_results(out)
    assert "uncertainty" not in res and np.isfinite(res["energy"]).all()
    assert "no family of two or more heads" in read_metadata(out)["uncertainty"]
    assert Path(str(out) + ".shortlist.csv").read_text().startswith("rank,id")


def test_screen_keeps_the_uncertainty_column_with_a_family(tmp_path):
    from gfm_ase.screening.output import read_metadata, read_results
    from gfm_ase.screening.screen import screen

    src = tmp_path / "in.xyz"
    write(src, [bulk("Cu", "fcc", a=3.6)])
    out = tmp_path / "o.h5"
    model = make_tiny_model(elements=("Cu",), family="dft")
    screen([src], out, model=model, head="a", device="cpu", log=None)
    assert np.isfinite(read_results(out)["uncertainty"]).all()
    assert "spread over the family heads ['a', 'b']" in read_metadata(out)["uncertainty"]


def test_readme_pretraining_example_makes_its_data_first():
    text = (REPO / "README.md").read_text()
    make = text.find("python -m gfm_ase.pretraining.corpus.make_tiny")
    train = text.find("gfm pretrain pretraining/configs")
    assert 0 <= make < train


def test_finetune_names_its_trainings_once_each(tmp_path, capsys):
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from gfm_ase.cli import main
    from gfm_ase.data import StoreWriter

    store = tmp_path / "cu.h5"
    with StoreWriter(store, name="cu", level_of_theory="EMT", code="ASE") as w:
        for k in range(10):
            a = bulk("Cu", "fcc", a=3.6 + 0.01 * k)
            a.rattle(0.02, seed=k)
            a.calc = EMT()
            res = dict(energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
            a.calc = SinglePointCalculator(a, **res)
            w.append_atoms(a, id=f"cu-{k}")
    from gfm_ase.checkpoint import save_model

    base = save_model(make_tiny_model(elements=("Cu",), dtype=__import__("torch").float32), tmp_path / "base")
    rc = main(["finetune", "--from", str(base), "--train", str(store), "--head", "cu_x", "--strategy", "frozen",
               "--steps", "2", "--baseline", "scratch", "--data-dir", str(tmp_path / "no-pretraining-data"),
               "-o", str(tmp_path / "ft")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "gfm pretrain" not in out
    assert out.count("[finetune] training: starting") == 1
    assert out.count("[finetune] from-scratch baseline: starting") == 1
