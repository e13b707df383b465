"""The two ends of the screening pipeline, each on its own: the producer (read, check, graph, plan; no model) and
the consumer (a planned batch -> the model -> rows); and the layout rules of the split (gfm_ase/screening)."""
from __future__ import annotations

import ast
import queue
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from conftest import make_tiny_model

from gfm_ase.graph import collate
from gfm_ase.model import predict
from gfm_ase.screening import Screener
from gfm_ase.screening import producer as producer_module
from gfm_ase.screening.benchset import benchmark_structures
from gfm_ase.screening.readers import InputStructure, Unit

SCREENING = Path(__file__).resolve().parents[1] / "gfm_ase" / "screening"


def _units(structures):
    items = [InputStructure.from_atoms(str(k), a) for k, a in enumerate(structures)]
    return [Unit(k, (it.id,), it.id, (lambda it=it: [it])) for k, it in enumerate(items)]


def _drain(sc: Screener, structures, workers: int = 1):
    """Everything the producer queues for ``structures``: a list of messages, ending with ``done``."""
    q: queue.Queue = queue.Queue()
    sc.producer.workers = workers
    sc.producer.produce(_units(structures), set(), sc.budget, q, threading.Event())
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def _inputs():
    good = benchmark_structures(8, seed=4)
    overlapping = Atoms("Si2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=[5, 5, 5], pbc=True)
    empty = Atoms(cell=[5, 5, 5], pbc=True)
    gold = bulk("Au", "fcc", a=4.08)  # not covered by the head
    return good[:3] + [overlapping] + good[3:5] + [empty, gold] + good[5:], {3, 6, 7}


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(seed=6, heads=("a", "b"), elements=("Si", "O", "Al", "Mg", "Na", "Cl", "Cu"),
                           family="fam")  # one family of two heads: a spread


@pytest.mark.parametrize("workers", [1, 3])
def test_producer_gives_every_structure_once_in_order_without_the_model(model, monkeypatch, workers):
    structures, bad = _inputs()
    assert set(np.unique(np.concatenate([a.numbers for a in structures]))) - {79} <= set(
        model.head_config("a").atomic_numbers)
    sc = Screener(model, "a", dtype="float64", max_atoms=40, uncertainty=False)

    def no_model(*args, **kwargs):
        raise AssertionError("the producer evaluated the model")

    monkeypatch.setattr(sc.runtime, "evaluate", no_model)
    monkeypatch.setattr(producer_module, "CHUNK_UNITS", 1)  # many chunks in flight over the threads
    messages = _drain(sc, structures, workers)
    assert messages[-1][0] == "done" and [m[0] for m in messages[:-1]].count("done") == 0
    batch_ids, error_ids = [], []
    for kind, payload, extra in messages[:-1]:
        if kind == "batch":
            assert sum(g.n_atoms for g in payload.graphs) <= 40 or len(payload) == 1  # the budget
            assert int(extra.n_atoms.sum()) == payload.n_atoms  # collated as planned
            batch_ids += [m.id for m in payload.metas]
        else:
            assert kind == "errors", payload
            assert (payload["error"] != "").all()
            error_ids += list(payload["id"])
    assert sorted(map(int, batch_ids + error_ids)) == list(range(len(structures)))  # each once
    assert batch_ids == sorted(batch_ids, key=int)  # input order within the batches
    assert set(map(int, error_ids)) == bad


def test_consumer_rows_are_the_models_outputs(model):
    structures, bad = _inputs()
    sc = Screener(model, "b", dtype="float64", properties=["forces", "stress"], max_atoms=40)
    batches = [(p, gb) for kind, p, gb in _drain(sc, structures) if kind == "batch"]
    assert len(batches) >= 2
    for planned, gb in batches:
        block = sc.consumer.evaluate(planned, gb)
        ref = predict(sc.model, collate(planned.graphs), "b", forces=True, stress=True, extra_heads=["a"])
        assert list(block["id"]) == [m.id for m in planned.metas] and (block["error"] == "").all()
        np.testing.assert_allclose(block["energy"], ref["energy"].detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(block["energy_per_atom"], block["energy"] / block["n_atoms"], rtol=0, atol=0)
        np.testing.assert_allclose(block["forces"], ref["forces"].detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(block["stress"], ref["stress"].detach().numpy(), rtol=0, atol=1e-12)
        assert np.isfinite(block["uncertainty"]).all() and list(block) == list(sc.columns)


def test_a_structure_the_d3_code_refuses_is_an_error_row(monkeypatch):
    pytest.importorskip("dftd3", reason="the d3 extra is not installed")
    from gfm_ase.dispersion import DispersionError

    model = make_tiny_model(heads=("pbe",), elements=("Si", "O"), family="pbe")
    sc = Screener(model, "pbe", dtype="float64", dispersion="d3bj")
    compute = sc.producer.dispersion.compute

    def picky(numbers, *args, **kwargs):
        if len(numbers) == 3:
            raise DispersionError("dispersion 'd3bj': simple-dftd3 cannot evaluate this structure (test)")
        return compute(numbers, *args, **kwargs)

    monkeypatch.setattr(sc.producer.dispersion, "compute", picky)
    si = bulk("Si", "diamond", a=5.43)
    sio = Atoms("SiO2", positions=[[0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0]], cell=[8, 8, 8], pbc=True)
    res = sc.evaluate([si, sio, si.repeat((2, 1, 1))])
    assert res["error"][0] == res["error"][2] == "" and "cannot evaluate this structure" in res["error"][1]
    assert np.isnan(res["energy"][1]) and np.isnan(res["dispersion_energy"][1])
    assert np.isfinite(res["dispersion_energy"][[0, 2]]).all()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _calls(path: Path) -> set[str]:
    return {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)}


def test_split_along_the_concepts():
    """producer: read/check/graph/plan, never the model; consumer: the model, never graphs or input; engine:
    the wiring (no graph building, no model call of its own); loading stays in the runtime."""
    producer, consumer, engine = (SCREENING / f"{m}.py" for m in ("producer", "consumer", "engine"))
    assert "evaluate" not in _calls(producer) and not any("gfm_ase.model" in i for i in _imports(producer))
    assert not {"graph_from_arrays", "BatchPlanner", "load"} & _calls(consumer)
    assert not any(i.startswith(("gfm_ase.screening.readers", "gfm_ase.graph")) for i in _imports(consumer))
    assert not {"graph_from_arrays", "to_numpy", "predict"} & _calls(engine)
    for path in SCREENING.glob("*.py"):
        bad = {i for i in _imports(path) if i.startswith(("gfm_ase.checkpoint", "gfm_ase.hub"))}
        assert not bad, f"{path.name} loads models itself: {bad}"


def test_one_class_per_name_before_the_graph():
    """The screening input structure and the converters' lazy record no longer share the name ``Item``."""
    root = SCREENING.parent
    defined: dict[str, list[str]] = {}
    for sub in ("screening", "data", "evaluation"):
        for path in (root / sub).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    defined.setdefault(node.name, []).append(str(path.relative_to(root)))
    assert len(defined.get("Item", [])) <= 1, defined["Item"]
    assert defined["InputStructure"] == ["screening/readers.py"]


def test_engine_results_unchanged_by_the_split(model):
    """Float64 outputs of the whole engine equal predict on each structure alone (bit for bit on energies of a
    single-structure batch)."""
    structures = benchmark_structures(6, seed=9)
    sc = Screener(model, "a", dtype="float64", properties=["forces"], max_atoms=1, uncertainty=False)
    res = sc.evaluate(structures)
    from gfm_ase.graph import graph_from_atoms

    for k, atoms in enumerate(structures):
        ref = predict(sc.model, collate([graph_from_atoms(atoms, model.cutoff)]), "a", forces=True)
        assert res["energy"][k] == float(ref["energy"][0].detach())
    assert torch.get_default_dtype() == torch.float32  # the engine leaves the global default alone
