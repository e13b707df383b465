"""The built-in models (gfm_ase/models/*): their files match the sha256 recorded in gfm_ase.hub (an edited copy is
refused), their metadata holds no machine paths, every head gives finite energy, forces and stress for every element
it lists, and the calculator's default model is gfm_ase.hub.default_model()."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from gfm_ase import hub
from gfm_ase.checkpoint import CheckpointError, load_model, read_model_json

BUILTINS = hub.builtin_models()


def test_there_is_a_builtin_model_and_the_default_is_one_of_them():
    assert BUILTINS and hub.default_model() in BUILTINS
    assert hub.default_model() == ("gfm-base" if "gfm-base" in BUILTINS else "gfm-mini")


def test_sha256_table_covers_every_builtin_directory():
    dirs = sorted(p.name for p in hub.BUILTIN_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    assert dirs == BUILTINS == sorted(hub.BUILTIN_SHA256)
    for name in BUILTINS:
        assert sorted(hub.BUILTIN_SHA256[name]) == ["model.json", "model.safetensors"]
        assert hub.builtin_sha256(hub.BUILTIN_DIR / name) == hub.BUILTIN_SHA256[name], \
            f"{name}: files changed; update BUILTIN_SHA256 (python -m gfm_ase.hub --print-builtin-sha256)"


def test_hub_file_names_are_the_checkpoint_ones():
    from gfm_ase import checkpoint

    assert (hub.JSON_NAME, hub.WEIGHTS_NAME) == (checkpoint.JSON_NAME, checkpoint.WEIGHTS_NAME)


def _rewrite_json(path, edit):
    """Edit model.json and recompute its own checksum, as someone tampering with it would."""
    from gfm_ase.checkpoint import _canonical

    doc = json.loads(path.read_text())
    edit(doc)
    doc["json_sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))


@pytest.mark.parametrize("name", BUILTINS)
def test_an_edited_builtin_model_is_refused(name, tmp_path, monkeypatch):
    from gfm_ase.calculator import GFMCalculator

    root = tmp_path / "models"
    shutil.copytree(hub.BUILTIN_DIR / name, root / name)
    shutil.copytree(hub.BUILTIN_DIR / name, tmp_path / "plain")
    monkeypatch.setattr(hub, "BUILTIN_DIR", root)
    head = read_model_json(root / name)["config"]["heads"][0]["name"]
    assert hub.resolve_model(name) == root / name  # the untouched copy loads
    assert GFMCalculator(model=name, head=head, device="cpu").model_path == root / name

    def edit(doc):
        doc["config"]["heads"][0]["scale"] *= 1.5
    _rewrite_json(root / name / "model.json", edit)
    read_model_json(root / name)  # its own checksum passes ...
    with pytest.raises(CheckpointError, match="model.json has sha256 .* was modified"):
        hub.resolve_model(name)  # ... the package's record does not
    with pytest.raises(CheckpointError, match="was modified"):
        GFMCalculator(model=name, head=head, device="cpu")
    load_model(hub.resolve_model(tmp_path / "plain"))  # by path a model directory is not a built-in: loads

    # different weights whose sha256 is written into model.json: refused too
    shutil.copy(tmp_path / "plain" / "model.json", root / name / "model.json")
    w = bytearray((root / name / "model.safetensors").read_bytes())
    w[-1] ^= 1
    (root / name / "model.safetensors").write_bytes(bytes(w))

    def new_weights(doc):
        doc["weights_sha256"] = hashlib.sha256(bytes(w)).hexdigest()
    _rewrite_json(root / name / "model.json", new_weights)
    with pytest.raises(CheckpointError, match="model.(json|safetensors) has sha256"):
        hub.resolve_model(name)
    monkeypatch.setattr(hub, "BUILTIN_SHA256", {})
    with pytest.raises(CheckpointError, match="no recorded sha256"):
        hub.resolve_model(name)


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_metadata_holds_no_machine_paths(name):
    doc = json.loads((hub.BUILTIN_DIR / name / "model.json").read_text())
    bad = [s for s in _strings(doc)
           if s.startswith("/") or any(p in s for p in ("/work/", "/home/", "/root/", "/tmp/"))]
    assert not bad, f"{name}: machine paths in model.json: {bad[:5]}"


def _element_cell(symbol: str) -> Atoms:
    """Two atoms in a cubic bcc cell, nearest neighbours at twice the covalent radius (1.8-3.6 A)."""
    z = atomic_numbers[symbol]
    d = float(np.clip(2.0 * covalent_radii[z], 1.8, 3.6))
    a = 2.0 * d / np.sqrt(3.0)
    atoms = Atoms([symbol, symbol], scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=np.eye(3) * a, pbc=True)
    atoms.positions[1] += [0.03, -0.02, 0.01]  # off the symmetric site: forces are not zero by symmetry
    return atoms


@pytest.fixture(scope="module", params=BUILTINS)
def builtin(request):
    return request.param, load_model(hub.resolve_model(request.param), dtype=torch.float32)


def test_every_head_gives_finite_results_for_every_element_it_lists(builtin):
    """One batched evaluation per head over one structure per listed element."""
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.graph.batch import collate, graph_from_atoms
    from gfm_ase.model.outputs import predict

    name, model = builtin
    checked = 0
    for head in model.head_names:
        elements = model.head_config(head).elements
        assert elements, f"{name}/{head} lists no elements"
        cells = [_element_cell(e) for e in elements]
        graphs = [graph_from_atoms(a, model.cutoff, max_neighbors=model.max_neighbors, min_distance=0.3)
                  for a in cells]
        batch = collate(graphs, dtype=torch.float32)
        out = predict(model, batch, head, forces=True, stress=True)
        energy, forces, stress = (out[k].detach().double().numpy() for k in ("energy", "forces", "stress"))
        assert energy.shape == (len(cells),) and forces.shape == (2 * len(cells), 3) and stress.shape == (len(cells), 6)
        for i, e in enumerate(elements):
            ok = np.isfinite(energy[i]) and np.isfinite(forces[2 * i:2 * i + 2]).all() and np.isfinite(stress[i]).all()
            assert ok, f"{name}/{head}: non-finite result for {e}"
        assert np.abs(forces).max() > 0
        checked += len(cells)
        # the batch path is the calculator's: the first element's energy through GFMCalculator
        calc = GFMCalculator(model=model, head=head, device="cpu")
        assert calc.get_potential_energy(cells[0]) == pytest.approx(float(energy[0]), rel=1e-5, abs=1e-4)
    assert checked == sum(len(model.head_config(h).elements) for h in model.head_names)


def test_calculator_without_a_model_uses_the_default(tmp_path, monkeypatch):
    from conftest import make_tiny_model

    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.checkpoint import save_model

    default = hub.default_model()
    heads = read_model_json(hub.BUILTIN_DIR / default)["config"]["heads"]
    calc = GFMCalculator(head=heads[0]["name"], device="cpu")
    assert calc.model_path == hub.BUILTIN_DIR / default and calc.model.config.name == default
    if len(heads) > 1:
        with pytest.raises(ValueError, match="choose one with head="):
            GFMCalculator()
    # a single-head default: GFMCalculator() with no argument at all
    root = tmp_path / "models"
    save_model(make_tiny_model(heads=("only",)), root / "gfm-base")
    monkeypatch.setattr(hub, "BUILTIN_DIR", root)
    monkeypatch.setattr(hub, "BUILTIN_SHA256", {"gfm-base": hub.builtin_sha256(root / "gfm-base")})
    calc = GFMCalculator()
    assert calc.model_path == root / "gfm-base" and calc.head == "only"


def test_maintainer_printout_is_the_table_to_paste(capsys):
    assert hub.main(["--print-builtin-sha256"]) == 0
    namespace = {}
    exec(capsys.readouterr().out, namespace)  # valid Python: BUILTIN_SHA256 = {...}
    assert namespace["BUILTIN_SHA256"] == {n: hub.builtin_sha256(hub.BUILTIN_DIR / n) for n in BUILTINS}
    assert namespace["BUILTIN_SHA256"] == hub.BUILTIN_SHA256
