"""gfm_ase.validation.peers: CHGNet / SevenNet as ASE calculators for the suites.

The peers are installed in .venv-teachers (`make teachers`), not in the main venv that runs this suite. So:
- the wrapper and the error path are tested here with stand-ins (always run);
- energy / forces / stress against finite differences, and
  `gfm validate eos --calculator gfm_ase.validation.peers:chgnet`,
  run through .venv-teachers/bin/python in a subprocess (skipped when that interpreter is absent), and in-process
  when this interpreter has the packages itself.

Run as a script (`python tests/test_validation_peers.py chgnet sevennet0`) it prints the finite-difference
comparison as JSON: that is what the subprocess test runs.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEACHERS_PY = REPO / ".venv-teachers" / "bin" / "python"


def si_cell():
    """A strained, displaced 2-atom Si cell: non-zero forces and shear stress, so sign errors show."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43)
    strain = np.array([[0.010, 0.003, 0.0], [0.003, -0.008, 0.002], [0.0, 0.002, 0.005]])
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
    atoms.positions[1] += [0.05, -0.03, 0.02]
    return atoms


def finite_difference_check(calc, atoms, h: float = 2e-3, eps: float = 2e-3) -> dict:
    """Analytic forces and stress of ``calc`` against central differences of its energy.

    Forces: F = -dE/dx. Stress (ASE): sigma_ij = (1/V) dE/d(eps_ij) for a symmetric strain eps of the cell.
    """
    from ase.stress import full_3x3_to_voigt_6_stress

    def energy(a):
        a = a.copy()
        a.calc = calc
        return a.get_potential_energy()

    atoms = atoms.copy()
    atoms.calc = calc
    e = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress()
    f_fd = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            f_fd[i, k] = -(energy(plus) - energy(minus)) / (2 * h)
    s_fd = np.zeros((3, 3))
    for i, j in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        d = np.zeros((3, 3))
        d[i, j] += 0.5
        d[j, i] += 0.5
        ep = []
        for sgn in (1, -1):
            b = atoms.copy()
            b.set_cell(atoms.cell[:] @ (np.eye(3) + sgn * eps * d), scale_atoms=True)
            ep.append(energy(b))
        s_fd[i, j] = s_fd[j, i] = (ep[0] - ep[1]) / (2 * eps) / atoms.get_volume()
    s_fd = full_3x3_to_voigt_6_stress(s_fd)
    return {"energy": float(e), "energy_type": type(e).__name__, "forces_dtype": str(forces.dtype),
            "stress_shape": list(stress.shape),
            "force_err": float(np.abs(forces - f_fd).max()), "force_max": float(np.abs(forces).max()),
            "stress_err": float(np.abs(stress - s_fd).max()), "stress_max": float(np.abs(stress).max()),
            "stress": stress.tolist(), "stress_fd": s_fd.tolist()}


def check_fd_result(r: dict, name: str) -> None:
    assert r["energy_type"] == "float" and np.isfinite(r["energy"]), (name, r)
    assert r["forces_dtype"] == "float64" and r["stress_shape"] == [6], (name, r)
    assert r["force_max"] > 0.1, (name, r)  # the displaced atom feels a real force
    assert r["force_err"] < 1e-2, (name, r)  # eV/A; the models are float32
    assert r["stress_max"] > 2e-3, (name, r)  # a sign or Voigt-order error would be >= 4e-3 off
    assert r["stress_err"] < 5e-4, (name, r)  # eV/A^3 (0.08 GPa)


# ----------------------------------------------------------------------------------------- always: the wrapper
def test_peer_calculator_wraps_results_in_ase_units_and_float64():
    from ase.build import bulk
    from ase.calculators.calculator import Calculator, all_changes
    from ase.calculators.emt import EMT

    from gfm_ase.validation.peers import PeerCalculator

    class Float32Full3x3(Calculator):  # like chgnet: float32 numbers, 3x3 stress
        implemented_properties = ["energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            emt = EMT()
            a = self.atoms.copy()
            a.calc = emt
            self.results = {"energy": np.float32(a.get_potential_energy()),
                            "forces": a.get_forces().astype(np.float32),
                            "stress": a.get_stress(voigt=False).astype(np.float32)}

    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.01, 0], [0.01, 1.0, 0], [0, 0, 1.0]]), scale_atoms=True)
    ref = atoms.copy()
    ref.calc = EMT()
    calc = PeerCalculator(Float32Full3x3(), {"name": "stand-in", "model": "EMT", "elements": ["Cu"]})
    assert calc.elements == ["Cu"]
    atoms.calc = calc
    assert isinstance(atoms.get_potential_energy(), float)
    assert atoms.get_forces().dtype == np.float64
    stress = atoms.get_stress()
    assert stress.shape == (6,)
    np.testing.assert_allclose(stress, ref.get_stress(), atol=1e-6)  # Voigt order xx yy zz yz xz xy
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-5)
    r = finite_difference_check(calc, atoms)
    assert r["force_err"] < 1e-3 and r["stress_err"] < 1e-4, r


def test_peer_calculator_refuses_elements_and_molecules_it_does_not_cover():
    import pytest
    from ase import Atoms
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from gfm_ase.validation.peers import PeerCalculator

    calc = PeerCalculator(EMT(), {"name": "stand-in", "model": "EMT", "elements": ["Cu"]})
    atoms = bulk("Au", "fcc", a=4.08)
    atoms.calc = calc
    with pytest.raises(ValueError, match=r"no parameters for \['Au'\]"):
        atoms.get_potential_energy()
    mol = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.3]])
    mol.calc = calc
    with pytest.raises(ValueError, match="periodic"):
        mol.get_potential_energy()


def test_missing_package_is_one_line_naming_make_teachers(monkeypatch, tmp_path, capsys):
    import pytest

    from gfm_ase.cli import main
    from gfm_ase.validation import peers
    from gfm_ase.validation.calculators import make_calculator

    for mod in ("chgnet", "chgnet.model", "chgnet.model.dynamics", "sevenn", "sevenn.calculator"):
        monkeypatch.setitem(sys.modules, mod, None)  # import of a None entry raises ImportError
    for name, factory in peers.FACTORIES.items():
        with pytest.raises(peers.PeerUnavailableError, match="make teachers") as info:
            factory()
        assert "\n" not in str(info.value), name
        assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="make teachers"):
        make_calculator("gfm_ase.validation.peers:sevennet0")
    rc = main(["validate", "eos", "--calculator", "gfm_ase.validation.peers:chgnet", "--elements", "Si",
               "-o", str(tmp_path / "eos")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "make teachers" in err and len(err.splitlines()) == 1, err


# ----------------------------------------------------------------------------------- the real models
def _have_peers() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("chgnet", "sevenn"))


def _teachers_or_skip():
    import pytest

    if not TEACHERS_PY.exists():
        pytest.skip(f"{TEACHERS_PY.relative_to(REPO)} is absent: run `make teachers`")
    return str(TEACHERS_PY)


def test_peers_match_finite_differences_in_teachers_venv():
    py = _teachers_or_skip()
    out = subprocess.run([py, str(Path(__file__)), "chgnet", "sevennet0"], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(results) == {"chgnet", "sevennet0"}
    for name, r in results.items():
        check_fd_result(r["fd"], name)
        assert "Si" in r["elements"] and "Pu" in r["elements"], name
    assert len(results["chgnet"]["elements"]) == 94  # CHGNet's embedding: Z 1..94
    assert len(results["sevennet0"]["elements"]) == 89  # SevenNet-0's type map
    assert "Po" not in results["sevennet0"]["elements"]
    assert results["chgnet"]["version"] == "0.3.1" and results["sevennet0"]["version"] == "0.13.0"


def test_gfm_validate_eos_with_chgnet_in_teachers_venv(tmp_path):
    py = _teachers_or_skip()
    out = subprocess.run([py, "-m", "gfm_ase.cli", "validate", "eos", "--calculator", "gfm_ase.validation.peers:chgnet",
                          "--elements", "Si", "--points", "5", "-o", str(tmp_path / "eos")],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "eos" / "summary.json").read_text())
    s = summary.get("summary", summary)
    assert s["n_elements"] == 1 and s["n_failed"] == 0, summary
    # CHGNet is fitted to PBE, as WIEN2k's references are: Si's V0 within 3 %, Delta a few meV/atom
    assert 0.0 < s["delta_mean_meV"] < 10.0, summary
    assert s["v0_mae_pct"] < 3.0, summary


def test_peers_in_process_when_installed_here():
    import pytest

    if not _have_peers():
        pytest.skip("chgnet / sevenn are not importable in this interpreter (they live in .venv-teachers)")
    from gfm_ase.validation import peers

    for name in ("chgnet", "sevennet0", "sevennet_mf0_pbe", "sevennet_mf0_r2scan"):
        calc = peers.FACTORIES[name]()
        check_fd_result(finite_difference_check(calc, si_cell()), name)
    assert peers.sevennet_mf0_r2scan().metadata["modals"] == ["R2SCAN", "PBE"]


def _env():
    import os

    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


if __name__ == "__main__":  # run by test_peers_match_finite_differences_in_teachers_venv
    import torch

    torch.set_num_threads(1)
    from gfm_ase.validation import peers

    report = {}
    for peer in sys.argv[1:]:
        calc = peers.FACTORIES[peer]()
        report[peer] = {"fd": finite_difference_check(calc, si_cell()), "elements": calc.metadata["elements"],
                        "version": calc.metadata["version"]}
    print(json.dumps(report))
