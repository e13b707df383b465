"""The zoo runner end to end on one tiny task (fine-tuned vs scratch at two sizes, forgetting, table, PNG,
README section), reuse of finished runs, a task whose data is missing, and the validity of the shipped task files."""
from __future__ import annotations

import json

import pytest
import yaml

from finetune_helpers import shared_pretrained


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    return shared_pretrained(tmp_path_factory)


def _task(path, store, **kw):
    doc = {"name": "morse_tiny", "title": "Cu Morse (tiny)", "source": "tests", "why_held_out": "a level of theory "
           "the tiny model never saw", "data": {"store": str(store), "split": {"fractions": [0.6, 0.2, 0.2]}},
           "head": "morse", "level_of_theory": "Morse", "strategy": "full", "steps": 12, "batch_size": 4,
           "learning_curve": [8], **kw}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def zoo(pre, tmp_path_factory):
    from gfm_ase.finetune_zoo.run import main

    root = tmp_path_factory.mktemp("zoo")
    task = _task(root / "morse_tiny.yaml", pre["morse"])
    readme = root / "README.md"
    readme.write_text("# zoo\n\nintro\n\n<!-- zoo-table:start -->\nold\n<!-- zoo-table:end -->\n\ntail\n")
    argv = [str(task), "--from", str(pre["model"]), "-o", str(root / "runs"), "--readme", str(readme),
            "--stores", str(root), "--work", str(root / "work"), "--forgetting-max", "5", "--note", "tiny model",
            "--data-dir", str(pre["data"])]
    rc = main(argv)
    return root, readme, argv, rc


def test_zoo_runs_a_task_end_to_end(zoo):
    root, readme, _, rc = zoo
    assert rc == 0
    res = json.loads((root / "runs" / "results.json").read_text())["results"]
    (entry,) = res
    assert entry["sizes"] == [8, 24]
    for m, n in zip(entry["runs"], entry["sizes"]):
        assert m["task"]["n_train"] == n
        assert m["finetuned"]["test"]["forces_mae_meV_A"] > 0 and m["scratch"]["test"]["forces_mae_meV_A"] > 0
    assert entry["runs"][0]["forgetting"] is None  # only the full-size run gets the forgetting report
    assert set(entry["runs"][-1]["forgetting"]) == {"emt", "lj"}
    text = readme.read_text()
    assert text.startswith("# zoo\n\nintro\n\n<!-- zoo-table:start -->\n")
    assert text.endswith("<!-- zoo-table:end -->\n\ntail\n")
    assert "old" not in text and "tiny model" in text and "gfm finetune-zoo" in text
    row = next(line for line in text.splitlines() if line.startswith("| morse_tiny"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "full" and cells[3] == "12 × 4" and cells[4] == "24"
    ft_f = float(cells[5].split("/")[1])
    assert ft_f == pytest.approx(entry["runs"][-1]["finetuned"]["test"]["forces_mae_meV_A"], abs=0.051)
    assert cells[7].startswith(("yes", "NO")) and "(" in cells[7]
    assert "emt F" in cells[8] and "lj F" in cells[8]
    png = root / "results" / "morse_tiny.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_zoo_reuses_finished_runs(zoo):
    from gfm_ase.finetune_zoo.run import main

    root, _, argv, _ = zoo
    stamp = root / "runs" / "morse_tiny" / "n8" / "metrics.json"
    before = stamp.stat().st_mtime_ns
    assert main(argv) == 0
    assert stamp.stat().st_mtime_ns == before


def test_a_task_with_missing_data_is_reported_not_run(pre, tmp_path):
    from gfm_ase.finetune_zoo.run import main

    task = _task(tmp_path / "missing.yaml", tmp_path / "nope.h5")
    assert main([str(task), "--from", str(pre["model"]), "-o", str(tmp_path / "runs"), "--stores",
                 str(tmp_path)]) == 1
    md = (tmp_path / "runs" / "results.md").read_text()
    assert "not run" in md and "nope.h5" in md


def test_shipped_task_files_are_valid():
    from gfm_ase.finetune_zoo.run import TASK_DIR
    from gfm_ase.finetune_zoo.task import load_task

    tasks = [load_task(p) for p in sorted(TASK_DIR.glob("*.yaml"))]
    assert len(tasks) >= 8
    assert len({t.name for t in tasks}) == len(tasks)
    assert {t.strategy for t in tasks} == {"frozen", "full", "continue", "replay"}
    for t in tasks:
        assert t.name == t.name.strip() and t.steps > 0 and t.why_held_out


def test_zoo_reruns_when_the_model_weights_change(zoo, tmp_path):
    """A retrained model under the same path is not the same model: finished runs are not reused for it."""
    import torch

    from gfm_ase.finetune_zoo.run import main
    from gfm_ase.checkpoint import load_model, save_model

    root, _, argv, _ = zoo
    src = argv[argv.index("--from") + 1]
    model = load_model(src + "/final")
    with torch.no_grad():
        model.heads["emt"].mlp[0].bias.add_(1e-3)
    save_model(model, tmp_path / "retrained")
    stamp = root / "runs" / "morse_tiny" / "n8" / "metrics.json"
    before = stamp.stat().st_mtime_ns
    args = list(argv)
    args[args.index("--from") + 1] = str(tmp_path / "retrained")
    assert main(args) == 0
    assert stamp.stat().st_mtime_ns != before


def test_crystal_generator_rejects_collapsed_scf_labels():
    """The guard against tblite's collapsed periodic SCF states (seen: ZnO wurtzite at -380 eV/atom, 1,900 eV/A)."""
    import numpy as np

    from gfm_ase.finetune_zoo.generate_xtb import sane_labels

    ok_forces = np.full((8, 3), 2.0)
    assert sane_labels(-60.0, ok_forces, [])
    assert sane_labels(-60.5, ok_forces, [-60.0, -61.0])
    assert not sane_labels(-380.0, ok_forces, [-60.0, -61.0])  # far from the prototype's median
    assert not sane_labels(-60.0, np.full((8, 3), 900.0), [])  # forces no small distortion gives
    assert not sane_labels(float("nan"), ok_forces, [])
