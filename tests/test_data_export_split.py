"""`gfm data export STORE --split SPLITS.json --part test`: one part of a `gfm data split` file, the same
structures the pretrainer holds out for that split; a split made for another store or a wrong part is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read
from pretrain_helpers import make_data, tiny_config

from gfm_ase.cli import main
from gfm_ase.data import Store


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("tiny"))


def _energies(store, indices):
    return [float(store[int(i)].energy) for i in indices]


@pytest.mark.parametrize("by", ["structure", "group"])
def test_exported_part_is_the_pretrainers_split(data, tmp_path, capsys, by):
    from gfm_ase.pretraining.data import open_datasets

    cfg = tiny_config(data)
    spec = cfg.datasets[0]
    spec.split.by = by
    spec.split.fractions = (0.6, 0.2, 0.2)
    spec.split.seed = 3
    ref = {d.name: d for d in open_datasets(cfg, 4.0)}[spec.name]
    path = cfg.dataset_path(spec)
    splits = tmp_path / "splits.json"
    args = ["--fractions", "0.6", "0.2", "0.2", "--seed", "3", "--by", by]
    assert main(["data", "split", str(path), "-o", str(splits), *args]) == 0
    for part in ("train", "test"):
        out = tmp_path / f"{part}.extxyz"
        assert main(["data", "export", str(path), "-o", str(out), "--split", str(splits), "--part", part]) == 0
        want = ref.split_indices[part]
        assert f"wrote {len(want)} structures" in capsys.readouterr().out
        frames = read(out, ":")
        assert 0 < len(frames) < len(Store(path))
        np.testing.assert_allclose([a.get_potential_energy() for a in frames], _energies(Store(path), want))


def test_split_of_another_store_is_refused(data, tmp_path, capsys):
    cfg = tiny_config(data)
    a, b = (cfg.dataset_path(d) for d in cfg.datasets[:2])
    assert len(Store(a)) != len(Store(b))
    splits = tmp_path / "splits.json"
    assert main(["data", "split", str(a), "-o", str(splits)]) == 0
    capsys.readouterr()
    out = tmp_path / "x.extxyz"
    assert main(["data", "export", str(b), "-o", str(out), "--split", str(splits), "--part", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(splits) in err and f"holds {len(Store(b))}" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--part", "test"], "--split and --part go together"),
        (["--split", "SPLITS"], "--split and --part go together"),
        (["--split", "BROKEN", "--part", "test"], "cannot read the split file"),
        (["--split", "NOTEST", "--part", "test"], "no 'test' index list"),
        (["--split", "OUTSIDE", "--part", "test"], "is outside it"),
    ],
)
def test_bad_split_arguments_are_one_line(data, tmp_path, capsys, extra, expect):
    path = tiny_config(data).dataset_path(tiny_config(data).datasets[0])
    n = len(Store(path))
    files = {
        "SPLITS": {"n_structures": n, "train": [0], "val": [], "test": [1]},
        "BROKEN": None,
        "NOTEST": {"n_structures": n, "train": [0]},
        "OUTSIDE": {"n_structures": n, "train": [], "val": [], "test": [0, n]},
    }
    for name, doc in files.items():
        (tmp_path / name).write_text("{not json" if doc is None else json.dumps(doc))
    extra = [str(tmp_path / x) if x in files else x for x in extra]
    out = tmp_path / "x.extxyz"
    assert main(["data", "export", str(path), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and err.count("\n") == 0 and expect in err
    assert not out.exists()


def test_card_runs_holds_out_the_shipped_configs_fitsnap_test_split():
    """validation/card_runs.sh writes the FitSNAP test sets with the split of the shipped model's config."""
    import re
    from pathlib import Path

    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.hub import resolve_model

    repo = Path(__file__).resolve().parents[1]
    script = (repo / "validation" / "card_runs.sh").read_text()
    m = re.search(r"gfm data split \S+ --fractions (\S+) (\S+) (\S+) --seed (\d+) --by (\w+)", script)
    assert m, "card_runs.sh no longer splits the FitSNAP stores"
    fractions, seed, by = [float(x) for x in m.groups()[:3]], int(m.group(4)), m.group(5)
    names = re.search(r'FITSNAP="([^"]+)"', script).group(1).split()
    trained = read_model_json(resolve_model("gfm-base"))["extra"]["training"]["config"]["datasets"]
    fitsnap = {d["name"]: d["split"] for d in trained if d["name"].startswith("fitsnap_")}
    assert sorted(fitsnap) == sorted(f"fitsnap_{x}" for x in names)
    for name, split in fitsnap.items():
        assert (list(split["fractions"]), split["seed"], split["by"]) == (fractions, seed, by), name
