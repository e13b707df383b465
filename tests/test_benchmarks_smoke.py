"""The prepared GPU run (benchmarks/gpu_suite.sh) works end to end: every step, at tiny sizes on the CPU.

A GPU lease is short (minutes), so the script must not fail for a reason a CPU run would have shown. Slow (~1 min).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_gpu_suite_smoke_run_passes_every_step(tmp_path):
    env = dict(os.environ, GFM_SUITE_SMOKE="1", OUT=str(tmp_path), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    res = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh")], cwd=REPO, env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    log = (tmp_path / "gpu_suite.log").read_text()
    rcs = dict(re.findall(r"^## ([\w-]+): rc=(\d+)", log, flags=re.M))
    assert set(rcs) == {"environment", "gpu-tests", "screening", "md", "scale", "training"}, log[-3000:]
    assert all(v == "0" for v in rcs.values()), rcs
    assert "8 passed" in log
    assert (tmp_path / "screening.json").is_file() and (tmp_path / "training.json").is_file()
    assert re.search(r"^\| si \| 64 \| [\d,]+ \| float32 \| 1 \| [\d.]+ \|", log, flags=re.M), log[-3000:]


def test_batching_bound_script_prints_its_tables():
    res = subprocess.run([sys.executable, "-m", "benchmarks.batching", "--n", "4", "--sizes", "1", "64",
                          "--repeat", "1"], cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    def value(label):
        m = re.search(re.escape(label) + r"[^|]*\| ([\d.]+)", res.stdout)
        assert m, (label, res.stdout)
        return float(m.group(1))

    o, c_min = value("per-call overhead o"), value("lower bound on model time c_min")
    bound = value("upper bound on batched / loop")
    # the printed bound is (o + c_min) / c_min of the printed figures, up to their rounding (0.05 ms, 0.005)
    assert c_min > 0 and abs(bound - (o + c_min) / c_min) <= 0.05 / c_min * (1 + (o + c_min) / c_min) + 0.006
    assert re.search(r"^\| 64 \| \d+ \| [\d,]+ \| [\d.]+ \|$", res.stdout, flags=re.M), res.stdout


def test_screen_scaling_script_runs_ranks_and_checks_ids():
    res = subprocess.run([sys.executable, "-m", "benchmarks.screen_scaling", "--n", "12", "--ranks", "1",
                          "3"], cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"^\| 3 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", res.stdout, flags=re.M), res.stdout
