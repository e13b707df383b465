"""The CUDA paths: the same physics and results on a GPU as on the CPU (skipped without CUDA).

CI has no GPU; these run on a GPU machine with `make test-gpu` or `benchmarks/gpu_suite.sh`. They compare each
GPU result with the float64 CPU result of the same model, so they fail on a wrong device transfer, a kernel that
differs from the CPU one beyond rounding, or a GPU-only code path (memory budget from free GPU memory, training
on the GPU) that breaks. ``GFM_TEST_DEVICE=cpu`` runs the same checks with the CPU as the device under test (how
the tests themselves were checked on a machine without a GPU).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from conftest import make_tiny_model

from gfm_ase.calculator import GFMCalculator
from gfm_ase.graph import collate, graph_from_atoms
from gfm_ase.model import predict
from gfm_ase.screening import Screener
from gfm_ase.screening.benchset import benchmark_structures

DEVICE = os.environ.get("GFM_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                                  reason="needs a CUDA device")]


def _structures():
    s = benchmark_structures(6, seed=5)
    mol = molecule("CH4")  # no cell: its stress is undefined (NaN)
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    slab.pbc = (True, True, False)
    slab.center(vacuum=4.0, axis=2)
    tri = bulk("Si", "diamond", a=5.43)
    tri.set_cell(tri.cell[:] + np.array([[0.0, 0.3, 0.1], [0.2, 0.0, 0.0], [0.0, 0.1, 0.0]]), scale_atoms=True)
    tri.rattle(0.05, seed=1)
    return s + [mol, slab, tri]


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(seed=4, heads=("a", "b"))


def _compare(cpu, gpu, atol_e, atol_f, atol_s):
    cpu = {k: v.detach() for k, v in cpu.items()}
    gpu = {k: v.detach() for k, v in gpu.items()}
    np.testing.assert_allclose(gpu["energy"].cpu().double().numpy(), cpu["energy"].numpy(), atol=atol_e)
    np.testing.assert_allclose(gpu["forces"].cpu().double().numpy(), cpu["forces"].numpy(), atol=atol_f)
    np.testing.assert_allclose(gpu["stress"].cpu().double().numpy(), cpu["stress"].numpy(), atol=atol_s,
                               equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_predict_on_cuda_matches_cpu(model, dtype):
    graphs = [graph_from_atoms(a, model.cutoff) for a in _structures()]
    ref = predict(model, collate(graphs), "a", forces=True, stress=True)
    gpu_model = make_tiny_model(seed=4, heads=("a", "b")).to(DEVICE, dtype)
    out = predict(gpu_model, collate(graphs, dtype=dtype).to(DEVICE), "a", forces=True, stress=True)
    assert out["forces"].device.type == torch.device(DEVICE).type
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    _compare(ref, out, tol, tol, tol)
    assert torch.isnan(out["stress"][6]).all() and torch.isfinite(out["stress"][:6]).all()  # the molecule


def test_calculator_on_cuda_forces_and_stress_are_derivatives(model):
    atoms = _structures()[-1]
    atoms.calc = GFMCalculator(model, head="b", device=DEVICE, dtype="float64")
    forces, stress = atoms.get_forces(), atoms.get_stress()
    h = 1e-4
    for a, c in [(0, 0), (1, 2)]:
        p = atoms.positions.copy()
        e = []
        for sign in (1, -1):
            atoms.positions = p
            atoms.positions[a, c] += sign * h
            e.append(atoms.get_potential_energy())
        atoms.positions = p
        assert forces[a, c] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=1e-6)
    num = atoms.calc.calculate_numerical_stress(atoms, d=1e-5)
    np.testing.assert_allclose(stress, num, atol=1e-6)


def test_screener_on_cuda_equals_cpu_with_the_memory_budget(model):
    structures = benchmark_structures(40, seed=9) + _structures()[6:]
    props = ["forces", "stress", "energies"]
    cpu = Screener(model, head="a", device="cpu", dtype="float64", properties=props).evaluate(structures)
    sc = Screener(model, head="a", device=DEVICE, dtype="float64", properties=props)
    assert sc.device.type == torch.device(DEVICE).type
    gpu = sc.evaluate(structures)
    assert list(gpu["id"]) == list(cpu["id"])
    for key in ("energy", "energy_per_atom", "forces", "energies"):
        np.testing.assert_allclose(gpu[key], cpu[key], atol=1e-9)
    np.testing.assert_allclose(gpu["stress"], cpu["stress"], atol=1e-9, equal_nan=True)


def test_bfloat16_on_cuda_within_the_stated_bound(model):
    structures = benchmark_structures(16, seed=7)
    props = ["forces", "energies"]
    ref = Screener(model, head="a", device="cpu", dtype="float64", properties=props).evaluate(structures)
    bf = Screener(model, head="a", device=DEVICE, dtype="bfloat16", properties=props).evaluate(structures)
    scale_e = np.sqrt((ref["energies"] ** 2).mean())
    scale_f = np.sqrt((ref["forces"] ** 2).mean())
    assert np.abs(bf["energy_per_atom"] - ref["energy_per_atom"]).max() <= 0.04 * scale_e
    assert np.sqrt(((bf["forces"] - ref["forces"]) ** 2).mean()) <= 0.10 * scale_f


def test_compiled_screening_on_cuda_matches_eager(model):
    structures = benchmark_structures(24, seed=11)
    props = ["forces", "stress"]
    eager = Screener(model, head="a", device=DEVICE, dtype="float32", properties=props).evaluate(structures)
    comp = Screener(model, head="a", device=DEVICE, dtype="float32", properties=props,
                    compile=True).evaluate(structures)
    np.testing.assert_allclose(comp["energy"], eager["energy"], atol=1e-4)
    np.testing.assert_allclose(comp["forces"], eager["forces"], atol=1e-4)
    np.testing.assert_allclose(comp["stress"], eager["stress"], atol=1e-5)


def test_pretraining_on_cuda_under_torchrun(tmp_path):
    """A short run of the example config under torchrun on the GPU. (One GPU allows one NCCL rank, which needs no
    collectives: the NCCL all-reduce itself needs a machine with two GPUs.)"""
    from pretrain_helpers import EXAMPLE, make_data, overrides_for, set_args, subprocess_env

    data = make_data(tmp_path / "data", scale=0.25)
    over = overrides_for(data, device=DEVICE, sampling__steps_per_epoch=20,
                         sampling__epochs=1, logging__every_steps=1, validation__max_structures=4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m",
           "gfm_ase.cli", "pretrain", str(EXAMPLE), "-o", str(tmp_path / "run"), *set_args(over)]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=subprocess_env(), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"device {DEVICE}" in res.stdout
    from gfm_ase.pretraining.logger import read_csv

    loss = np.array([float(r["loss"]) for r in read_csv(tmp_path / "run" / "logs" / "train.csv")])
    assert np.all(np.isfinite(loss)) and loss[-5:].mean() < loss[:5].mean()
    calc = GFMCalculator(str(tmp_path / "run"), head="emt", device=DEVICE)
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())


def test_verlet_list_on_cuda_gives_the_cpu_forces(model):
    """The skin list is filtered on the device: a few steps of moves, each compared with a fresh CPU evaluation."""
    atoms = _structures()[-1].repeat((2, 2, 2))
    calc = GFMCalculator(model, head="a", device=DEVICE, dtype="float64", skin=0.5)
    ref = GFMCalculator(model, head="a", device="cpu", dtype="float64")
    rng = np.random.default_rng(0)
    for _ in range(6):
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        calc.calculate(atoms, ["energy", "forces", "stress"])
        got = dict(calc.results)
        ref.calculate(atoms, ["energy", "forces", "stress"])
        assert got["energy"] == pytest.approx(ref.results["energy"], abs=1e-9)
        np.testing.assert_allclose(got["forces"], ref.results["forces"], atol=1e-9)
        np.testing.assert_allclose(got["stress"], ref.results["stress"], atol=1e-9)
    assert 1 <= calc.verlet.builds < calc.verlet.calls
