"""calc.parameters / calc.todict(): which model, weights, head, precision and dispersion produced the numbers; kept
by ASE trajectories and databases; no machine paths."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from conftest import make_tiny_model


def test_builtin_model_provenance_names_model_weights_and_head():
    from gfm_ase import GFMCalculator
    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.hub import BUILTIN_DIR

    calc = GFMCalculator(model="gfm-mini", head="omat", dtype="float64", device="cpu")
    doc = read_model_json(BUILTIN_DIR / "gfm-mini")
    p = calc.todict()
    assert p["model"] == "gfm-mini" and p["model_source"] == "builtin"
    assert p["weights_sha256"] == doc["weights_sha256"] and p["json_sha256"] == doc["json_sha256"]
    assert p["head"] == "omat" and p["level_of_theory"] == calc.head_config.level_of_theory
    assert p["dtype"] == "float64" and p["dispersion"] is None
    assert p["cutoff"] == pytest.approx(calc.model.cutoff)
    assert p == dict(calc.parameters)
    text = json.dumps(p)  # JSON-serializable, and no machine path
    assert str(BUILTIN_DIR) not in text and str(BUILTIN_DIR.parent.parent) not in text


def test_directory_model_is_named_by_its_config_not_its_path(tmp_path):
    from gfm_ase import GFMCalculator
    from gfm_ase.checkpoint import read_model_json, save_model

    model = make_tiny_model(heads=("a", "b"))
    save_model(model, tmp_path / "somewhere" / "mymodel")
    calc = GFMCalculator(model=tmp_path / "somewhere" / "mymodel", head="b", dtype="float32", device="cpu")
    p = calc.todict()
    assert p["model"] == model.config.name and p["model_source"] == "directory"
    assert p["weights_sha256"] == read_model_json(tmp_path / "somewhere" / "mymodel")["weights_sha256"]
    assert p["head"] == "b" and p["dtype"] == "float32"
    assert str(tmp_path) not in json.dumps(p)
    # in memory: no file checksum, a fingerprint of config and weights that changes with the weights
    mem = GFMCalculator(model=model, head="a", device="cpu").todict()
    assert mem["model_source"] == "in-memory" and mem["weights_sha256"] is None
    other = make_tiny_model(heads=("a", "b"), seed=1)
    assert GFMCalculator(model=other, head="a", device="cpu").todict()["model_fingerprint"] != \
        mem["model_fingerprint"]


def test_trajectory_and_database_keep_the_provenance(tmp_path):
    from ase.db import connect
    from ase.io import Trajectory, read

    from gfm_ase import GFMCalculator

    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.01, seed=0)
    atoms.calc = GFMCalculator(model="gfm-mini", head="omat", dtype="float64", device="cpu")
    energy = atoms.get_potential_energy()
    expected = atoms.calc.todict()
    with Trajectory(tmp_path / "run.traj", "w") as traj:
        traj.write(atoms)
    back = read(tmp_path / "run.traj")
    assert back.get_potential_energy() == pytest.approx(energy)
    assert back.calc.name == "gfmcalculator"
    assert {k: back.calc.parameters[k] for k in expected} == expected
    with connect(tmp_path / "run.db") as db:
        db.write(atoms)
    row = connect(tmp_path / "run.db").get(id=1)
    assert row.calculator_parameters["weights_sha256"] == expected["weights_sha256"]
    assert row.calculator_parameters["head"] == "omat"
    assert np.isclose(row.energy, energy)


def test_auto_head_records_the_router():
    from gfm_ase import GFMCalculator
    from gfm_ase.hub import BUILTIN_DIR
    from gfm_ase.runtime.router import read_router_json

    doc = read_router_json(BUILTIN_DIR / "gfm-mini")
    if doc is None:
        pytest.skip("gfm-mini ships no router")
    p = GFMCalculator(model="gfm-mini", head="auto", device="cpu").todict()
    assert p["head"] == "auto"
    assert p["router_sha256"] == doc["weights_sha256"] and p["router_json_sha256"] == doc["json_sha256"]
    assert "router_sha256" not in GFMCalculator(model="gfm-mini", head="omat", device="cpu").todict()
