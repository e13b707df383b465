"""Bad-input suite, models and the calculator API: damaged or doctored model directories are refused with a
CheckpointError naming the file (never unpickled, never a torch dump), and every calculator option is checked."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from conftest import make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.checkpoint import CheckpointError, _canonical, save_model
from gfm_ase.cli import main
from gfm_ase.graph import StructureError
from gfm_ase.runtime.device import DeviceError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_model(make_tiny_model(elements=("Cu", "H", "O"), dtype=torch.float32),
                      tmp_path_factory.mktemp("model") / "m")


def _resum(d):
    doc = json.loads((d / "model.json").read_text())
    doc["json_sha256"] = hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "json_sha256"})).hexdigest()
    (d / "model.json").write_text(json.dumps(doc))


def _weights_resum(d):
    doc = json.loads((d / "model.json").read_text())
    doc["weights_sha256"] = hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
    (d / "model.json").write_text(json.dumps(doc))
    _resum(d)


def _truncate(d):
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[: len(raw) // 2])


def _flip(d):
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[-100] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(raw))


def _pickle(d):
    torch.save({"x": torch.zeros(3)}, d / "model.safetensors")  # a pickle where the weights should be
    _weights_resum(d)


def _edit_json(key_path, value, resum=True):
    def edit(d):
        doc = json.loads((d / "model.json").read_text())
        node = doc
        for k in key_path[:-1]:
            node = node[k]
        if value is KeyError:
            del node[key_path[-1]]
        else:
            node[key_path[-1]] = value
        (d / "model.json").write_text(json.dumps(doc))
        if resum:
            _resum(d)
    return edit


DAMAGE = {
    "weights truncated": (_truncate, "sha256"),
    "weights byte flipped": (_flip, "sha256"),
    "weights missing": (lambda d: (d / "model.safetensors").unlink(), "missing"),
    "weights are a pickle (re-summed)": (_pickle, "model.safetensors"),
    "weights truncated and re-summed": (lambda d: (_truncate(d), _weights_resum(d)), "model.safetensors"),
    "model.json not JSON": (lambda d: (d / "model.json").write_text("{not json"), "model.json"),
    "model.json empty": (lambda d: (d / "model.json").write_text(""), "model.json"),
    "model.json edited, not re-summed": (_edit_json(["config", "name"], "other", resum=False), "model.json"),
    "architecture edited and re-summed": (_edit_json(["config", "trunk", "options", "num_features"], 32),
                                          "disagree"),
    "layers edited and re-summed": (_edit_json(["config", "trunk", "options", "num_layers"], 3), "disagree"),
    "unknown trunk and re-summed": (_edit_json(["config", "trunk", "name"], "nosuchtrunk"), "nosuchtrunk"),
    "negative cutoff and re-summed": (_edit_json(["config", "trunk", "options", "cutoff"], -4.0), "cutoff"),
    "config removed and re-summed": (_edit_json(["config"], KeyError), "model.json"),
    "head hidden edited and re-summed": (_edit_json(["config", "heads", 0, "hidden"], [7]), "disagree"),
    "weights dtype unknown and re-summed": (_edit_json(["weights_dtype"], "float7"), "float7"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_model_is_refused_by_the_calculator(saved, tmp_path, case):
    damage, fragment = DAMAGE[case]
    d = tmp_path / "m"
    shutil.copytree(saved, d)
    damage(d)
    with pytest.raises((CheckpointError, ValueError)) as info:
        GFMCalculator(model=d, head="a")
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg.strip(), msg


@pytest.mark.parametrize("case", ["weights truncated", "architecture edited and re-summed", "model.json not JSON"])
def test_damaged_model_is_one_line_in_the_cli(saved, tmp_path, capsys, case):
    damage, fragment = DAMAGE[case]
    d = tmp_path / "m"
    shutil.copytree(saved, d)
    damage(d)
    src = tmp_path / "in.xyz"
    src.write_text("1\n\nCu 0 0 0\n")
    assert main(["screen", str(src), "-o", str(tmp_path / "o.h5"), "--model", str(d), "--head", "a",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err


def test_url_without_checksum_is_refused_before_any_download():
    with pytest.raises((CheckpointError, ValueError), match="sha256"):
        GFMCalculator(model="https://example.invalid/model.tar.gz")


# --- calculator options and inputs --------------------------------------------------------------------------------
OPTIONS = {
    "dtype float16": (dict(dtype="float16"), ValueError, "dtype"),
    "device gpu0": (dict(device="gpu0"), DeviceError, "unknown device 'gpu0'"),
    "unknown head": (dict(head="zz"), ValueError, "unknown head 'zz'"),
    "skin -1": (dict(skin=-1.0), ValueError, "skin"),
    "min_distance_factor 3": (dict(min_distance_factor=3), ValueError, "min_distance_factor"),
    "typo kwarg": (dict(alow_unknown_elements=True), TypeError, "alow_unknown_elements"),
}
if not torch.cuda.is_available():
    OPTIONS["device cuda without CUDA"] = (dict(device="cuda"), DeviceError, "CUDA is not available")
    OPTIONS["device cuda:3 without CUDA"] = (dict(device="cuda:3"), DeviceError, "CUDA is not available")


@pytest.mark.parametrize("case", list(OPTIONS))
def test_calculator_option_is_checked(saved, case):
    kwargs, exc, fragment = OPTIONS[case]
    kwargs = {"head": "a", **kwargs}
    with pytest.raises(exc, match=fragment):
        GFMCalculator(model=saved, **kwargs)


INPUTS = {
    "empty Atoms": (Atoms(), StructureError, "empty"),
    "NaN position": (Atoms("Cu2", positions=[[0, 0, 0], [np.nan, 0, 0]]), StructureError, "NaN"),
    "inf cell": (Atoms("Cu", cell=[[np.inf, 0, 0], [0, 3, 0], [0, 0, 3]], pbc=True), StructureError, "NaN or inf"),
    "element outside the head": (bulk("NaCl", "rocksalt", a=5.6), ValueError, "not covered by head"),
    "dummy atom X": (Atoms("X"), ValueError, "not covered by head"),
    "zero periodic cell vector": (Atoms("Cu", cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]], pbc=True), StructureError,
                                  "zero"),
}


@pytest.mark.parametrize("case", list(INPUTS))
def test_calculator_refuses_bad_structures(saved, case):
    atoms, exc, fragment = INPUTS[case]
    atoms = atoms.copy()
    atoms.calc = GFMCalculator(model=saved, head="a")
    with pytest.raises(exc, match=fragment):
        atoms.get_potential_energy()


def test_stress_of_a_molecule_is_refused_not_invented(saved):
    m = molecule("H2O")
    m.calc = GFMCalculator(model=saved, head="a")
    assert np.isfinite(m.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="stress needs a periodic structure"):
        m.get_stress()


def test_predict_refuses_what_is_not_a_structure(saved):
    with pytest.raises(TypeError, match="str"):
        GFMCalculator(model=saved, head="a").predict("Cu")
