"""Resume after SIGKILL, rank shards and the `gfm screen` command line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.io import read, write
from conftest import REPO, make_tiny_model

from gfm_ase.checkpoint import load_model, save_model
from gfm_ase.cli import main
from gfm_ase.screening import OutputError, Screener, read_results, screen
from gfm_ase.screening.benchset import benchmark_structures
from gfm_ase.screening.output import list_parts, parts_dir
from gfm_ase.screening.shards import Shard, detect_shard


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("screen")
    model = make_tiny_model(seed=4, heads=("a", "b"))
    save_model(model, d / "model")
    write(d / "one.xyz", benchmark_structures(150, seed=1), format="extxyz")
    write(d / "two.xyz", benchmark_structures(40, seed=2), format="extxyz")
    return d, model


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_resume_after_sigkill_gives_every_id_once(setup, tmp_path):
    d, model = setup
    out = tmp_path / "res.h5"
    cmd = [sys.executable, "-m", "gfm_ase.cli", "screen", str(d / "one.xyz"), str(d / "two.xyz"), "-o", str(out),
           "--model", str(d / "model"), "--head", "b", "--dtype", "float64", "--properties", "forces",
           "--chunk-rows", "10", "--max-atoms", "128"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = parts_dir(out)
    t0 = time.monotonic()
    while len(list_parts(parts)) < 2:
        assert proc.poll() is None, "the screen finished before it could be killed: " + proc.stderr.read().decode()
        assert time.monotonic() - t0 < 120, "no results were committed within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    n_before = sum(1 for _ in list_parts(parts))
    assert n_before >= 2

    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "resuming:" in done.stderr
    res = read_results(out)
    expected = [f"one.xyz:{k}" for k in range(150)] + [f"two.xyz:{k}" for k in range(40)]
    counts = Counter(res["id"].tolist())
    assert set(counts) == set(expected) and max(counts.values()) == 1
    assert list(res["id"]) == expected  # merged in input order
    assert (res["error"] == "").all()
    # the resumed results are the same numbers an uninterrupted evaluation gives
    structures = read(d / "one.xyz", index=":") + read(d / "two.xyz", index=":")
    model = load_model(d / "model", dtype=torch.float64)  # the weights as the command line sees them
    ref = Screener(model, head="b", dtype="float64", properties=["forces"]).evaluate(structures, ids=expected)
    np.testing.assert_allclose(res["energy"], ref["energy"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(res["forces"], ref["forces"], atol=1e-10, rtol=0)
    assert not parts.exists()


def test_ranks_screen_disjoint_shards_and_rank0_merges(setup, tmp_path):
    d, model = setup
    out = tmp_path / "sharded.parquet"
    pytest.importorskip("pyarrow")
    kw = dict(model=d / "model", head="a", dtype="float64", log=None, chunk_rows=7)
    inputs = [d / "two.xyz"]
    with pytest.raises(TimeoutError, match="ranks \\[1\\]"):
        screen(inputs, out, rank=0, world_size=2, wait_timeout=0.2, **kw)
    r1 = screen(inputs, out, rank=1, world_size=2, **kw)
    assert not r1["complete"] and r1["evaluated"] == 20 and not out.exists()
    r0 = screen(inputs, out, rank=0, world_size=2, wait_timeout=5, **kw)  # its own shard was done: resumes, merges
    assert r0["complete"] and r0["evaluated"] == 0 and r0["rows"] == 40
    res = read_results(out)
    assert list(res["id"]) == [f"two.xyz:{k}" for k in range(40)]
    model = load_model(d / "model", dtype=torch.float64)
    ref = Screener(model, head="a", dtype="float64").evaluate(read(d / "two.xyz", index=":"))
    np.testing.assert_allclose(res["energy"], ref["energy"], atol=1e-10, rtol=0)


def test_world_size_change_resumes_other_shards(setup, tmp_path):
    d, _ = setup
    out = tmp_path / "partial.h5"
    kw = dict(model=d / "model", head="a", log=None)
    screen([d / "two.xyz"], out, rank=1, world_size=2, **kw)
    # one process (world size 1) finds half of the units done by a world-2 run: it does the rest and merges
    summary = screen([d / "two.xyz"], out, **kw)
    assert summary["complete"] and summary["evaluated"] == 20 and summary["rows"] == 40


def test_merge_refuses_when_units_are_missing(setup, tmp_path):
    d, _ = setup
    out = tmp_path / "lost.h5"
    kw = dict(model=d / "model", head="a", log=None, world_size=2, wait_timeout=5)
    screen([d / "two.xyz"], out, rank=1, **kw)
    for p in list_parts(parts_dir(out)):  # rank 1's results lost, its done-marker kept
        p.unlink()
    with pytest.raises(OutputError, match="20 input units have no results"):
        screen([d / "two.xyz"], out, rank=0, **kw)
    assert not out.exists()
    screen([d / "two.xyz"], out, rank=1, **kw)  # rerunning the lost rank repairs it
    assert screen([d / "two.xyz"], out, rank=0, **kw)["rows"] == 40


def test_detect_shard_from_launcher_environment(monkeypatch):
    for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK",
              "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "MPI_LOCALRANKID",
              "OMPI_COMM_WORLD_LOCAL_RANK"):
        monkeypatch.delenv(v, raising=False)
    assert detect_shard() == Shard(0, 1, 0)
    monkeypatch.setenv("PMI_RANK", "2")
    monkeypatch.setenv("PMI_SIZE", "4")
    assert detect_shard() == Shard(2, 4, 0)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert detect_shard() == Shard(1, 3, 1)
    assert detect_shard(rank=0, world=2).world == 2
    with pytest.raises(ValueError):
        Shard(3, 2)
    units = [type("U", (), {"index": k})() for k in range(7)]
    assert [u.index for u in Shard(1, 3).take(units)] == [1, 4]


def test_cli_contract(setup, tmp_path, capsys):
    d, _ = setup
    out = tmp_path / "cli.h5"
    rc = main(["screen", str(d / "two.xyz"), "-o", str(out), "--model", str(d / "model"), "--head", "a",
               "--dtype", "float32", "--properties", "energy", "stress", "--quiet", "--shortlist", "3"])
    assert rc == 0
    res = read_results(out)
    assert len(res["id"]) == 40 and {"id", "energy", "energy_per_atom", "stress"} <= set(res)
    short = Path(str(out) + ".shortlist.csv").read_text().splitlines()
    assert short[0].startswith("rank,id") and len(short) == 4
    rc = main(["screen", str(tmp_path / "nope.xyz"), "-o", str(tmp_path / "x.h5"), "--model", str(d / "model")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_mpiexec_two_ranks(setup, tmp_path):
    """A real 2-process launch: ranks find themselves from the launcher's environment."""
    import shutil

    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
    if not Path(mpiexec).exists():
        pytest.skip("mpiexec is not installed")
    d, _ = setup
    out = tmp_path / "mpi.h5"
    cmd = [mpiexec, "-n", "2", sys.executable, "-m", "gfm_ase.cli", "screen", str(d / "two.xyz"), "-o", str(out),
           "--model", str(d / "model"), "--head", "a", "--wait-timeout", "300"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "rank 1/2" in done.stderr and "rank 0/2" in done.stderr
    res = read_results(out)
    assert list(res["id"]) == [f"two.xyz:{k}" for k in range(40)]


def test_a_second_process_on_the_same_output_and_rank_is_refused(setup, tmp_path, capsys):
    """While a rank screens into OUT it holds .OUT.rankR.lock: another process for the same output and rank is
    refused before it evaluates or writes anything (its units would be evaluated twice); the other ranks' locks
    are their own."""
    from gfm_ase.fileio import LockedError, exclusive_lock
    from gfm_ase.screening.output import lock_path

    d, _ = setup
    out = tmp_path / "locked.h5"
    args = dict(model=d / "model", head="a", dtype="float32", properties=["energy"], log=None)
    with exclusive_lock(lock_path(out, 0), "screening run (rank 0 of 1)"):
        with pytest.raises(LockedError, match=rf"in use by another screening run \(rank 0 of 1\) \(pid {os.getpid()}"):
            screen([d / "two.xyz"], out, **args)
        assert not parts_dir(out).exists() and not out.exists()
        rc = main(["screen", str(d / "two.xyz"), "-o", str(out), "--model", str(d / "model"), "--head", "a",
                   "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "in use by another screening run" in err[0]
        # rank 1 of a two-rank launch has its own lock
        assert screen([d / "two.xyz"], out, rank=1, world_size=2, **args)["rank"] == 1
    assert screen([d / "two.xyz"], out, **args)["complete"]
