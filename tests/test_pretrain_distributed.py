"""Two-process gloo training (torchrun and mpiexec) against one process on the same global batch: equal gradients
and parameters, in data-parallel and multi-task (head-group) layouts; head placement; the gathered checkpoint
holds every head and loads in GFMCalculator."""
from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pretrain_helpers import EXAMPLE, REPO, make_data, overrides_for, set_args, subprocess_env, tiny_config

WORKER = REPO / "tests" / "pretrain_ddp_worker.py"
SETTINGS = dict(precision="float64", sampling__batch_size=6, sampling__steps_per_epoch=2, sampling__epochs=1,
                validation__max_structures=3, optim__warmup_steps=0, optim__grad_clip=0.5)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("tiny"), scale=0.25)


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """One process, data parallel, every head: gradients of step 1, parameters and EMA after step 2."""
    from gfm_ase.pretraining.trainer import Trainer

    tr = Trainer(tiny_config(data_dir, **SETTINGS), tmp_path_factory.mktemp("ref"))
    assert tr.env.world_size == 1
    states = collections.deque()
    rows, grads = [], None
    for k, batch in enumerate(tr._loader(2, states)):
        row = tr.backward_step(batch)
        if k == 0:
            grads = {n: p.grad.detach().clone() for n, p in tr.model.named_parameters()}
        rows.append(tr.optimizer_step(row))
    params = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    ema = {n: t.clone() for n, t in tr.ema.shadow.items()}
    return {"grads": grads, "params": params, "ema": ema, "rows": rows}


def _launch(kind: str, data_dir: Path, tmp: Path, **extra) -> Path:
    out, result = tmp / "out", tmp / "result"
    settings = overrides_for(data_dir, **{**SETTINGS, **extra})
    worker_args = [str(WORKER), str(EXAMPLE), str(out), str(result), "--steps", "2", *set_args(settings)]
    if kind == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *worker_args]
    else:
        mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
        if not Path(mpiexec).exists():
            pytest.skip("mpiexec not available (pip install mpich)")
        cmd = [mpiexec, "-n", "2", sys.executable, *worker_args]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=subprocess_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tmp


def _check_against_reference(tmp: Path, reference: dict, launcher: str, expected_heads: list[list[str]]):
    result = tmp / "result"
    infos = [json.loads((result / f"info_{r}.json").read_text()) for r in (0, 1)]
    for r, info in enumerate(infos):
        assert info["world_size"] == 2 and info["launcher"] == launcher and info["backend"] == "gloo"
        assert info["heads"] == expected_heads[r]  # placement: each rank holds only its heads
    # both ranks log the global loss, equal to the single process's
    for k in range(2):
        for key in ("loss", "grad_norm"):
            assert infos[0]["rows"][k][key] == pytest.approx(reference["rows"][k][key], rel=1e-9)
            assert infos[1]["rows"][k][key] == infos[0]["rows"][k][key]
    assert sum(i["rows"][0]["n_local"] for i in infos) == reference["rows"][0]["structures"]
    for r in (0, 1):
        grads = load_file(str(result / f"grads_{r}.safetensors"))
        params = load_file(str(result / f"params_{r}.safetensors"))
        held = {n.split(".")[1] for n in grads if n.startswith("heads.")}
        assert held == set(expected_heads[r])
        assert any(n.startswith("trunk.") for n in grads)
        for n, g in grads.items():
            torch.testing.assert_close(g, reference["grads"][n], rtol=1e-9, atol=1e-12, msg=lambda m: f"{n}: {m}")
        for n, p in params.items():
            torch.testing.assert_close(p, reference["params"][n], rtol=1e-8, atol=1e-11, msg=lambda m: f"{n}: {m}")


def _check_final_model(tmp: Path, reference: dict):
    from ase.build import bulk

    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.checkpoint import load_model

    out = tmp / "out"
    final = load_model(out / "final", dtype=torch.float64)
    assert final.head_names == ["emt", "lj"]  # the gathered model holds every head
    # ... with the EMA weights of the single-process run (read from the file: load_model builds a float32 model)
    weights = load_file(str(out / "final" / "model.safetensors"))
    assert weights.keys() == final.state_dict().keys()
    for n, t in weights.items():
        torch.testing.assert_close(t, reference["ema"][n], rtol=1e-8, atol=1e-11, msg=lambda m: f"{n}: {m}")
    ckpt = load_file(str(out / "checkpoints" / "step_00000002" / "model.safetensors"))
    assert {n.split(".")[1] for n in ckpt if n.startswith("heads.")} == {"emt", "lj"}
    for n, t in ckpt.items():
        torch.testing.assert_close(t, reference["params"][n], rtol=1e-8, atol=1e-11)
    atoms = bulk("Cu", "fcc", a=3.6)
    for head in ("emt", "lj"):
        atoms.calc = GFMCalculator(model=str(out), head=head, device="cpu", dtype="float64")
        assert atoms.get_potential_energy() == pytest.approx(
            GFMCalculator(model=final, head=head, device="cpu", dtype="float64").get_potential_energy(atoms))


def test_torchrun_two_process_gloo_equals_one_process(data_dir, reference, tmp_path):
    tmp = _launch("torchrun", data_dir, tmp_path)
    _check_against_reference(tmp, reference, "torchrun", [["emt", "lj"], ["emt", "lj"]])
    _check_final_model(tmp, reference)


def test_mpiexec_multitask_head_groups_equal_one_process(data_dir, reference, tmp_path):
    tmp = _launch("mpiexec", data_dir, tmp_path, parallel__mode="multitask")
    _check_against_reference(tmp, reference, "mpi", [["emt"], ["lj"]])
    _check_final_model(tmp, reference)


@pytest.mark.slow
def test_mpiexec_two_process_gloo_equals_one_process(data_dir, reference, tmp_path):
    tmp = _launch("mpiexec", data_dir, tmp_path)
    _check_against_reference(tmp, reference, "mpi", [["emt", "lj"], ["emt", "lj"]])


@pytest.mark.slow
def test_torchrun_multitask_head_groups_equal_one_process(data_dir, reference, tmp_path):
    tmp = _launch("torchrun", data_dir, tmp_path, parallel__mode="multitask")
    _check_against_reference(tmp, reference, "torchrun", [["emt"], ["lj"]])
    _check_final_model(tmp, reference)


def test_launcher_detection_from_the_environment():
    from gfm_ase.pretraining.distributed import detect_launcher

    assert detect_launcher({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "x", "LOCAL_RANK": "0"}) == "torchrun"
    assert detect_launcher({"PMI_RANK": "1", "PMI_SIZE": "2"}) == "mpi"  # MPICH/Hydra, srun --mpi=pmi2
    assert detect_launcher({"PMIX_RANK": "0"}) == "mpi"  # srun --mpi=pmix
    assert detect_launcher({"OMPI_COMM_WORLD_SIZE": "4"}) == "mpi"  # Open MPI
    assert detect_launcher({"SLURM_PROCID": "0"}) == "none"


def test_srun_without_a_rank_environment_is_refused(monkeypatch):
    from gfm_ase.pretraining.distributed import DistributedError, setup_distributed

    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
              "MPI_LOCALNRANKS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "1")
    with pytest.raises(DistributedError, match="srun"):
        setup_distributed()


def test_multitask_needs_a_rank_per_head_group(data_dir, tmp_path):
    from gfm_ase.pretraining.trainer import Trainer, TrainingError

    with pytest.raises(TrainingError, match="at least one rank per head group"):
        Trainer(tiny_config(data_dir, parallel__mode="multitask"), tmp_path)
