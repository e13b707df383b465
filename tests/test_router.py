"""head="auto": the router trained by gfm_ase.pretraining.router, shipped next to the weights, used by the calculator.

The fixture builds three small stores and a random-weight model whose heads were "trained" on them:
``mol`` (molecules of H C O, non-periodic), ``cryst`` (crystals of C O Si, periodic) and ``twin`` (the very same
crystals under another head: indistinguishable, so the router must group it with ``cryst``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
HEADS = {"mol": ("mols", ["H", "C", "O"]), "cryst": ("crysts", ["C", "O", "Si"]), "twin": ("twins", ["C", "O", "Si"])}


def _molecules(rng, n):
    from ase.build import molecule

    names = ["CH4", "H2O", "CO2", "CO", "CH3OH", "C2H6", "H2CO", "C2H2", "O2"]
    out = []
    for k in range(n):
        a = molecule(names[k % len(names)])
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(a)
    return out


def _crystals(rng, n):
    from ase import Atoms
    from ase.build import bulk

    out = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            a = bulk("C", "diamond", a=3.57 * rng.uniform(0.97, 1.03))
        elif kind == 1:
            a = bulk("Si", "diamond", a=5.43 * rng.uniform(0.97, 1.03))
        elif kind == 2:
            a = bulk("SiC", "zincblende", a=4.36 * rng.uniform(0.97, 1.03))
        else:  # CO2 / CO molecules packed in small periodic cells
            a = Atoms("CO2" if k % 8 == 3 else "CO", positions=[[0, 0, 0], [1.16, 0, 0], [-1.16, 0, 0]][:3 if k % 8 == 3
                      else 2], cell=np.eye(3) * rng.uniform(3.5, 4.5), pbc=True)
        a.rattle(0.03, seed=int(rng.integers(1 << 30)))
        out.append(a)
    return out


def _store(path, atoms_list):
    from ase.calculators.singlepoint import SinglePointCalculator

    from gfm_ase.data import StoreWriter

    with StoreWriter(path, level_of_theory="toy") as w:
        for k, a in enumerate(atoms_list):
            a.calc = SinglePointCalculator(a, energy=-1.0 * len(a), forces=np.zeros((len(a), 3)))
            w.append_atoms(a, group=f"g{k}")


def _model(directory, heads=HEADS, with_datasets=True):
    import torch

    from gfm_ase.checkpoint import save_model
    from gfm_ase.config import HeadConfig, ModelConfig, TrunkConfig
    from gfm_ase.model.gfm import GFMModel

    torch.manual_seed(0)
    cfg = ModelConfig(name="toy", trunk=TrunkConfig(name="painn", options={
        "cutoff": 4.0, "num_features": 8, "num_layers": 1, "num_rbf": 4}),
        heads=[HeadConfig(name=h, level_of_theory=h, elements=els, hidden=[8], shift=float(k),
                          datasets=[{"name": ds}] if with_datasets else [])
               for k, (h, (ds, els)) in enumerate(heads.items())])
    return save_model(GFMModel(cfg), directory)


CONFIG = """
model: {{name: toy, trunk: {{name: painn, options: {{cutoff: 4.0, num_features: 8, num_layers: 1, num_rbf: 4}}}}}}
heads:
  - {{name: mol, level_of_theory: mol}}
  - {{name: cryst, level_of_theory: cryst}}
  - {{name: twin, level_of_theory: twin}}
datasets:
  - {{name: mols, path: {d}/mols.h5, head: mol, split: {{fractions: [0.8, 0.2, 0.0], seed: 0, by: structure}}}}
  - {{name: crysts, path: {d}/crysts.h5, head: cryst, split: {{fractions: [0.8, 0.2, 0.0], seed: 0, by: structure}}}}
  - {{name: twins, path: {d}/twins.h5, head: twin, split: {{fractions: [0.8, 0.2, 0.0], seed: 0, by: structure}}}}
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("router")
    _store(d / "mols.h5", _molecules(np.random.default_rng(0), 90))
    _store(d / "crysts.h5", _crystals(np.random.default_rng(1), 80))
    _store(d / "twins.h5", _crystals(np.random.default_rng(1), 80))  # the same structures: indistinguishable
    (d / "toy.yaml").write_text(CONFIG.format(d=d))
    return d


@pytest.fixture(scope="module")
def routed(toy):
    from gfm_ase.pretraining.router import train_router

    model = _model(toy / "model")
    doc = train_router(str(toy / "toy.yaml"), model, log=lambda *a: None)
    return model, doc


def _co2(periodic: bool):
    from ase import Atoms

    a = Atoms("CO2", positions=[[0, 0, 0], [1.16, 0, 0], [-1.16, 0, 0]])
    if periodic:
        a.cell = np.eye(3) * 4.0
        a.pbc = True
    return a


def test_router_file_held_out_accuracy_and_groups(routed):
    model, doc = routed
    assert (model / "router.json").is_file() and (model / "router.safetensors").is_file()
    assert doc["groups"] == [["mol"], ["cryst", "twin"]]  # twin's cells are cryst's: one group, cryst first
    held = doc["metrics"]["held_out"]["datasets"]
    assert held["mols"]["accuracy"] == 1.0 and held["crysts"]["accuracy"] == 1.0
    assert held["twins"]["accuracy"] == 0.0 and held["twins"]["group_accuracy"] == 1.0  # resolved to cryst
    assert held["mols"]["n"] == 18  # the validation split of the trainer's split (20 % of 90)


def test_auto_picks_the_head_of_the_training_distribution(routed):
    from gfm_ase.calculator import GFMCalculator

    model, _ = routed
    auto = GFMCalculator(model, head="auto", device="cpu", dtype="float64")
    fixed = {h: GFMCalculator(model, head=h, device="cpu", dtype="float64") for h in HEADS}
    # the same CO2: every head covers C and O, only periodicity tells the distributions apart
    for periodic, want in ((False, "mol"), (True, "cryst")):
        r = auto.predict(_co2(periodic))
        assert r["head"] == want
        e = {h: c.predict(_co2(periodic))["energy"] for h, c in fixed.items()}
        assert r["energy"] == pytest.approx(e[want], abs=1e-10)  # one head, never a mixture
        assert all(abs(r["energy"] - v) > 1e-3 for h, v in e.items() if h != want)
        assert fixed[want].results["head"] == want
    assert auto.metadata["name"] == "cryst"


def test_auto_only_picks_heads_that_cover_the_elements(routed):
    from ase.build import bulk, molecule

    from gfm_ase.calculator import GFMCalculator

    model, _ = routed
    calc = GFMCalculator(model, head="auto", device="cpu")
    cluster = bulk("Si", "diamond", a=5.43).repeat(2)[:5]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    assert calc.predict(cluster)["head"] == "cryst"  # non-periodic like the molecules, but only cryst has Si
    assert calc.predict(molecule("CH4"))["head"] == "mol"
    with pytest.raises(ValueError, match="not covered by head"):  # N: no head was trained on it
        calc.predict(molecule("NH3"))


def test_prefer_orders_a_group(toy, tmp_path):
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.pretraining.router import train_router

    from gfm_ase.pretraining.config import load_config

    model = _model(tmp_path / "m")  # a loaded config, as the trainer would pass its own at the end of a run
    doc = train_router(load_config(toy / "toy.yaml"), model, prefer=["twin"], log=lambda *a: None)
    assert ["twin", "cryst"] in doc["groups"] and ["mol"] in doc["groups"]
    assert GFMCalculator(model, head="auto", device="cpu").predict(_co2(True))["head"] == "twin"


def _copy(model, dst):
    import shutil

    shutil.copytree(model, dst)
    return dst


def test_tampered_router_files_are_refused(routed, tmp_path):
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.runtime.router import RouterError

    model, _ = routed
    bad = _copy(model, tmp_path / "w")
    raw = bytearray((bad / "router.safetensors").read_bytes())
    raw[-3] ^= 0xFF
    (bad / "router.safetensors").write_bytes(bytes(raw))
    with pytest.raises(RouterError, match="sha256"):
        GFMCalculator(bad, head="auto", device="cpu")
    GFMCalculator(bad, head="mol", device="cpu")  # a fixed head does not need the router

    bad = _copy(model, tmp_path / "j")
    doc = json.loads((bad / "router.json").read_text())
    doc["groups"] = [["mol", "cryst", "twin"]]
    (bad / "router.json").write_text(json.dumps(doc))
    with pytest.raises(RouterError, match="checksum"):
        GFMCalculator(bad, head="auto", device="cpu")


def test_router_of_other_training_data_is_refused(routed, tmp_path):
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.runtime.router import RouterError

    model, _ = routed
    other = _model(tmp_path / "other", heads={**HEADS, "twin": ("elsewhere", ["C", "O", "Si"])})
    for f in ("router.json", "router.safetensors"):
        (other / f).write_bytes((model / f).read_bytes())
    with pytest.raises(RouterError, match="retrain the router"):
        GFMCalculator(other, head="auto", device="cpu")


def test_unknown_head_and_missing_router(tmp_path):
    from ase.build import molecule

    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.runtime.router import RouterError

    model = _model(tmp_path / "m")
    with pytest.raises(ValueError, match=r"unknown head 'pbe'.*'auto'"):
        GFMCalculator(model, head="pbe", device="cpu")
    with pytest.raises(RouterError, match="ships none"):
        GFMCalculator(model, head="auto", device="cpu")
    single = _model(tmp_path / "s", heads={"mol": HEADS["mol"]})
    assert GFMCalculator(single, head="auto", device="cpu").predict(molecule("H2O"))["head"] == "mol"


def test_config_that_did_not_train_the_model_is_refused(toy, tmp_path):
    from gfm_ase.pretraining.router import train_router
    from gfm_ase.runtime.router import RouterError

    model = _model(tmp_path / "m", with_datasets=False)
    with pytest.raises(RouterError, match="use the config the model was trained with"):
        train_router(str(toy / "toy.yaml"), model, log=lambda *a: None)
    assert not (model / "router.json").exists()


def test_cli_trains_and_gfm_heads_describes_it(toy, tmp_path, capsys):
    from gfm_ase.cli import main

    model = _model(tmp_path / "m")
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    assert main(["pretrain-router", str(toy / "toy.yaml"), "--model", str(model),
                 "--features", "composition,periodic,size", "--markdown", str(tmp_path / "r.md")]) == 0
    table = (tmp_path / "r.md").read_text()
    assert "| `mols` | `mol` | 18 | 1.000 | 1.000 |" in table and "groups mol | cryst/twin" in table
    assert "held out" in capsys.readouterr().out
    assert main(["heads", "--model", str(model), "--json"]) == 0
    heads = json.loads(capsys.readouterr().out)
    assert list(heads) == ["mol", "cryst", "twin", "auto"]
    assert heads["auto"]["router"]["features"] == ["composition", "periodic", "size"]
    assert heads["auto"]["router"]["groups"] == [["mol"], ["cryst", "twin"]]
    bad = subprocess.run([sys.executable, "-m", "gfm_ase.pretraining.router", str(toy / "toy.yaml"),
                          "--model", str(model),
                          "--features", "composition,colour"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown router feature(s) ['colour']" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["gfm-mini", "gfm-base"])
def test_builtin_routers_route_clear_cases(name):
    """The shipped routers load (checksums, datasets of the model's heads) and send clear cases to their heads."""
    from ase.build import bulk, molecule

    from gfm_ase.hub import BUILTIN_DIR
    from gfm_ase.runtime import InferenceRuntime

    if not (BUILTIN_DIR / name / "router.json").is_file():
        pytest.skip(f"{name} ships no router")
    rt = InferenceRuntime(name, "auto", device="cpu")
    si, ch4 = bulk("Si", "diamond", a=5.43), molecule("CH4")
    assert rt.route(si.numbers, si.pbc, si.cell.array).head == "omat"
    assert rt.route(ch4.numbers, ch4.pbc, ch4.cell.array).head == "gfn2"
    alloy = bulk("Cu", "fcc", a=3.6, cubic=True)
    alloy.symbols[[1, 3]] = "Pt"  # a Cu-Pt alloy: what the EMT training set is made of
    assert rt.route(alloy.numbers, alloy.pbc, alloy.cell.array).head == "emt"


def test_auto_where_one_head_per_run_is_needed_is_refused(routed):
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.screening.engine import Screener

    model, _ = routed
    with pytest.raises(ValueError, match="'auto' is not supported here"):
        Screener(model, "auto", device="cpu")
    with pytest.raises(ValueError, match="does not combine with"):
        GFMCalculator(model, head="auto", device="cpu", uncertainty=True)
    Screener(model, "cryst", device="cpu")  # a fixed head still screens


def test_dataset_arrays_of_in_memory_graphs():
    """A DatasetSplits of in-memory graphs (no store, no split indices) gives its element counts, pbc and cells
    (it used to index the missing split indices first and fail with a TypeError)."""
    from ase.build import bulk, molecule

    from gfm_ase.elements import MAX_Z
    from gfm_ase.graph.batch import graph_from_atoms
    from gfm_ase.pretraining.data import DatasetSplits
    from gfm_ase.pretraining.router import dataset_arrays

    water, si = molecule("H2O"), bulk("Si", "diamond", a=5.43)
    graphs = [graph_from_atoms(a, 3.0) for a in (water, si)]
    d = DatasetSplits(name="mem", head="h", train=graphs, val=[], test=[])
    counts, pbc, cell = dataset_arrays(d, "train")
    assert counts.shape == (2, MAX_Z) and counts[0, 1] == 2 and counts[0, 8] == 1 and counts[1, 14] == 2
    assert pbc.tolist() == [[False] * 3, [True] * 3]
    assert np.allclose(cell[1], si.cell[:]) and cell.shape == (2, 3, 3)
    empty = dataset_arrays(d, "val")
    assert empty[0].shape == (0, MAX_Z) and empty[1].shape == (0, 3) and empty[2].shape == (0, 3, 3)
