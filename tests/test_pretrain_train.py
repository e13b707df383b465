"""End-to-end training on the tiny EMT/LJ corpus: the loss falls, the final model carries its metadata and loads
in GFMCalculator from the output directory, logs are written, an existing run is never overwritten."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from pretrain_helpers import make_data, tiny_config
from gfm_ase.pretraining.logger import read_csv


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("tiny"), scale=0.25)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """The example config (its model, loss, optimizer) on the reduced corpus, 150 steps."""
    from gfm_ase.pretraining.trainer import Trainer

    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(data_dir, sampling__steps_per_epoch=50, sampling__epochs=3, logging__every_steps=1,
                      checkpoint__every_steps=50, validation__every_steps=75)
    Trainer(cfg, out).fit()
    return cfg, out


def test_loss_falls_well_below_its_start(trained):
    _, out = trained
    rows = read_csv(out / "logs" / "train.csv")
    loss = np.array([float(r["loss"]) for r in rows])
    assert len(loss) == 150
    assert np.all(np.isfinite(loss))
    first, last = loss[:10].mean(), loss[-10:].mean()
    assert last < 0.25 * first, (first, last)


def test_validation_errors_fall_and_are_logged_per_dataset_and_head(trained):
    _, out = trained
    rows = read_csv(out / "logs" / "val.csv")
    heads = [r for r in rows if r["kind"] == "head" and r["split"] == "val"]
    assert {r["name"] for r in heads} == {"emt", "lj"}
    by_step = {}
    for r in heads:
        by_step.setdefault(int(r["step"]), {})[r["name"]] = float(r["forces_mae_meV_A"])
    steps = sorted(by_step)
    assert steps[0] == 75 and steps[-1] == 150
    datasets = {r["name"] for r in rows if r["kind"] == "dataset"}
    assert datasets == {"cu_bulk", "au_bulk", "cuau_alloy", "cu_lj"}
    assert any(r["split"] == "test" for r in rows)


def test_final_model_loads_from_outdir_with_metadata(trained, data_dir):
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.data import Store, fit_reference_energies, split_indices

    cfg, out = trained
    heads = GFMCalculator.available_heads(str(out))
    assert set(heads) == {"emt", "lj"}
    emt, lj = heads["emt"], heads["lj"]
    assert emt["level_of_theory"] == "EMT" and emt["code"] == "ASE EMT"
    assert emt["elements"] == ["Cu", "Au"] and lj["elements"] == ["Cu"]
    assert [d["name"] for d in emt["datasets"]] == ["cu_bulk", "au_bulk", "cuau_alloy"]
    d0 = emt["datasets"][0]
    assert d0["store"]["level_of_theory"] == "EMT" and d0["n_train"] + d0["n_val"] + d0["n_test"] == d0["n_structures"]
    assert 0 < d0["sampling_probability"] < 1
    for h in (emt, lj):
        assert h["metrics"]["test"]["forces_mae_meV_A"] > 0
        assert h["metrics"]["val"]["energy_mae_meV_atom"] is not None
        assert h["scale"] > 0
    # lj has one dataset: its reference energies are the data module's fit on that dataset's training split only
    spec = cfg.datasets[3]
    store = Store(data_dir / "cu_lj.h5")
    train = split_indices(len(store), spec.split.fractions, spec.split.seed)["train"]
    assert lj["reference_energies"] == pytest.approx(fit_reference_energies(store, train), rel=1e-9)
    # ... and the scale is the RMS force of that training split
    f = np.concatenate([store[int(i)].forces.ravel() for i in train])
    assert lj["scale"] == pytest.approx(float(np.sqrt(np.mean(f**2))), rel=1e-9)

    atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
    atoms.rattle(0.05, seed=1)
    for head in ("emt", "lj"):
        atoms.calc = GFMCalculator(model=str(out), head=head, device="cpu")
        e = atoms.get_potential_energy()
        assert np.isfinite(e) and atoms.get_forces().shape == (4, 3)
    with pytest.raises(ValueError, match="not covered"):
        GFMCalculator(model=str(out), head="lj", device="cpu").predict(bulk("Au", "fcc", a=4.08))


def test_an_existing_run_is_not_overwritten(trained):
    from gfm_ase.pretraining.trainer import Trainer, TrainingError

    cfg, out = trained
    before = (out / "final" / "model.safetensors").read_bytes()
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(cfg, out)
    assert (out / "final" / "model.safetensors").read_bytes() == before
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 150


def test_output_folder_is_checked_before_any_process_group(trained, tmp_path, monkeypatch):
    """An existing run, or --resume without a checkpoint, is refused before the distributed set-up starts."""
    import gfm_ase.pretraining.trainer as trainer_module

    def no_setup(*args, **kwargs):
        raise AssertionError("setup_distributed was called before the output folder was checked")

    monkeypatch.setattr(trainer_module, "setup_distributed", no_setup)
    cfg, out = trained
    with pytest.raises(trainer_module.TrainingError, match="--resume"):
        trainer_module.Trainer(cfg, out)
    with pytest.raises(trainer_module.TrainingError, match="no checkpoint"):
        trainer_module.Trainer(cfg, tmp_path / "nothing", resume=True)


@pytest.mark.parametrize("precision", ["bfloat16", "float64"])
def test_other_precisions_train(data_dir, tmp_path, precision):
    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.pretraining.trainer import Trainer

    cfg = tiny_config(data_dir, precision=precision, sampling__steps_per_epoch=20, sampling__epochs=1,
                      logging__every_steps=1, validation__max_structures=4)
    Trainer(cfg, tmp_path).fit()
    loss = [float(r["loss"]) for r in read_csv(tmp_path / "logs" / "train.csv")]
    assert np.all(np.isfinite(loss)) and np.mean(loss[-5:]) < np.mean(loss[:5])
    doc = read_model_json(tmp_path / "final")
    assert doc["weights_dtype"] == ("float64" if precision == "float64" else "float32")  # bf16: fp32 master weights


def test_dataloader_workers_give_the_same_run_and_checkpoint_the_consumed_sampler_state(data_dir, tmp_path):
    from gfm_ase.pretraining.state import read_checkpoint
    from gfm_ase.pretraining.trainer import Trainer

    common = dict(sampling__steps_per_epoch=8, sampling__epochs=1, logging__every_steps=1, checkpoint__every_steps=4,
                  checkpoint__keep=5, validation__max_structures=2)
    Trainer(tiny_config(data_dir, data__num_workers=0, **common), tmp_path / "w0").fit()
    Trainer(tiny_config(data_dir, data__num_workers=2, data__cache_graphs=False, **common), tmp_path / "w2").fit()
    a = [r["loss"] for r in read_csv(tmp_path / "w0" / "logs" / "train.csv")]
    b = [r["loss"] for r in read_csv(tmp_path / "w2" / "logs" / "train.csv")]
    assert a == b
    _, _, meta = read_checkpoint(tmp_path / "w2" / "checkpoints" / "step_00000004")
    assert meta["sampler"]["steps_drawn"] == 4  # not the prefetched steps


def test_logs_truncate_rows_after_the_resumed_step(tmp_path):
    from gfm_ase.pretraining.logger import CSVLog

    log = CSVLog(tmp_path / "t.csv", ["step", "loss"], None)
    for s in range(1, 8):
        log.write({"step": s, "loss": 0.5 / s})
    log.close()
    log = CSVLog(tmp_path / "t.csv", ["step", "loss"], resume_step=4)
    log.write({"step": 5, "loss": 1.0})
    log.close()
    rows = read_csv(tmp_path / "t.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[1]["loss"]) == 0.25 and float(rows[4]["loss"]) == 1.0


def test_tensorboard_on_without_the_package_is_a_clear_error(tmp_path):
    from gfm_ase.pretraining.logger import RunLogger

    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="tensorboard package"):
            RunLogger(tmp_path, True, tensorboard="on")
        log = RunLogger(tmp_path / "auto", True, tensorboard="auto", progress=False)  # auto: CSV only
        assert log.tb is None
        log.close()
    else:
        log = RunLogger(tmp_path, True, tensorboard="on", progress=False)
        assert log.tb is not None
        log.close()


def test_trainer_takes_in_memory_graph_datasets(tmp_path):
    """The trainer does not care where graphs come from: lists of AtomicGraph work like stores."""
    from ase.calculators.emt import EMT

    from gfm_ase.graph.batch import graph_from_atoms
    from gfm_ase.pretraining.config import config_from_dict
    from gfm_ase.pretraining.data import DatasetSplits
    from gfm_ase.pretraining.trainer import Trainer

    def graphs(symbol, a, n, seed):
        out = []
        for k in range(n):
            atoms = bulk(symbol, "fcc", a=a, cubic=True)
            atoms.rattle(0.05, seed=seed + k)
            atoms.calc = EMT()
            atoms.get_potential_energy()
            out.append(graph_from_atoms(atoms, 4.0, with_labels=True))
        return out

    cfg = config_from_dict({
        "model": {"trunk": {"name": "painn", "options": {"cutoff": 4.0, "num_features": 16, "num_layers": 1,
                                                          "num_rbf": 6}}},
        "heads": [{"name": "a", "hidden": [16]}, {"name": "b", "hidden": [16]}],
        "datasets": [{"name": "cu", "path": "unused", "head": "a"}, {"name": "au", "path": "unused", "head": "b"}],
        "sampling": {"batch_size": 4, "steps_per_epoch": 5, "epochs": 1},
        "logging": {"progress": False},
    })
    cu, au = graphs("Cu", 3.6, 10, 0), graphs("Au", 4.08, 6, 100)
    data = [DatasetSplits("cu", "a", cu[:6], cu[6:8], cu[8:], elements=["Cu"]),
            DatasetSplits("au", "b", au[:4], au[4:5], au[5:], elements=["Au"])]
    Trainer(cfg, tmp_path, datasets=data).fit()
    from gfm_ase.checkpoint import read_model_json

    heads = {h["name"]: h for h in read_model_json(tmp_path / "final")["config"]["heads"]}
    assert heads["a"]["elements"] == ["Cu"] and set(heads["a"]["reference_energies"]) == {"Cu"}
    e = np.array([g.energy for g in cu[:6]]) / 4
    assert heads["a"]["reference_energies"]["Cu"] == pytest.approx(e.mean(), rel=1e-9)  # one element: the mean
    assert heads["b"]["metrics"]["test"]["n_structures"] == 1


def test_loss_stages_change_the_terms_the_trainer_optimises(data_dir, tmp_path):
    """A second stage without forces: the logged force term is there for the first half and gone after it."""
    from gfm_ase.pretraining.trainer import Trainer

    cfg = tiny_config(data_dir, sampling__steps_per_epoch=10, sampling__epochs=1, logging__every_steps=1,
                      validation__max_structures=4,
                      loss__stages=[{"start": 0.5, "energy_weight": 4.0, "forces_weight": 0.0}])
    Trainer(cfg, tmp_path).fit()
    rows = read_csv(tmp_path / "logs" / "train.csv")
    forces = [float(r["loss_forces"]) for r in rows]
    assert len(forces) == 10
    assert all(f > 0 for f in forces[:5]) and all(f == 0 for f in forces[5:])


def test_a_step_with_non_finite_gradients_changes_nothing_and_training_goes_on(data_dir, tmp_path, monkeypatch):
    """One poisoned step (an inf in a gradient, as an overflowing backward gives) is skipped: weights, optimizer
    state and EMA are those of the step before, later steps train normally (without the guard clipping turns the
    inf into NaN weights and every later loss is NaN)."""
    import torch

    from gfm_ase.pretraining.trainer import Trainer

    cfg = tiny_config(data_dir, sampling__steps_per_epoch=12, sampling__epochs=1, logging__every_steps=1,
                      checkpoint__every_steps=100, validation__every_steps=100)
    tr = Trainer(cfg, tmp_path)
    original = Trainer.compute_gradients
    seen = {}

    def poisoned(self, batch, counts, spec):
        out = original(self, batch, counts, spec)
        if self.step == 5:
            p = next(q for q in self.model.parameters() if q.grad is not None)
            p.grad.view(-1)[0] = float("inf")
            seen["before"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return out

    def after(self):
        if self.step == 5:
            seen["after_opt"] = True

    monkeypatch.setattr(Trainer, "compute_gradients", poisoned)
    monkeypatch.setattr(Trainer, "after_update", after)
    tr.fit()
    rows = read_csv(tmp_path / "logs" / "train.csv")
    loss = np.array([float(r["loss"]) for r in rows])
    assert len(loss) == 12 and np.all(np.isfinite(loss[6:])), loss
    assert "after_opt" not in seen  # no optimizer update happened at the poisoned step
    assert tr.skipped_steps == 1
    for k, v in tr.model.state_dict().items():
        assert torch.isfinite(v).all(), k
