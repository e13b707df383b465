"""The shipped example, as documented: make_tiny with no arguments' data, example-tiny.yaml unchanged, run by the
CLI in one process, under torchrun and under mpiexec (slow: a full run takes ~30 s on this 2-core machine)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pretrain_helpers import EXAMPLE, cli, overrides_for, set_args, subprocess_env
from gfm_ase.pretraining.logger import read_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-full")
    res = subprocess.run([sys.executable, "-m", "gfm_ase.pretraining.corpus.make_tiny", "--out", str(out)],
                         stdin=subprocess.DEVNULL, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "cu_bulk        240 structures" in res.stdout
    return out


def test_example_config_trains_and_its_loss_falls(full_data, tmp_path):
    from gfm_ase.calculator import GFMCalculator

    paths = {k: v for k, v in overrides_for(full_data).items() if k.startswith("datasets.")}
    res = subprocess.run(cli("pretrain", str(EXAMPLE), "-o", str(tmp_path), *set_args(paths)),
                         stdin=subprocess.DEVNULL, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    loss = np.array([float(r["loss"]) for r in read_csv(tmp_path / "logs" / "train.csv")])
    assert len(loss) == 30  # 300 steps logged every 10
    assert loss[-5:].mean() < 0.25 * loss[:3].mean()
    val = [r for r in read_csv(tmp_path / "logs" / "val.csv") if r["kind"] == "head" and r["split"] == "val"]
    for head in ("emt", "lj"):
        mine = [float(r["forces_mae_meV_A"]) for r in val if r["name"] == head]
        assert len(mine) == 3 and mine[-1] < mine[0]
    assert set(GFMCalculator.available_heads(str(tmp_path))) == {"emt", "lj"}


@pytest.mark.parametrize("launcher", ["torchrun", "mpiexec"])
def test_example_config_runs_on_two_processes(full_data, tmp_path, launcher):
    args = ["pretrain", str(EXAMPLE), "-o", str(tmp_path), *set_args(overrides_for(full_data, sampling__epochs=1))]
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "gfm_ase.cli", *args]
    else:
        mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
        cmd = [mpiexec, "-n", "2", sys.executable, "-m", "gfm_ase.cli", *args]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=subprocess_env(), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "2 rank(s)" in res.stdout
    assert (tmp_path / "final" / "model.json").is_file()


def test_resume_with_another_number_of_processes(full_data, tmp_path):
    """A single-process run's checkpoint continued by 2 torchrun ranks follows the uninterrupted run (equal up to
    floating-point summation order)."""
    settings = overrides_for(full_data, sampling__epochs=1, logging__every_steps=1, checkpoint__every_steps=20,
                             checkpoint__keep=5, precision="float64", validation__max_structures=4)
    ref, run = tmp_path / "ref", tmp_path / "run"
    env = subprocess_env()
    res = subprocess.run(cli("pretrain", str(EXAMPLE), "-o", str(ref), *set_args(settings)),
                         stdin=subprocess.DEVNULL, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    # the run as it stood at step 20: its checkpoint and logs (later log rows are dropped on resume)
    shutil.copytree(ref, run)
    shutil.rmtree(run / "final")
    (run / "checkpoints" / "latest").write_text("step_00000020\n")
    start = 20
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "gfm_ase.cli",
           "pretrain", str(EXAMPLE), "-o", str(run), "--resume", *set_args(settings)]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    a = {int(r["step"]): float(r["loss"]) for r in read_csv(ref / "logs" / "train.csv")}
    b = {int(r["step"]): float(r["loss"]) for r in read_csv(run / "logs" / "train.csv")}
    assert sorted(b) == sorted(a)
    later = [s for s in a if s > start]
    assert later
    np.testing.assert_allclose([b[s] for s in later], [a[s] for s in later], rtol=1e-7)
